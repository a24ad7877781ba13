//! ZEP v2 (ZigBee Encapsulation Protocol, as RIOT's `socket_zep` and Wireshark's `zep`
//! dissector speak it) and a bridge that puts external ZEP nodes — RIOT `native` boards started
//! with `-z [laddr:lport,]raddr:rport` — on the simulated medium.
//!
//! ```text
//!  0      2       3      4       5         7          8     9           17         21         31      32
//! +------+-------+------+-------+---------+----------+-----+-----------+----------+----------+-------+-----------+
//! | "EX" | ver 2 | type | chan  | dev ID  | LQI mode | LQI | NTP time  | sequence | reserved | len   | PSDU      |
//! |      |       |      |       | (BE16)  |          |     | (BE32+32) | (BE32)   | 10 bytes | (u8)  | len bytes |
//! +------+-------+------+-------+---------+----------+-----+-----------+----------+----------+-------+-----------+
//! ```
//!
//! Type 1 is data: the PSDU is the MAC frame and its 2-byte FCS (CRC-16/KERMIT, little-endian),
//! which `len` counts. Type 2 (ACK) is refused by RIOT and ignored here. Type 255 is RIOT's
//! HELLO: the same header, and `len` bytes of the node's hardware address (its EUI-64).
//!
//! The bridge ([`spawn_bridge`]) binds a UDP port (17754 by default), learns each peer's
//! endpoint from its HELLO or first frame and attaches it to the world as an external node
//! ([`World::add_external`](super::world::World::add_external)); its frames go on air from
//! that node through the same medium (collisions, CSMA-CA, link loss), and whatever that node
//! hears goes back to it with the LQI it heard it at. A peer never receives its own frames.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::frame::MAX_PSDU_LEN;
use super::medium::NodeId;
use super::world::{ExternalFrame, WorldHandle};

/// The port RIOT's `zep_dispatch` listens on.
pub const DEFAULT_PORT: u16 = 17754;
/// Header length of a ZEP v2 data frame.
pub const HEADER_LEN: usize = 32;
/// Peers the bridge tracks; further ones are ignored.
pub const MAX_PEERS: usize = 256;
/// Frames for peers waiting for the socket.
const OUT_QUEUE_LEN: usize = 1024;
/// Seconds from the NTP era (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

mod field {
    use std::ops::Range;
    pub const PREAMBLE: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    pub const CHANNEL: usize = 4;
    pub const DEVICE: Range<usize> = 5..7;
    pub const LQI_MODE: usize = 7;
    pub const LQI: usize = 8;
    pub const TIME: Range<usize> = 9..17;
    pub const SEQ: Range<usize> = 17..21;
    pub const LENGTH: usize = 31;
}

/// ZEP v2 frame types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZepType {
    Data,
    Ack,
    /// RIOT's `socket_zep_hello`.
    Hello,
    Unknown(u8),
}

impl From<u8> for ZepType {
    fn from(v: u8) -> Self {
        match v {
            1 => ZepType::Data,
            2 => ZepType::Ack,
            255 => ZepType::Hello,
            n => ZepType::Unknown(n),
        }
    }
}

impl From<ZepType> for u8 {
    fn from(t: ZepType) -> u8 {
        match t {
            ZepType::Data => 1,
            ZepType::Ack => 2,
            ZepType::Hello => 255,
            ZepType::Unknown(n) => n,
        }
    }
}

/// Why a datagram is not a ZEP v2 frame we take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ZepError {
    #[error("shorter than the 32-byte ZEP v2 header")]
    Truncated,
    #[error("no \"EX\" preamble")]
    Preamble,
    #[error("ZEP version {0}, not 2")]
    Version(u8),
    #[error("length field {field} does not match the {actual} bytes after the header")]
    Length { field: usize, actual: usize },
}

