//! What ferry serves to its devices: the [`Catalog`] of verified envelopes and payloads, each at
//! the path of the URI signed in its manifest, and the CoAP resource that serves them.
//!
//! RIOT's `SUIT_COAP_SERVER` convention makes the URI host the gateway's address, so ferry is the
//! origin for the URI's *path*: `coap://[fd00::1]/fw/app/board/riot.suit.slot0.7.bin` is served
//! at `fw/app/board/riot.suit.slot0.7.bin`. The envelope is served beside its payloads under its
//! repository file name (or at its `reference-uri` path when it has one). Nothing else is served:
//! a path not in the catalog answers 4.04, and every payload's bytes are checked against the
//! signed digest and size before they enter the catalog.
//!
//! Each path is its own [`coap::Resource`] in the endpoint's router, so `/.well-known/core` lists
//! it. The catalog is also the router's forward proxy (RFC 7252 §5.7.2), for devices configured
//! to fetch through one: a Proxy-Uri (or Proxy-Scheme and Uri-*) naming exactly a signed URI of
//! the catalog is answered from it, block-wise like the origin paths; anything else gets 5.05
//! Proxying Not Supported. ferry never forwards a request, so it is never an open proxy and
//! never serves what it did not verify. Blocks are cut by the endpoint at the client's SZX (never larger); the resource records
//! every block it answers ([`Served`]: peer, path, offset, length) for the engine to turn into
//! session progress. The catalog is shared (`Arc<Mutex>`) between the router's resources and the
//! shell, which drains the served blocks after every datagram.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::coap::block::size_of_szx;
use crate::coap::{self, content_format, Code, Method, Outcome, PeerKey, Resource, Response, Router};
use crate::repo::{AcceptedManifest, BlobCache, BlobDigest, CacheError};
use crate::suit::{DigestAlg, Manifest};

/// Served blocks kept until drained; beyond this the oldest are dropped (a shell that never
/// drains must not grow without bound).
const MAX_SERVED_QUEUE: usize = 65_536;

/// One block ferry answered from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served<P> {
    /// `None` when the router was called without a peer.
    pub peer: Option<P>,
    pub path: String,
    pub offset: u64,
    pub len: u64,
    pub total: u64,
    /// When it was answered, by the process's clock: a shell that drains the queue now and
    /// then still times each block exactly. Virtual-time drivers (the bench) use their own.
    pub at: std::time::Instant,
}

