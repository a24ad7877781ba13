//! The host side of Spinel: ferryd's link to its radio co-processor (RCP), driven the way
//! otbr-agent drives `ot-rcp` (`shared/reference/spinel.md` §4–§5).
//!
//! * [`client`]: the sans-IO Spinel client — handshake (reset, protocol 4.3, CAPS, HWADDR, RCP
//!   API versions, RADIO_CAPS), configuration, TIDs, 2 s timeouts, raw TX/RX, recovery from
//!   RCP resets with the configuration restored. The codec is `ferry-rcp-core`'s.
//! * [`link`]: the thin tokio shell that opens the radio URL (UART via tokio-serial, or a
//!   program on a pty), runs the client, reopens the device with backoff, and offers an async
//!   API ([`Radio`]).
//! * [`metrics`]: `ferry_rcp_up`, `ferry_rcp_resets_total`, `ferry_radio_frames_total`.
//!
//! # How the daemon uses it
//!
//! ```no_run
//! # async fn demo(config: &ferry::config::Config, metrics: &ferry::metrics::Metrics,
//! #               shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
//! use ferry::radio::{self, RadioMetrics, Settings, TxOptions};
//! let radio_metrics = RadioMetrics::register(metrics.registry(), metrics.rcp_up.clone())?;
//! let settings = Settings::for_network(&config.network); // channel and PAN ID
//! // Opens the URL in the background and returns at once. `sim:` URLs are refused (the
//! // simulator wires its own RCP).
//! let (radio, mut frames) = radio::spawn(&config.radio.url, settings, radio_metrics, shutdown)?;
//! radio.wait_ready().await;                       // or watch `radio.state()`
//! let psdu = [0x41, 0xd8, 0x01, 0x34, 0x12, 0xff, 0xff, 0x01, 0x00, 0, 0];
//! let ack = radio.send_frame(&psdu, TxOptions::default()).await; // Result<TxAck, TxError>
//! while let Some(frame) = frames.recv().await {   // RxFrame: psdu, rssi, lqi, timestamp_us, …
//!     let _ = frame;
//! }
//! # let _ = ack; Ok(()) }
//! ```
//!
//! * **At start:** [`spawn`] with the `[radio] url`, the MAC settings and the metrics. Then
//!   [`Radio::set_channel`] / [`Radio::src_match_insert`] / [`Radio::src_match_remove`] at any
//!   time: they are recorded and restored after every RCP reset or reconnect.
//! * **Events:** received frames arrive on the bounded channel `spawn` returns (frames are
//!   dropped and counted when it is full); the link state is a `watch` ([`Radio::state`]).
//!   `send_frame` resolves to the TX-done (ACK with its Frame Pending bit, or NO_ACK /
//!   CCA failure).
//! * **Unplug / crash:** a read error, EOF, or a program exit marks the link down
//!   (`ferry_rcp_up` 0), fails transmissions in flight with [`TxError::Aborted`], and reopens the
//!   device with exponential backoff (0.2 s … 10 s) until it is back; an RCP that stops answering
//!   is reset and re-initialised, and after three failed handshakes the device is reopened. An
//!   unsolicited RCP reset is counted in `ferry_rcp_resets_total` and re-initialised at once.
//!   The daemon only has to watch the state; it never needs to restart anything.
//! * **Shutdown:** cancel the token; the task closes the device (and kills a forkpty program).

pub mod client;
pub mod link;
pub mod metrics;
pub mod pty;

pub use client::{
    Client, ClientError, Event, LinkState, Op, RcpInfo, RxFrame, Settings, SrcAddr, TimedTx, TxAck, TxError, TxOptions,
};
pub use link::{spawn, spawn_with, Connection, LinkError, LinkStatus, Opener, Radio, TxReceipt};
pub use metrics::RadioMetrics;
