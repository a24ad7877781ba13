//! Server-side resources and the path router, with `/.well-known/core` (RFC 6690).

use std::any::Any;
use std::collections::BTreeMap;

use bytes::Bytes;
use coap_lite::{RequestType, ResponseType};

use super::msg::{content_format, Request, Response};

/// What a resource does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Answer now; a CON request gets it piggybacked on the ACK.
    Respond(Response),
    /// Answer later through [`Endpoint::respond`](super::Endpoint::respond): the endpoint sends
    /// an empty ACK now and raises [`Event::Deferred`](super::Event::Deferred).
    Defer,
}

/// A CoAP resource. The endpoint handles the message layer, Block1 reassembly, Block2 slicing
/// and Observe bookkeeping; the resource only maps a whole request to a whole representation.
pub trait Resource: Send {
    /// Handles a request (the payload is complete even when it arrived in Block1 blocks).
    fn handle(&mut self, req: &Request) -> Outcome;

    /// Handles a request from `peer` (the endpoint's peer key, e.g. a `SocketAddr`). Resources
    /// that account per peer (ferry's serving of updates) downcast it; others just handle.
    fn handle_from(&mut self, peer: &dyn Any, req: &Request) -> Outcome {
        let _ = peer;
        self.handle(req)
    }

    /// Link-format attributes for `/.well-known/core`, without the leading `;` (e.g. `ct=0`).
    fn link_attributes(&self) -> String {
        String::new()
    }

    /// Whether GET with Observe registers an observer.
    fn observable(&self) -> bool {
        false
    }

    /// For a forward proxy: whether it serves the URI `req` names (see [`Router::takes`]).
    fn takes(&self, req: &Request) -> bool {
        let _ = req;
        true
    }
}

/// A resource serving fixed bytes to GET; replace them with [`Router::set_static`]. Every
/// response carries an ETag of the body, so a block-wise client notices a change mid-transfer.
#[derive(Debug, Clone)]
pub struct StaticResource {
    body: Bytes,
    etag: [u8; 8],
    pub content_format: u16,
    pub observable: bool,
}

impl StaticResource {
    pub fn new(body: impl Into<Bytes>, content_format: u16) -> Self {
        let body = body.into();
        Self { etag: etag_of(&body), body, content_format, observable: false }
    }

    /// The same, but observable (RFC 7641).
    pub fn observable(mut self) -> Self {
        self.observable = true;
        self
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.body = body.into();
        self.etag = etag_of(&self.body);
    }
}

/// FNV-1a 64 of the body: cheap, and only has to differ between versions of one resource.
fn etag_of(body: &[u8]) -> [u8; 8] {
    let h = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3));
    h.to_be_bytes()
}

impl Resource for StaticResource {
    fn handle(&mut self, req: &Request) -> Outcome {
        Outcome::Respond(match req.method {
            RequestType::Get => {
                Response { etag: Some(self.etag.to_vec()), ..Response::content(self.content_format, self.body.clone()) }
            }
            _ => Response::new(ResponseType::MethodNotAllowed),
        })
    }

    fn link_attributes(&self) -> String {
        format!("ct={}", self.content_format)
    }

    fn observable(&self) -> bool {
        self.observable
    }
}

enum Entry {
    Static(StaticResource),
    Dynamic(Box<dyn Resource>),
}

impl Entry {
    fn resource(&mut self) -> &mut dyn Resource {
        match self {
            Entry::Static(s) => s,
            Entry::Dynamic(d) => d.as_mut(),
        }
    }

    fn resource_ref(&self) -> &dyn Resource {
        match self {
            Entry::Static(s) => s,
            Entry::Dynamic(d) => d.as_ref(),
        }
    }
}

/// Resources by exact path ("a/b", no leading slash). `/.well-known/core` is generated.
/// Requests for another origin (Proxy-Uri, Proxy-Scheme) go to the proxy, if one is set, and
/// get 5.05 Proxying Not Supported otherwise.
#[derive(Default)]
pub struct Router {
    entries: BTreeMap<String, Entry>,
    proxy: Option<Box<dyn Resource>>,
}

