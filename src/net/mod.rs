//! The LoWPAN side of the border router: IEEE 802.15.4 MAC framing, the sans-IO MAC layer with
//! its indirect queue for sleepy children, 6LoWPAN (RFC 6282 IPHC/NHC, RFC 4944 fragments),
//! IPv6 with UDP, ICMPv6 echo and a minimal RFC 4861/6775 neighbour discovery.
//!
//! Wire objects build on `smoltcp::wire` (802.15.4 frame, IPHC, UDP NHC, fragment header); the
//! machines (`MacLayer`, `Reassembler`, `Interface`) are ours because smoltcp's interface owns
//! sockets and a single reassembly buffer, while ferry needs many reassemblies, an indirect
//! queue and time passed in as an argument.
//!
//! Call order for the daemon or a simulated device:
//! 1. `Interface::handle_frame(now, psdu, meta)` for every received PSDU (FCS included);
//! 2. drain `poll_udp()` (datagrams for the CoAP endpoint) and `poll_source_match()`
//!    (addresses to insert into / remove from the RCP's source-match table);
//! 3. drain `poll_transmit(now)` into the radio;
//! 4. call `handle_timeout(now)` when `poll_timeout()` is reached (calling early is harmless).

pub mod icmpv6;
pub mod iface;
pub mod ipv6;
pub mod mac;
pub mod mac_layer;
pub mod reassembly;
pub mod rpl;
pub mod rpl_node;
pub mod rpl_root;
pub mod sixlowpan;
pub mod srh;
pub mod trickle;
pub mod udp_nhc;

pub use iface::{Interface, InterfaceConfig, InterfaceStats, SendError, UdpDatagram};
pub use mac::{FrameKind, MacAddr, MacError, MacFrame};
pub use mac_layer::{MacConfig, MacLayer, MacStats, Neighbor, RxMeta, SourceMatch, Transmit};
pub use reassembly::{Reassembler, ReassemblyConfig, ReassemblyStats};