/// What a manifest added to the catalog: what a session plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The URL a trigger carries.
    pub manifest_uri: String,
    pub manifest_path: String,
    /// Lowercase hex SHA-256 of the envelope.
    pub manifest_digest: String,
    pub payload_paths: Vec<String>,
    pub manifest_size: u64,
    /// The largest payload.
    pub payload_size: u64,
    pub sequence: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("manifest {0} names no payload URI; ferry can only serve what a signed URI names")]
    NoUri(String),
    #[error("payload URI `{0}` is not a coap:// or coaps:// URI with a path")]
    BadUri(String),
    #[error("payload {uri}: {why}")]
    Payload { uri: String, why: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

struct Blob {
    body: Bytes,
    etag: [u8; 8],
}

struct Shared<P> {
    blobs: HashMap<String, Blob>,
    /// Signed URIs ([`proxy_key`] form) → the path their bytes are served at.
    uris: HashMap<String, String>,
    served: VecDeque<Served<P>>,
    /// The endpoint's block size when a client gives no Block2 (`coap::Config::default_szx`).
    default_szx: u8,
}

/// The catalog; cheap to clone (all clones share it).
pub struct Catalog<P> {
    shared: Arc<Mutex<Shared<P>>>,
}

impl<P> Clone for Catalog<P> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<P: PeerKey> Catalog<P> {
    /// An empty catalog; `default_szx` must be the endpoint's `Config::default_szx`.
    pub fn new(default_szx: u8) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                blobs: HashMap::new(),
                uris: HashMap::new(),
                served: VecDeque::new(),
                default_szx,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared<P>> {
        // A panic elsewhere cannot leave the map half-updated: every update is one insert/remove.
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serves `body` at `path` (no leading slash needed) and lists it in `router`.
    pub fn insert(&self, router: &mut Router, path: &str, body: Bytes) {
        let path = normalise(path);
        let digest = BlobDigest::of(&body);
        let mut etag = [0u8; 8];
        etag.copy_from_slice(&digest.0[..8]);
        self.lock().blobs.insert(path.clone(), Blob { body, etag });
        router.insert(&path, Box::new(BlobResource { path: path.clone(), shared: self.shared.clone() }));
    }

    /// Stops serving `path`; true if it was served.
    pub fn remove(&self, router: &mut Router, path: &str) -> bool {
        let path = normalise(path);
        router.remove(&path);
        let mut shared = self.lock();
        shared.uris.retain(|_, p| *p != path);
        shared.blobs.remove(&path).is_some()
    }

    /// Whether a forward-proxy request for `uri` is answered from the catalog.
    pub fn serves_uri(&self, uri: &str) -> bool {
        let shared = self.lock();
        lookup_uri(&shared, uri).is_some()
    }

    pub fn contains(&self, path: &str) -> bool {
        self.lock().blobs.contains_key(&normalise(path))
    }

    /// Paths served, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.lock().blobs.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// The blocks served since the last call, oldest first.
    pub fn drain_served(&self) -> Vec<Served<P>> {
        self.lock().served.drain(..).collect()
    }

    /// Adds a verified manifest: its envelope and every payload at the paths its signed URIs
    /// name. `repo_path` is the envelope's path in its repository; `payloads` are the cached
    /// payload blobs (checked here against the signed digest and size).
    pub fn add_manifest(
        &self,
        router: &mut Router,
        repo_path: &str,
        envelope: Bytes,
        manifest: &Manifest,
        payloads: &[(BlobDigest, Bytes)],
    ) -> Result<Offer, ServeError> {
        let servable = Servable::prepare(repo_path, envelope, manifest, payloads)?;
        Ok(self.add(router, servable))
    }

    /// Adds what [`Servable::prepare`] checked; the offer a session plan needs.
    pub fn add(&self, router: &mut Router, servable: Servable) -> Offer {
        let Servable { offer, envelope, payloads, signed_uris } = servable;
        self.insert(router, &offer.manifest_path, envelope);
        for (path, body) in payloads {
            self.insert(router, &path, body);
        }
        self.lock().uris.extend(signed_uris);
        router.set_proxy(Box::new(CatalogProxy { shared: self.shared.clone() }));
        offer
    }
}

/// A verified manifest checked and laid out for serving: its envelope and payloads at their
/// paths, not yet in any catalog. Cheap to clone (the bytes are shared), so one preparation
/// serves several catalogs.
#[derive(Debug, Clone)]
pub struct Servable {
    pub offer: Offer,
    envelope: Bytes,
    /// Payloads at the paths of their signed URIs.
    payloads: Vec<(String, Bytes)>,
    /// Signed URIs ([`proxy_key`] form) → the path their bytes are served at.
    signed_uris: Vec<(String, String)>,
}

impl Servable {
    /// Checks every payload against the signed digest and size and places it at the path its
    /// signed URI names. `repo_path` is the envelope's path in its repository; `payloads` are
    /// the cached payload blobs.
    pub fn prepare(
        repo_path: &str,
        envelope: Bytes,
        manifest: &Manifest,
        payloads: &[(BlobDigest, Bytes)],
    ) -> Result<Servable, ServeError> {
        let mut served: Vec<(String, Bytes)> = Vec::new();
        let mut signed_uris: Vec<(String, String)> = Vec::new();
        let mut authority = None;
        let mut payload_size = 0;
        for image in manifest.components.iter().flat_map(|c| &c.images) {
            let Some(uri) = &image.uri else { continue };
            let (auth, path) = split_coap_uri(uri).ok_or_else(|| ServeError::BadUri(uri.clone()))?;
            let bad = |why: String| ServeError::Payload { uri: uri.clone(), why };
            let digest = image.digest.as_ref().ok_or_else(|| bad("no signed digest".into()))?;
            if digest.alg != DigestAlg::Sha256 {
                return Err(bad(format!("digest algorithm {:?} is not SHA-256", digest.alg)));
            }
            let digest = BlobDigest::from_slice(&digest.bytes).ok_or_else(|| bad("digest is not 32 bytes".into()))?;
            let (_, body) = payloads
                .iter()
                .find(|(d, _)| *d == digest)
                .ok_or_else(|| bad(format!("sha256:{} is not in the cache", digest.hex())))?;
            if BlobDigest::of(body) != digest || image.size.is_some_and(|s| s != body.len() as u64) {
                return Err(bad("cached bytes do not match the signed digest and size".into()));
            }
            payload_size = payload_size.max(body.len() as u64);
            authority.get_or_insert_with(|| auth.to_owned());
            if let Some(key) = proxy_key(uri) {
                signed_uris.push((key, path.clone()));
            }
            served.push((path, body.clone()));
        }
        let Some(authority) = authority else { return Err(ServeError::NoUri(repo_path.to_owned())) };
        let manifest_path = match manifest.reference_uri.as_deref().and_then(split_coap_uri) {
            Some((_, path)) => path,
            None => {
                let folder = served[0].0.rsplit_once('/').map_or("", |(dir, _)| dir);
                let file = repo_path.rsplit('/').next().unwrap_or(repo_path);
                if folder.is_empty() {
                    file.to_owned()
                } else {
                    format!("{folder}/{file}")
                }
            }
        };
        let offer = Offer {
            manifest_uri: format!("{authority}/{manifest_path}"),
            manifest_digest: BlobDigest::of(&envelope).hex(),
            manifest_size: envelope.len() as u64,
            payload_paths: served.iter().map(|(p, _)| p.clone()).collect(),
            manifest_path: manifest_path.clone(),
            payload_size,
            sequence: manifest.sequence_number,
        };
        if let Some(key) = proxy_key(&offer.manifest_uri) {
            signed_uris.push((key, manifest_path));
        }
        Ok(Servable { offer, envelope, payloads: served, signed_uris })
    }
}

/// Reads an accepted manifest's envelope and payloads from the cache, for
/// [`Catalog::add_manifest`]. Payloads are held in memory while served (≤ 64 MiB each).
pub async fn load_blobs(
    cache: &BlobCache,
    m: &AcceptedManifest,
) -> Result<(Bytes, Vec<(BlobDigest, Bytes)>), CacheError> {
    let envelope = Bytes::from(cache.read_small(&m.envelope, 64 * 1024).await?);
    let mut payloads = Vec::with_capacity(m.payloads.len());
    for digest in &m.payloads {
        payloads.push((*digest, Bytes::from(cache.read_small(digest, crate::repo::plan::MAX_PAYLOAD_SIZE).await?)));
    }
    Ok((envelope, payloads))
}

/// `coap://host[:port]/a/b?q` → (`coap://host[:port]`, `a/b`); `None` for other schemes or no path.
pub fn split_coap_uri(uri: &str) -> Option<(&str, String)> {
    let rest = uri.strip_prefix("coap://").or_else(|| uri.strip_prefix("coaps://"))?;
    let scheme_len = uri.len() - rest.len();
    let slash = rest.find('/')?;
    let authority = &uri[..scheme_len + slash];
    let path = rest[slash..].split(['?', '#']).next().unwrap_or("");
    let path = normalise(path);
    if path.is_empty() || path.split('/').any(|s| s == "." || s == "..") {
        return None;
    }
    Some((authority, path))
}

fn normalise(path: &str) -> String {
    coap::msg::split_path(path).join("/")
}

/// The form two spellings of one CoAP URI share (RFC 7252 §6.3): scheme and host in lower
/// case, the scheme's default port dropped, empty path segments dropped. `None` for other
/// schemes, dot segments or no host.
pub fn proxy_key(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "coap" => ":5683",
        "coaps" => ":5684",
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut host = rest[..end].to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    if host.ends_with(default_port) {
        host.truncate(host.len() - default_port.len());
    }
    let rest = &rest[end..];
    let (path, query) = match rest.split('#').next().unwrap_or("").split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest.split('#').next().unwrap_or(""), None),
    };
    let segments = coap::msg::split_path(path);
    if segments.iter().any(|s| s == "." || s == "..") {
        return None;
    }
    let mut key = format!("{scheme}://{host}/{}", segments.join("/"));
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        key.push('?');
        key.push_str(q);
    }
    Some(key)
}

