//! ferry's radio co-processor core: HDLC-lite framing, the Spinel codec and the RCP
//! state machine, shared by the nRF52840 firmware, the host daemon (`src/radio`) and the
//! simulator (`src/sim`).
//!
//! Facts and layouts come from `shared/reference/spinel.md` (OpenThread `src/lib/hdlc/hdlc.cpp`,
//! `src/lib/spinel/spinel.h`, `src/ncp/ncp_base_radio.cpp`, `src/lib/spinel/radio_spinel.cpp`).
//!
//! # Panic rules
//!
//! Every parser in this crate takes untrusted bytes and returns a typed error instead of
//! panicking, whatever the input. Emitters write into a caller buffer and return
//! [`spinel::Error::BufferTooSmall`] / [`hdlc::EncodeError`] when it is too short; they never
//! write past it. Nothing here allocates.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

#[macro_use]
mod macros;

pub mod hdlc;
pub mod radio;
pub mod rcp;
pub mod spinel;

#[cfg(test)]
mod vectors;
