//! CoAP (RFC 7252) for ferry: a sans-IO endpoint with reliability, deduplication, block-wise
//! transfers (RFC 7959) and Observe (RFC 7641), plus a thin tokio UDP shell.
//!
//! The endpoint is addressed by a generic peer key so the same machine runs over kernel UDP
//! ([`udp`]) and later over 6LoWPAN. It knows nothing of what the bytes mean: resources do.
//! RIOT devices fetch with 64-byte blocks and abort if a block is larger than asked, so the
//! server never answers with a larger SZX than the request's Block2.
//!
//! | file | what |
//! |---|---|
//! | `endpoint.rs` | [`Endpoint`]: message layer, client exchanges, server dispatch, timers |
//! | `block.rs` | [`BlockOpt`], the Block1/Block2 option value |
//! | `msg.rs` | [`Request`] / [`Response`], decoded once from a coap-lite `Packet` |
//! | `resource.rs` | [`Resource`], [`Router`], [`StaticResource`], `/.well-known/core` |
//! | `metrics.rs` | [`Metrics`], plain counters for the daemon to export |
//! | `udp.rs` | the tokio shell |
//!
//! Deliberate limits: one NSTART slot per peer (a block-wise fetch holds it for the whole
//! transfer); dedup remembers answers for EXCHANGE_LIFETIME for CON and NON alike; Observe
//! sequence numbers come from one endpoint-wide counter (increasing for every observer);
//! a notification body larger than a block is sent as block 0 only (the client fetches the
//! rest); no proxying yet (5.05), no BERT, no OSCORE.

pub mod block;
pub mod endpoint;
pub mod error;
pub mod metrics;
pub mod msg;
pub mod resource;
pub mod udp;

pub use block::BlockOpt;
pub use endpoint::{
    is_success, Config, DeferredId, Endpoint, Event, FetchOptions, PeerKey, RequestId, Timer, Transmit,
};
pub use error::{CoapError, RequestError, RespondError, StartError};
pub use metrics::Metrics;
pub use msg::{content_format, Request, Response};
pub use resource::{Outcome, Resource, Router, StaticResource};

/// coap-lite's code and type enums, re-exported so users need not depend on it directly.
pub use coap_lite::{MessageType, RequestType as Method, ResponseType as Code};

#[cfg(test)]
mod tests;