/// A parsed ZEP v2 data or HELLO frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZepRepr {
    pub kind: ZepType,
    pub channel: u8,
    pub device_id: u16,
    pub lqi_mode: u8,
    pub lqi: u8,
    /// NTP timestamp: seconds since 1900 in the high 32 bits, fraction in the low.
    pub timestamp: u64,
    pub seq: u32,
    /// The PSDU (MAC frame and FCS) for data; the hardware address for HELLO.
    pub payload: Vec<u8>,
}

impl ZepRepr {
    /// Parses a datagram; RIOT's rule: header plus exactly `len` bytes.
    pub fn parse(b: &[u8]) -> Result<ZepRepr, ZepError> {
        let header = b.get(..HEADER_LEN).ok_or(ZepError::Truncated)?;
        if header[field::PREAMBLE] != *b"EX" {
            return Err(ZepError::Preamble);
        }
        if header[field::VERSION] != 2 {
            return Err(ZepError::Version(header[field::VERSION]));
        }
        let len = usize::from(header[field::LENGTH]);
        let rest = &b[HEADER_LEN..];
        if rest.len() != len {
            return Err(ZepError::Length { field: len, actual: rest.len() });
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&header[field::TIME]);
        let mut seq = [0u8; 4];
        seq.copy_from_slice(&header[field::SEQ]);
        Ok(ZepRepr {
            kind: ZepType::from(header[field::TYPE]),
            channel: header[field::CHANNEL],
            device_id: u16::from_be_bytes([header[field::DEVICE.start], header[field::DEVICE.start + 1]]),
            lqi_mode: header[field::LQI_MODE],
            lqi: header[field::LQI],
            timestamp: u64::from_be_bytes(time),
            seq: u32::from_be_bytes(seq),
            payload: rest.to_vec(),
        })
    }

    /// The datagram; `None` if the payload is longer than the 1-byte length allows.
    pub fn emit(&self) -> Option<Vec<u8>> {
        let len = u8::try_from(self.payload.len()).ok()?;
        let mut b = vec![0u8; HEADER_LEN];
        b[field::PREAMBLE].copy_from_slice(b"EX");
        b[field::VERSION] = 2;
        b[field::TYPE] = self.kind.into();
        b[field::CHANNEL] = self.channel;
        b[field::DEVICE].copy_from_slice(&self.device_id.to_be_bytes());
        b[field::LQI_MODE] = self.lqi_mode;
        b[field::LQI] = self.lqi;
        b[field::TIME].copy_from_slice(&self.timestamp.to_be_bytes());
        b[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        b[field::LENGTH] = len;
        b.extend_from_slice(&self.payload);
        Some(b)
    }
}

/// The wall clock as an NTP timestamp (the IO shell's business: only the bridge calls it).
fn ntp_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = (d.as_secs() + NTP_UNIX_OFFSET) & 0xffff_ffff;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    secs << 32 | frac
}

/// Parses `PORT` or `ADDR:PORT` (`--zep`); a bare port binds every IPv6 and IPv4 address.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0u8; 16], port)));
    }
    s.parse().map_err(|_| format!("`{s}` is neither a port nor ADDR:PORT (e.g. 17754, 127.0.0.1:17754, [::1]:17754)"))
}

/// Binds `listen` and runs the bridge for `world` until `shutdown`. Returns the bound address
/// (useful with port 0) and the task.
pub async fn spawn_bridge(
    listen: SocketAddr,
    world: WorldHandle,
    channel: u8,
    shutdown: CancellationToken,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let socket = UdpSocket::bind(listen).await?;
    let local = socket.local_addr()?;
    let (tx, rx) = mpsc::channel(OUT_QUEUE_LEN);
    world.external_sink(tx).await.map_err(io::Error::other)?;
    let bridge = Bridge { socket, world, channel, peers: HashMap::new(), endpoints: HashMap::new(), seq: 0 };
    Ok((local, tokio::spawn(bridge.run(rx, shutdown))))
}

struct Bridge {
    socket: UdpSocket,
    world: WorldHandle,
    channel: u8,
    peers: HashMap<SocketAddr, NodeId>,
    endpoints: HashMap<NodeId, SocketAddr>,
    seq: u32,
}