/// The catalog path a proxied URI is served at: a signed URI of the catalog; or, for a
/// Proxy-Scheme request without Uri-Host (its host is then ferry itself), a catalog path.
fn lookup_uri<P>(shared: &Shared<P>, uri: &str) -> Option<String> {
    if let Some(path) = uri.strip_prefix("coap://").or_else(|| uri.strip_prefix("coaps://")) {
        if path.starts_with('/') {
            let path = normalise(path.split(['?', '#']).next().unwrap_or(""));
            return shared.blobs.contains_key(&path).then_some(path);
        }
    }
    shared.uris.get(&proxy_key(uri)?).cloned()
}

/// The catalog as the router's forward proxy.
struct CatalogProxy<P> {
    shared: Arc<Mutex<Shared<P>>>,
}

impl<P: PeerKey> Resource for CatalogProxy<P> {
    fn handle(&mut self, req: &coap::Request) -> Outcome {
        self.serve(None, req)
    }

    fn handle_from(&mut self, peer: &dyn Any, req: &coap::Request) -> Outcome {
        self.serve(peer.downcast_ref::<P>().copied(), req)
    }

    fn takes(&self, req: &coap::Request) -> bool {
        let shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        req.proxy_uri.as_deref().is_some_and(|uri| lookup_uri(&shared, uri).is_some())
    }
}

