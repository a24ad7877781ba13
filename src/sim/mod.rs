//! ferry's simulator (`DESIGN.md` §6): a virtual IEEE 802.15.4 medium with the standard's
//! PHY/MAC timing, collisions, CSMA-CA, ACKs and per-link loss, in virtual time, sans-IO.
//!
//! - [`medium`]: the air and every node's radio MAC, driven by `advance(until)`;
//! - [`frame`]: the MAC header fields and FCS the medium needs;
//! - [`link`]: directed links (PRR, RSSI) and a path-loss helper;
//! - [`timing`]: the constants of `shared/reference/radio.md`;
//! - [`pcap`]: capture files of the air that Wireshark decodes;
//! - [`radio`]: `SimRadio`, the RCP core's `Radio` trait on a medium node;
//! - [`rcp_node`]: the real RCP state machine on a `SimRadio`, speaking Spinel to a host;
//! - [`rng`]: the seeded generator every random choice comes from;
//! - [`scenario`]: scenario files (devices, positions or links, duty cycles, failures);
//! - [`device`]: MAC-level device behaviour (always-on, sleepy polling) and the [`Upper`] hook;
//! - [`stack`]: a node's 6LoWPAN/IPv6/UDP interface and CoAP endpoint on medium time;
//! - [`riot`]: [`RiotNode`], a RIOT node running the SUIT update example, with processing
//!   times and failure injection;
//! - [`world`]: a scenario's medium, gateway RCP and devices, in virtual or real time;
//! - [`zep`]: ZEP v2 and the bridge that puts RIOT `native` nodes on the medium.

pub mod bench;
pub mod device;
pub mod frame;
pub mod host;
pub mod link;
pub mod medium;
pub mod pcap;
pub mod radio;
pub mod rcp_node;
pub mod riot;
pub mod rng;
pub mod scenario;
pub mod stack;
pub mod timing;
pub mod world;
pub mod zep;

pub use device::{Device, NoUpper, RxMeta, Upper, WakeRecord};
pub use frame::{Address, FrameType, Header, Psdu};
pub use link::{Link, PathLoss};
pub use medium::{Delivery, Medium, NodeConfig, NodeEvent, NodeId, NodeStats, RxInfo, TxRequest};
pub use pcap::PcapWriter;
pub use radio::SimRadio;
pub use rcp_node::RcpNode;
pub use riot::{NodeTruth, RiotNode, UpdateOutcome, UpdateRecord};
pub use scenario::Scenario;
pub use timing::Timing;
pub use world::{spawn_realtime, World, WorldHandle};
