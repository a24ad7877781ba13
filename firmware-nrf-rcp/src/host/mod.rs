//! The serial link to the host: HDLC-lite bytes in and out, nothing more.
//!
//! Each board provides `HostRx::read` (cancel-safe: bytes are buffered below it, so the RCP
//! loop may drop a pending read when a radio event wins the `select`) and
//! `HostTx::write_all`.

#[cfg(feature = "board-dk")]
mod uart;
#[cfg(feature = "board-dk")]
pub use uart::{start, HostTx};

#[cfg(feature = "board-dongle")]
mod usb;
#[cfg(feature = "board-dongle")]
pub use usb::{start, HostTx};