/// The path of the discovery resource.
pub const WELL_KNOWN_CORE: &str = ".well-known/core";

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a resource.
    pub fn insert(&mut self, path: &str, resource: Box<dyn Resource>) {
        self.entries.insert(normalise(path), Entry::Dynamic(resource));
    }

    /// Registers (or replaces) a static resource.
    pub fn insert_static(&mut self, path: &str, resource: StaticResource) {
        self.entries.insert(normalise(path), Entry::Static(resource));
    }

    /// Replaces the body of a static resource; false if there is none at `path`.
    pub fn set_static(&mut self, path: &str, body: impl Into<Bytes>) -> bool {
        match self.entries.get_mut(&normalise(path)) {
            Some(Entry::Static(s)) => {
                s.set_body(body);
                true
            }
            _ => false,
        }
    }

    /// Sets (or replaces) the forward proxy: it gets every request that carries a
    /// [`Request::proxy_uri`], and must answer 5.05 for what it will not serve.
    pub fn set_proxy(&mut self, proxy: Box<dyn Resource>) {
        self.proxy = Some(proxy);
    }

    /// Removes a resource; true if there was one.
    pub fn remove(&mut self, path: &str) -> bool {
        self.entries.remove(&normalise(path)).is_some()
    }

    /// Whether the resource at `path` accepts Observe registrations.
    pub fn observable(&self, path: &str) -> bool {
        self.entries.get(path).is_some_and(|e| e.resource_ref().observable())
    }

    /// Whether a resource takes `req`: a registered path, discovery, or a proxied request with a
    /// proxy set. What no resource takes is answered 4.04 (or 5.05) by [`handle_from`](Self::handle_from).
    pub fn takes(&self, req: &Request) -> bool {
        if req.proxy_uri.is_some() {
            return self.proxy.as_ref().is_some_and(|proxy| proxy.takes(req));
        }
        let path = req.path_string();
        path == WELL_KNOWN_CORE || self.entries.contains_key(&path)
    }

    /// Dispatches a request by its path.
    pub fn handle(&mut self, req: &Request) -> Outcome {
        self.handle_from(&(), req)
    }

    /// Dispatches a request from `peer` by its path (see [`Resource::handle_from`]).
    pub fn handle_from(&mut self, peer: &dyn Any, req: &Request) -> Outcome {
        if req.proxy_uri.is_some() {
            return match &mut self.proxy {
                Some(proxy) => proxy.handle_from(peer, req),
                None => Outcome::Respond(Response::new(ResponseType::ProxyingNotSupported)),
            };
        }
        let path = req.path_string();
        if path == WELL_KNOWN_CORE {
            return Outcome::Respond(match req.method {
                RequestType::Get => {
                    Response::content(content_format::LINK_FORMAT, self.link_format_filtered(req.query.first()))
                }
                _ => Response::new(ResponseType::MethodNotAllowed),
            });
        }
        match self.entries.get_mut(&path) {
            Some(e) => e.resource().handle_from(peer, req),
            None => Outcome::Respond(Response::new(ResponseType::NotFound)),
        }
    }

    /// The RFC 6690 link format of all registered resources, e.g. `</a>;ct=0;obs,</b>`.
    pub fn link_format(&self) -> String {
        self.link_format_filtered(None)
    }

    /// The link format, filtered by one `name=value` query (RFC 6690 §4.1): `href` matches the
    /// path, other names the link's attributes; a value ending in `*` matches as a prefix, and
    /// space-separated attribute values (`rt`, `if`) match on any of their words.
    pub fn link_format_filtered(&self, query: Option<&String>) -> String {
        let filter = query.map(|q| match q.split_once('=') {
            Some((n, v)) => (n, v),
            None => (q.as_str(), ""),
        });
        let mut links = Vec::with_capacity(self.entries.len());
        for (path, entry) in &self.entries {
            let r = entry.resource_ref();
            let href = format!("/{path}");
            let mut attrs = r.link_attributes();
            if r.observable() {
                if !attrs.is_empty() {
                    attrs.push(';');
                }
                attrs.push_str("obs");
            }
            if let Some((name, value)) = filter {
                if !link_matches(&href, &attrs, name, value) {
                    continue;
                }
            }
            let mut link = format!("<{href}>");
            if !attrs.is_empty() {
                link.push(';');
                link.push_str(&attrs);
            }
            links.push(link);
        }
        links.join(",")
    }
}

fn value_matches(have: &str, want: &str) -> bool {
    match want.strip_suffix('*') {
        Some(prefix) => have.starts_with(prefix),
        None => have == want,
    }
}

fn link_matches(href: &str, attrs: &str, name: &str, value: &str) -> bool {
    if name == "href" {
        return value_matches(href, value);
    }
    attrs.split(';').any(|a| {
        let (n, v) = a.split_once('=').unwrap_or((a, ""));
        n == name && (value.is_empty() || v.trim_matches('"').split(' ').any(|w| value_matches(w, value)))
    })
}

fn normalise(path: &str) -> String {
    super::msg::split_path(path).join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_core_lists_resources() {
        let mut r = Router::new();
        r.insert_static("/riot/board", StaticResource::new("native64", content_format::TEXT_PLAIN));
        r.insert_static("fw/image", StaticResource::new(vec![0u8; 10], content_format::OCTET_STREAM).observable());
        assert_eq!(r.link_format(), "</fw/image>;ct=42;obs,</riot/board>;ct=0");
        let Outcome::Respond(resp) = r.handle(&Request::get("/.well-known/core")) else { panic!("deferred") };
        assert_eq!(resp.content_format, Some(40));
        assert_eq!(&resp.payload[..], b"</fw/image>;ct=42;obs,</riot/board>;ct=0");
        let mut q = Request::get("/.well-known/core");
        for (query, want) in [
            ("ct=0", "</riot/board>;ct=0"),
            ("href=/fw*", "</fw/image>;ct=42;obs"),
            ("obs", "</fw/image>;ct=42;obs"),
            ("rt=none", ""),
        ] {
            q.query = vec![query.to_owned()];
            let Outcome::Respond(resp) = r.handle(&q) else { panic!("deferred") };
            assert_eq!(&resp.payload[..], want.as_bytes(), "query {query}");
        }
        let Outcome::Respond(nf) = r.handle(&Request::get("nope")) else { panic!("deferred") };
        assert_eq!(nf.code, ResponseType::NotFound);
    }
}
