//! Errors of the CoAP room.

use thiserror::Error;

use super::block::BlockError;

/// A message or option we could not accept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoapError {
    #[error("code {0:#04x} is not a request code")]
    NotARequest(u8),
    #[error("code {0:#04x} is not a response code")]
    NotAResponse(u8),
    #[error("option {0} has a malformed value")]
    BadOption(&'static str),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("could not encode message: {0}")]
    Encode(String),
}

/// Why a client request could not be started.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StartError {
    #[error("too many requests in flight or queued ({0}); wait for some to complete")]
    TooManyRequests(usize),
    #[error("the queue for this peer is full ({0} requests); NSTART=1 serialises them")]
    PeerQueueFull(usize),
}

/// Why a client request failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("no response after {0} transmissions")]
    Timeout(u32),
    #[error("no separate response within the exchange deadline")]
    ResponseTimeout,
    #[error("the peer rejected the request with a Reset")]
    Reset,
    #[error("the body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    #[error("block-wise transfer broke: {0}")]
    BadBlock(&'static str),
    #[error("the response could not be decoded: {0}")]
    BadResponse(CoapError),
    #[error("the request could not be encoded: {0}")]
    Encode(String),
}

/// Why a deferred response could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RespondError {
    #[error("no deferred request with this id (already answered or expired)")]
    Unknown,
}