impl Bridge {
    async fn run(mut self, mut rx: mpsc::Receiver<ExternalFrame>, shutdown: CancellationToken) {
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let datagram = buf[..n].to_vec();
                        if self.handle_datagram(&datagram, from).await.is_err() {
                            return; // the world stopped
                        }
                    }
                    // ICMP errors from a peer that went away surface here; keep serving.
                    Err(_) => continue,
                },
                f = rx.recv() => match f {
                    Some(f) => self.send_to_peer(f).await,
                    None => return,
                },
            }
        }
    }

    async fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr) -> Result<(), super::world::Stopped> {
        let Ok(zep) = ZepRepr::parse(datagram) else { return Ok(()) };
        if zep.channel != self.channel && zep.kind == ZepType::Data {
            return Ok(());
        }
        let eui = match zep.kind {
            ZepType::Hello => <[u8; 8]>::try_from(zep.payload.as_slice()).ok(),
            ZepType::Data if (2..=MAX_PSDU_LEN).contains(&zep.payload.len()) => None,
            _ => return Ok(()),
        };
        let node = match self.peers.get(&from) {
            Some(&node) => node,
            None => {
                if self.peers.len() >= MAX_PEERS {
                    return Ok(());
                }
                let Ok(node) = self.world.with(move |w| w.add_external(eui)).await? else { return Ok(()) };
                self.peers.insert(from, node);
                self.endpoints.insert(node, from);
                node
            }
        };
        if zep.kind == ZepType::Data {
            let psdu = zep.payload;
            self.world.with(move |w| w.external_transmit(node, &psdu)).await?;
        }
        Ok(())
    }

    async fn send_to_peer(&mut self, f: ExternalFrame) {
        let Some(&to) = self.endpoints.get(&f.node) else { return };
        self.seq = self.seq.wrapping_add(1);
        let zep = ZepRepr {
            kind: ZepType::Data,
            channel: self.channel,
            device_id: u16::try_from(f.node.0).unwrap_or(u16::MAX),
            lqi_mode: 1,
            lqi: f.lqi,
            timestamp: ntp_now(),
            seq: self.seq,
            payload: f.psdu,
        };
        if let Some(datagram) = zep.emit() {
            // UDP: a full socket buffer loses the frame, as the air would.
            let _ = self.socket.send_to(&datagram, to).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frame_layout_round_trips() {
        let bytes = [
            b'E', b'X', 2, 1, // preamble, version 2, type data
            26, 0x12, 0x34, // channel 26, device ID 0x1234
            1, 0xff, // LQI mode, LQI
            0xe9, 0x00, 0x00, 0x01, 0x80, 0x00, 0x00, 0x00, // NTP seconds, fraction 0.5
            0, 0, 0, 7, // sequence 7
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // reserved
            5, // length, FCS included
            0x02, 0x00, 0x2a, 0x5e, 0x39, // an ACK with its FCS
        ];
        let z = ZepRepr::parse(&bytes).unwrap();
        assert_eq!((z.kind, z.channel, z.device_id, z.lqi, z.seq), (ZepType::Data, 26, 0x1234, 0xff, 7));
        assert_eq!(z.timestamp, 0xe900_0001_8000_0000);
        assert_eq!(z.payload, [0x02, 0x00, 0x2a, 0x5e, 0x39]);
        assert_eq!(z.emit().unwrap(), bytes);
        assert_eq!(ZepRepr::parse(&bytes[..36]), Err(ZepError::Length { field: 5, actual: 4 }));
        assert_eq!(ZepRepr::parse(&bytes[..10]), Err(ZepError::Truncated));
        let mut v1 = bytes;
        v1[2] = 1;
        assert_eq!(ZepRepr::parse(&v1), Err(ZepError::Version(1)));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("17754").unwrap().port(), 17754);
        assert_eq!(parse_listen("127.0.0.1:9").unwrap(), "127.0.0.1:9".parse().unwrap());
        assert!(parse_listen("nope").is_err());
    }
}
