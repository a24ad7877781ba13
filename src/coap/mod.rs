//! CoAP (RFC 7252) for ferry: a sans-IO endpoint with reliability, deduplication, block-wise
//! transfers (RFC 7959) and Observe (RFC 7641), plus a thin tokio UDP shell.
//!
//! The endpoint is addressed by a generic peer key so the same machine runs over kernel UDP
//! ([`udp`]) and later over 6LoWPAN. It knows nothing of what the bytes mean: resources do.
//! RIOT devices fetch with 64-byte blocks and abort if a block is larger than asked, so the
//! server never answers with a larger SZX than the request's Block2.

pub mod block;
pub mod endpoint;
pub mod error;
pub mod metrics;
pub mod msg;
pub mod resource;
pub mod udp;

pub use block::BlockOpt;
pub use endpoint::{
    Config, DeferredId, Endpoint, Event, FetchOptions, PeerKey, RequestId, Timer, Transmit,
};
pub use error::{CoapError, RequestError, RespondError, StartError};
pub use metrics::Metrics;
pub use msg::{content_format, Request, Response};
pub use resource::{Outcome, Resource, Router, StaticResource};

/// coap-lite's code and type enums, re-exported so users need not depend on it directly.
pub use coap_lite::{MessageType, RequestType as Method, ResponseType as Code};

#[cfg(test)]
mod tests;