impl<P: PeerKey> CatalogProxy<P> {
    fn serve(&mut self, peer: Option<P>, req: &coap::Request) -> Outcome {
        let path = {
            let shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            req.proxy_uri.as_deref().and_then(|uri| lookup_uri(&shared, uri))
        };
        match path {
            Some(path) => serve_blob(&self.shared, &path, peer, req),
            None => Outcome::Respond(Response::new(Code::ProxyingNotSupported)),
        }
    }
}

/// One catalog path in the router.
struct BlobResource<P> {
    path: String,
    shared: Arc<Mutex<Shared<P>>>,
}

impl<P: PeerKey> Resource for BlobResource<P> {
    fn handle(&mut self, req: &coap::Request) -> Outcome {
        self.serve(None, req)
    }

    fn handle_from(&mut self, peer: &dyn Any, req: &coap::Request) -> Outcome {
        self.serve(peer.downcast_ref::<P>().copied(), req)
    }

    fn link_attributes(&self) -> String {
        let shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match shared.blobs.get(&self.path) {
            Some(b) => format!("ct={};sz={}", content_format::OCTET_STREAM, b.body.len()),
            None => format!("ct={}", content_format::OCTET_STREAM),
        }
    }
}

impl<P: PeerKey> BlobResource<P> {
    fn serve(&mut self, peer: Option<P>, req: &coap::Request) -> Outcome {
        serve_blob(&self.shared, &self.path, peer, req)
    }
}

