//! Request and response representations the endpoint and resources exchange.
//!
//! These are decoded once from a [`coap_lite::Packet`] (parse once into a repr) and emitted back
//! into one; the endpoint owns the message layer (type, message ID), so these hold only what the
//! request/response layer of RFC 7252 §5 cares about.

use bytes::Bytes;
use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};

use super::block::BlockOpt;
use super::error::CoapError;

/// Content-Format numbers we use (RFC 7252 §12.3, RFC 6690).
pub mod content_format {
    pub const TEXT_PLAIN: u16 = 0;
    pub const LINK_FORMAT: u16 = 40;
    pub const OCTET_STREAM: u16 = 42;
    pub const CBOR: u16 = 60;
}

/// Encodes an unsigned option value in the fewest big-endian bytes (RFC 7252 §3.2 `uint`).
pub fn encode_uint(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

/// Decodes a `uint` option value of at most four bytes.
pub fn decode_uint(value: &[u8]) -> Option<u32> {
    if value.len() > 4 {
        return None;
    }
    Some(value.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// A CoAP request, without the message layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: RequestType,
    /// Uri-Path segments, already split.
    pub path: Vec<String>,
    pub query: Vec<String>,
    pub payload: Bytes,
    pub content_format: Option<u16>,
    pub accept: Option<u16>,
    /// Observe: 0 registers, 1 deregisters (RFC 7641 §2).
    pub observe: Option<u32>,
    pub block1: Option<BlockOpt>,
    pub block2: Option<BlockOpt>,
    /// Size1: the total size of an upload announced by the client.
    pub size1: Option<u32>,
    /// Send as CON (the default) or NON.
    pub confirmable: bool,
    /// The absolute URI a forward proxy is asked for (RFC 7252 §5.10.2): Proxy-Uri as sent,
    /// or composed from Proxy-Scheme and the Uri-* options. `None` for a request to us.
    pub proxy_uri: Option<String>,
}

impl Request {
    /// A confirmable request with no options.
    pub fn new(method: RequestType, path: &str) -> Self {
        Self {
            method,
            path: split_path(path),
            query: Vec::new(),
            payload: Bytes::new(),
            content_format: None,
            accept: None,
            observe: None,
            block1: None,
            block2: None,
            size1: None,
            confirmable: true,
            proxy_uri: None,
        }
    }

    /// A confirmable GET of `path` ("a/b" or "/a/b").
    pub fn get(path: &str) -> Self {
        Self::new(RequestType::Get, path)
    }

    /// The path joined with '/', without a leading slash.
    pub fn path_string(&self) -> String {
        self.path.join("/")
    }

    /// Decodes the request fields of a packet whose code is a request code.
    pub fn from_packet(pkt: &Packet) -> Result<Self, CoapError> {
        let method = match pkt.header.code {
            MessageClass::Request(m) => m,
            other => return Err(CoapError::NotARequest(u8::from(other))),
        };
        let mut req = Self::new(method, "");
        req.confirmable = pkt.header.get_type() == coap_lite::MessageType::Confirmable;
        req.payload = Bytes::copy_from_slice(&pkt.payload);
        let (mut proxy_scheme, mut uri_host, mut uri_port) = (None, None, None);
        for (number, values) in pkt.options() {
            let opt = CoapOption::from(*number);
            for value in values {
                match opt {
                    CoapOption::UriPath => req.path.push(utf8(value, "Uri-Path")?),
                    CoapOption::UriQuery => req.query.push(utf8(value, "Uri-Query")?),
                    CoapOption::ContentFormat => req.content_format = Some(uint16(value, "Content-Format")?),
                    CoapOption::Accept => req.accept = Some(uint16(value, "Accept")?),
                    CoapOption::Observe => {
                        req.observe =
                            Some(decode_uint(value).filter(|v| *v < 1 << 24).ok_or(CoapError::BadOption("Observe"))?)
                    }
                    CoapOption::Block1 => req.block1 = Some(BlockOpt::decode(value)?),
                    CoapOption::Block2 => req.block2 = Some(BlockOpt::decode(value)?),
                    CoapOption::Size1 => req.size1 = Some(decode_uint(value).ok_or(CoapError::BadOption("Size1"))?),
                    CoapOption::ProxyUri => req.proxy_uri = Some(utf8(value, "Proxy-Uri")?),
                    CoapOption::ProxyScheme => proxy_scheme = Some(utf8(value, "Proxy-Scheme")?),
                    CoapOption::UriHost => uri_host = Some(utf8(value, "Uri-Host")?),
                    CoapOption::UriPort => uri_port = Some(uint16(value, "Uri-Port")?),
                    // Elective or handled elsewhere (Uri-Host/Port name us; Size2 asks for Size2,
                    // which we send on the first block anyway).
                    _ => {}
                }
            }
        }
        // Proxy-Uri wins over Proxy-Scheme (RFC 7252 §5.10.2); the Uri-Path and Uri-Query of a
        // Proxy-Scheme request then belong to the URI asked for, not to us.
        if req.proxy_uri.is_none() {
            if let Some(scheme) = proxy_scheme {
                req.proxy_uri = Some(compose_uri(&scheme, uri_host.as_deref(), uri_port, &req.path, &req.query));
            }
        }
        if req.proxy_uri.is_some() {
            req.path.clear();
            req.query.clear();
        }
        Ok(req)
    }

    /// Writes the request fields into `pkt` (code, options, payload); the endpoint sets the
    /// message layer.
    pub fn write_into(&self, pkt: &mut Packet) {
        pkt.header.code = MessageClass::Request(self.method);
        if let Some(o) = self.observe {
            pkt.add_option(CoapOption::Observe, encode_uint(o));
        }
        for seg in &self.path {
            pkt.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
        }
        if let Some(cf) = self.content_format {
            pkt.add_option(CoapOption::ContentFormat, encode_uint(cf.into()));
        }
        for q in &self.query {
            pkt.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        if let Some(a) = self.accept {
            pkt.add_option(CoapOption::Accept, encode_uint(a.into()));
        }
        if let Some(b) = self.block2 {
            pkt.add_option(CoapOption::Block2, b.encode());
        }
        if let Some(b) = self.block1 {
            pkt.add_option(CoapOption::Block1, b.encode());
        }
        if let Some(s) = self.size1 {
            pkt.add_option(CoapOption::Size1, encode_uint(s));
        }
        if let Some(uri) = &self.proxy_uri {
            pkt.add_option(CoapOption::ProxyUri, uri.as_bytes().to_vec());
        }
        pkt.payload = self.payload.to_vec();
    }
}

/// `scheme://host[:port]/path?query` from a Proxy-Scheme request's options (RFC 7252 §6.5,
/// inverted). Without Uri-Host the host is empty: the request's own destination, which a
/// proxy that serves only its own signed URIs matches by path.
fn compose_uri(scheme: &str, host: Option<&str>, port: Option<u16>, path: &[String], query: &[String]) -> String {
    let mut uri = format!("{scheme}://");
    if let Some(host) = host {
        // An IPv6 literal in Uri-Host has no brackets.
        if host.contains(':') && !host.starts_with('[') {
            uri.push_str(&format!("[{host}]"));
        } else {
            uri.push_str(host);
        }
    }
    if let Some(port) = port {
        uri.push_str(&format!(":{port}"));
    }
    for segment in path {
        uri.push('/');
        uri.push_str(segment);
    }
    for (i, q) in query.iter().enumerate() {
        uri.push(if i == 0 { '?' } else { '&' });
        uri.push_str(q);
    }
    uri
}

/// A CoAP response, without the message layer. A resource returns the whole representation; the
/// endpoint cuts it into Block2 blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub code: ResponseType,
    pub content_format: Option<u16>,
    pub payload: Bytes,
    pub etag: Option<Vec<u8>>,
    pub max_age: Option<u32>,
    /// Set by the endpoint on responses it receives or emits.
    pub observe: Option<u32>,
    pub block1: Option<BlockOpt>,
    pub block2: Option<BlockOpt>,
    pub size1: Option<u32>,
    pub size2: Option<u32>,
}

impl Response {
    /// A response with only a code.
    pub fn new(code: ResponseType) -> Self {
        Self {
            code,
            content_format: None,
            payload: Bytes::new(),
            etag: None,
            max_age: None,
            observe: None,
            block1: None,
            block2: None,
            size1: None,
            size2: None,
        }
    }

    /// 2.05 Content with a body.
    pub fn content(content_format: u16, payload: impl Into<Bytes>) -> Self {
        Self { content_format: Some(content_format), payload: payload.into(), ..Self::new(ResponseType::Content) }
    }

    /// Decodes the response fields of a packet whose code is a response code.
    pub fn from_packet(pkt: &Packet) -> Result<Self, CoapError> {
        let code = match pkt.header.code {
            MessageClass::Response(c) => c,
            other => return Err(CoapError::NotAResponse(u8::from(other))),
        };
        let mut resp = Self::new(code);
        resp.payload = Bytes::copy_from_slice(&pkt.payload);
        for (number, values) in pkt.options() {
            let Some(value) = values.front() else {
                continue;
            };
            match CoapOption::from(*number) {
                CoapOption::ContentFormat => resp.content_format = Some(uint16(value, "Content-Format")?),
                CoapOption::ETag => resp.etag = Some(value.clone()),
                CoapOption::MaxAge => resp.max_age = decode_uint(value),
                CoapOption::Observe => resp.observe = Some(decode_uint(value).ok_or(CoapError::BadOption("Observe"))?),
                CoapOption::Block1 => resp.block1 = Some(BlockOpt::decode(value)?),
                CoapOption::Block2 => resp.block2 = Some(BlockOpt::decode(value)?),
                CoapOption::Size1 => resp.size1 = decode_uint(value),
                CoapOption::Size2 => resp.size2 = decode_uint(value),
                _ => {}
            }
        }
        Ok(resp)
    }

    /// Writes code, options and `payload` (which may be one block of `self.payload`).
    pub fn write_into(&self, pkt: &mut Packet, payload: &[u8]) {
        pkt.header.code = MessageClass::Response(self.code);
        if let Some(e) = &self.etag {
            pkt.add_option(CoapOption::ETag, e.clone());
        }
        if let Some(o) = self.observe {
            pkt.add_option(CoapOption::Observe, encode_uint(o & 0x00ff_ffff));
        }
        if let Some(cf) = self.content_format {
            pkt.add_option(CoapOption::ContentFormat, encode_uint(cf.into()));
        }
        if let Some(m) = self.max_age {
            pkt.add_option(CoapOption::MaxAge, encode_uint(m));
        }
        if let Some(b) = self.block2 {
            pkt.add_option(CoapOption::Block2, b.encode());
        }
        if let Some(b) = self.block1 {
            pkt.add_option(CoapOption::Block1, b.encode());
        }
        if let Some(s) = self.size2 {
            pkt.add_option(CoapOption::Size2, encode_uint(s));
        }
        if let Some(s) = self.size1 {
            pkt.add_option(CoapOption::Size1, encode_uint(s));
        }
        pkt.payload = payload.to_vec();
    }
}

/// Splits "a/b", "/a/b" or "" into segments, dropping empty ones.
pub fn split_path(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn utf8(value: &[u8], what: &'static str) -> Result<String, CoapError> {
    String::from_utf8(value.to_vec()).map_err(|_| CoapError::BadOption(what))
}

fn uint16(value: &[u8], what: &'static str) -> Result<u16, CoapError> {
    decode_uint(value).and_then(|v| u16::try_from(v).ok()).ok_or(CoapError::BadOption(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_round_trip() {
        assert_eq!(encode_uint(0), Vec::<u8>::new());
        assert_eq!(encode_uint(0x1234), vec![0x12, 0x34]);
        assert_eq!(decode_uint(&[0x01, 0, 0]), Some(0x10000));
        assert_eq!(decode_uint(&[1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn request_vector() {
        // 0x40 ver 1, CON, TKL 0 | 0x01 GET | 0x12 0x34 MID
        // 0xb4 Uri-Path (11) len 4 "suit" | 0x04 Uri-Path len 4 "slot"
        // 0xc1 0x02: delta 12 -> Block2 (23), len 1, NUM 0 M 0 SZX 2
        let bytes = [0x40, 0x01, 0x12, 0x34, 0xb4, b's', b'u', b'i', b't', 0x04, b's', b'l', b'o', b't', 0xc1, 0x02];
        let pkt = Packet::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e:?}"));
        let req = Request::from_packet(&pkt).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.path, vec!["suit", "slot"]);
        assert_eq!(req.block2, Some(BlockOpt { num: 0, more: false, szx: 2 }));
        assert!(req.confirmable);
        assert_eq!(req.proxy_uri, None);
    }

    #[test]
    fn proxy_requests_name_an_absolute_uri() {
        let mut pkt = Packet::new();
        pkt.header.code = MessageClass::Request(RequestType::Get);
        pkt.add_option(CoapOption::ProxyUri, b"coap://[fd00::1]/fw/a.bin".to_vec());
        let req = Request::from_packet(&pkt).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.proxy_uri.as_deref(), Some("coap://[fd00::1]/fw/a.bin"));
        // Proxy-Scheme with Uri-Host (an IPv6 literal, unbracketed), Uri-Port, Uri-Path.
        let mut pkt = Packet::new();
        pkt.header.code = MessageClass::Request(RequestType::Get);
        pkt.add_option(CoapOption::UriHost, b"fd00::1".to_vec());
        pkt.add_option(CoapOption::UriPort, encode_uint(5684));
        pkt.add_option(CoapOption::UriPath, b"fw".to_vec());
        pkt.add_option(CoapOption::UriPath, b"a.bin".to_vec());
        pkt.add_option(CoapOption::ProxyScheme, b"coap".to_vec());
        let req = Request::from_packet(&pkt).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.proxy_uri.as_deref(), Some("coap://[fd00::1]:5684/fw/a.bin"));
        assert!(req.path.is_empty(), "the path is the proxied URI's");
        let mut out = Packet::new();
        Request { proxy_uri: Some("coap://gw/x".into()), ..Request::get("") }.write_into(&mut out);
        let back = Request::from_packet(&out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.proxy_uri.as_deref(), Some("coap://gw/x"));
    }
}
