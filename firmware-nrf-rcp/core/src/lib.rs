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
//!
//! # Example
//!
//! A host request travels as HDLC-lite bytes, is decoded, parsed once into a [`spinel::Repr`],
//! and can be emitted and encoded back byte for byte:
//!
//! ```
//! use ferry_rcp_core::hdlc::{self, SpinelDecoder};
//! use ferry_rcp_core::spinel::{Command, Property, Repr};
//!
//! // GET PROTOCOL_VERSION, TID 1, as it arrives on the UART.
//! let wire = [0x7e, 0x81, 0x02, 0x01, 0xc5, 0xb2, 0x7e];
//! let mut decoder = SpinelDecoder::new();
//! let (used, frame) = decoder.feed(&wire);
//! assert_eq!(used, wire.len());
//! let frame = frame.expect("a complete frame").expect("good FCS");
//! let repr = Repr::parse(frame).expect("valid Spinel");
//! assert_eq!((repr.header.tid(), repr.command), (1, Command::PropValueGet));
//! assert_eq!(repr.prop(), Some(Property::ProtocolVersion));
//!
//! let mut spinel = [0u8; 8];
//! let n = repr.emit(&mut spinel).unwrap();
//! let mut out = [0u8; 16];
//! let m = hdlc::encode(&spinel[..n], &mut out).unwrap();
//! assert_eq!(&out[..m], wire);
//! ```
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