/// Answers `req` with the blob at `path`, recording the block the endpoint will send.
fn serve_blob<P: PeerKey>(shared: &Mutex<Shared<P>>, path: &str, peer: Option<P>, req: &coap::Request) -> Outcome {
    if req.method != Method::Get {
        return Outcome::Respond(Response::new(Code::MethodNotAllowed));
    }
    let mut shared = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let default_szx = shared.default_szx;
    let Some(blob) = shared.blobs.get(path) else {
        return Outcome::Respond(Response::new(Code::NotFound));
    };
    let total = blob.body.len();
    // The block the endpoint will cut (it never exceeds the client's SZX).
    let block = match req.block2 {
        Some(b) => Some((b.num as usize, size_of_szx(b.szx.min(coap::block::MAX_SZX)))),
        None if total > size_of_szx(default_szx) => Some((0, size_of_szx(default_szx))),
        None => None,
    };
    let (offset, len) = match block {
        Some((num, size)) => {
            let offset = num.saturating_mul(size);
            (offset, size.min(total.saturating_sub(offset)))
        }
        None => (0, total),
    };
    let response = Response {
        etag: Some(blob.etag.to_vec()),
        ..Response::content(content_format::OCTET_STREAM, blob.body.clone())
    };
    // A block beyond the end is refused by the endpoint (4.02): nothing served.
    if offset < total || total == 0 {
        if shared.served.len() >= MAX_SERVED_QUEUE {
            shared.served.pop_front();
        }
        shared.served.push_back(Served {
            peer,
            path: path.to_owned(),
            offset: offset as u64,
            len: len as u64,
            total: total as u64,
            at: std::time::Instant::now(),
        });
    }
    Outcome::Respond(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coap_uris_split_into_authority_and_path() {
        assert_eq!(
            split_coap_uri("coap://[fd00::1]:5683/fw/app/native/riot.suit.slot0.7.bin?x=1"),
            Some(("coap://[fd00::1]:5683", "fw/app/native/riot.suit.slot0.7.bin".to_owned()))
        );
        assert_eq!(split_coap_uri("coaps://gw/a//b"), Some(("coaps://gw", "a/b".to_owned())));
        assert_eq!(split_coap_uri("http://gw/a"), None);
        assert_eq!(split_coap_uri("coap://gw"), None);
        assert_eq!(split_coap_uri("coap://gw/"), None);
        assert_eq!(split_coap_uri("coap://gw/a/../b"), None);
    }

    #[test]
    fn proxy_keys_equate_spellings_of_one_uri() {
        let key = proxy_key("coap://[FD00::1]:5683/fw//a.bin");
        assert_eq!(key.as_deref(), Some("coap://[fd00::1]/fw/a.bin"));
        assert_eq!(proxy_key("COAP://[fd00::1]/fw/a.bin"), key);
        assert_eq!(proxy_key("coap://[fd00::1]:5684/fw/a.bin").as_deref(), Some("coap://[fd00::1]:5684/fw/a.bin"));
        assert_eq!(proxy_key("coaps://gw:5684/a?x=1").as_deref(), Some("coaps://gw/a?x=1"));
        assert_eq!(proxy_key("http://gw/a"), None);
        assert_eq!(proxy_key("coap:///a"), None);
        assert_eq!(proxy_key("coap://gw/a/../b"), None);
    }

    #[test]
    fn the_proxy_serves_signed_uris_only() {
        let catalog: Catalog<u8> = Catalog::new(2);
        let mut router = Router::new();
        catalog.insert(&mut router, "fw/a.bin", Bytes::from(vec![7u8; 100]));
        catalog.lock().uris.insert("coap://[fd00::1]/fw/a.bin".into(), "fw/a.bin".into());
        router.set_proxy(Box::new(CatalogProxy { shared: catalog.shared.clone() }));
        let mut proxied = |uri: &str, num: u32| {
            let mut req = coap::Request::get("");
            req.proxy_uri = Some(uri.to_owned());
            req.block2 = Some(coap::BlockOpt { num, more: false, szx: 2 });
            match router.handle_from(&3u8, &req) {
                Outcome::Respond(r) => r,
                Outcome::Defer => panic!("deferred"),
            }
        };
        let r = proxied("coap://[FD00::1]:5683/fw/a.bin", 1);
        assert_eq!((r.code, r.payload.len()), (Code::Content, 100), "the endpoint cuts the block");
        let served: Vec<_> =
            catalog.drain_served().into_iter().map(|s| (s.peer, s.path, s.offset, s.len, s.total)).collect();
        assert_eq!(served, vec![(Some(3), "fw/a.bin".to_owned(), 64, 36, 100)]);
        // Another host, another path, another scheme: never forwarded.
        for uri in ["coap://[fd00::2]/fw/a.bin", "coap://[fd00::1]/fw/b.bin", "http://[fd00::1]/fw/a.bin"] {
            assert_eq!(proxied(uri, 0).code, Code::ProxyingNotSupported, "{uri}");
        }
        // Proxy-Scheme without Uri-Host names ferry itself: the origin path.
        assert_eq!(proxied("coap:///fw/a.bin", 0).code, Code::Content);
        assert!(catalog.serves_uri("coap://[fd00::1]/fw/a.bin"));
        // What the proxy does not serve is no resource's: an endpoint still adding updates
        // holds it unanswered instead of answering 5.05 (`Endpoint::hold_unknown_until`).
        let with_uri = |uri: &str| coap::Request { proxy_uri: Some(uri.to_owned()), ..coap::Request::get("") };
        assert!(router.takes(&with_uri("coap://[fd00::1]/fw/a.bin")));
        assert!(!router.takes(&with_uri("coap://[fd00::1]/fw/b.bin")));
        catalog.remove(&mut router, "fw/a.bin");
        assert!(!catalog.serves_uri("coap://[fd00::1]/fw/a.bin"));
    }
}
