//! The control socket: a small JSON-over-HTTP/1.1 API on a Unix socket, for the `ferry` CLI
//! and for scripts (`curl --unix-socket /run/ferry/control.sock http://ferry/v1/status`).
//!
//! Every request carries the peer's uid (SO_PEERCRED), so handlers can restrict owners to
//! their own groups.

pub mod api;
pub mod client;
mod server;

pub use server::{ControlApi, ControlServer, Peer};

/// Why a control request failed, as the daemon tells the client.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code: 400 bad request, 403 not allowed for this uid, 404 unknown, 500 daemon fault.
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError { status: 500, message: message.to_string() }
    }
}
