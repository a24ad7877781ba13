//! Reassembly of RFC 4944 §5.3 fragments, many datagrams at once.
//!
//! smoltcp's `iface::fragmentation` reassembler holds a small fixed set of buffers sized at
//! build time by a cargo feature, evicts silently and is tied to its `Interface`. A border router
//! hears many children at once and must resist fragment floods, so this one keys buffers by
//! (source, destination, size, tag) as RFC 4944 requires and bounds, with counters:
//! - the number of buffers and their total bytes (new datagrams are refused when full, rather
//!   than evicting others, so a flood cannot flush datagrams that are being received),
//! - buffers per source (one noisy neighbour cannot take all buffers),
//! - the datagram size (at most the IPv6 minimum MTU, 1280),
//! - lifetime: a buffer is dropped 60 s after its first fragment (RFC 4944 reassembly timeout).
//!
//! Fragments are placed in the uncompressed datagram: FRAG1's compressed headers are expanded
//! first. Coverage is tracked per 8-byte unit; overlapping fragments are accepted (later bytes
//! win), fragments past the size or misaligned are rejected.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::ipv6::MIN_MTU;
use super::mac::MacAddr;
use super::sixlowpan::{self, FragHeader, SixlowpanError};

#[derive(Debug, Clone)]
pub struct ReassemblyConfig {
    pub max_buffers: usize,
    pub max_bytes: usize,
    pub max_per_source: usize,
    pub timeout: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig { max_buffers: 32, max_bytes: 16 * 1024, max_per_source: 4, timeout: Duration::from_secs(60) }
    }
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub fragments: u64,
    pub started: u64,
    pub completed: u64,
    pub timed_out: u64,
    /// Refused because a count or byte bound was reached.
    pub refused_full: u64,
    /// Refused because the source already has `max_per_source` buffers.
    pub refused_per_source: u64,
    /// Malformed, misaligned or inconsistent fragments.
    pub invalid: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    #[error(transparent)]
    Sixlowpan(#[from] SixlowpanError),
    #[error("fragment outside its datagram (offset {offset}, length {len}, size {size})")]
    OutOfRange { offset: usize, len: usize, size: usize },
    #[error("datagram size {0} out of range")]
    Size(usize),
    #[error("no reassembly buffer free")]
    Full,
    #[error("too many reassemblies from one source")]
    PerSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    src: MacAddr,
    dst: MacAddr,
    size: u16,
    tag: u16,
}

struct Buffer {
    data: Vec<u8>,
    /// One bit per 8-byte unit received.
    have: Vec<u64>,
    missing: usize,
    expires: Instant,
    udp_checksum_elided: bool,
}

impl Buffer {
    fn mark(&mut self, from: usize, to: usize) {
        for u in from / 8..to.div_ceil(8) {
            let (w, b) = (u / 64, 1u64 << (u % 64));
            if self.have[w] & b == 0 {
                self.have[w] |= b;
                self.missing -= 1;
            }
        }
    }
}

pub struct Reassembler {
    cfg: ReassemblyConfig,
    bufs: BTreeMap<Key, Buffer>,
    bytes: usize,
    stats: ReassemblyStats,
}

impl Reassembler {
    pub fn new(cfg: ReassemblyConfig) -> Reassembler {
        Reassembler { cfg, bufs: BTreeMap::new(), bytes: 0, stats: ReassemblyStats::default() }
    }

    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Datagrams being reassembled.
    pub fn in_progress(&self) -> usize {
        self.bufs.len()
    }

    /// Bytes held in buffers.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes one MAC payload starting with a FRAG1/FRAGN header. Returns the uncompressed IPv6
    /// datagram when this fragment completed it.
    pub fn accept(
        &mut self,
        now: Instant,
        src: MacAddr,
        dst: MacAddr,
        payload: &[u8],
        context0: Option<Ipv6Addr>,
    ) -> Result<Option<Vec<u8>>, ReassemblyError> {
        self.stats.fragments += 1;
        let r = self.accept_inner(now, src, dst, payload, context0);
        if matches!(
            r,
            Err(ReassemblyError::Sixlowpan(_) | ReassemblyError::OutOfRange { .. } | ReassemblyError::Size(_))
        ) {
            self.stats.invalid += 1;
        }
        r
    }

    fn accept_inner(
        &mut self,
        now: Instant,
        src: MacAddr,
        dst: MacAddr,
        payload: &[u8],
        context0: Option<Ipv6Addr>,
    ) -> Result<Option<Vec<u8>>, ReassemblyError> {
        let h = FragHeader::parse(payload)?;
        let size = usize::from(h.size);
        if !(super::ipv6::HEADER_LEN..=MIN_MTU).contains(&size) {
            return Err(ReassemblyError::Size(size));
        }
        let body = &payload[h.header_len()..];
        // Expand FRAG1's compressed headers so it lands at uncompressed offset 0.
        let (piece, elided): (Vec<u8>, bool) = if h.first {
            let d = sixlowpan::decompress(body, src, dst, context0, Some(size))?;
            let mut p = d.headers;
            p.extend_from_slice(&body[d.consumed..]);
            (p, d.udp_checksum_elided)
        } else {
            (body.to_vec(), false)
        };
        let end = h.offset + piece.len();
        // Every fragment but the last covers whole 8-byte units, and a FRAGN starts past the
        // IPv6 header FRAG1 always carries (RFC 4944 §5.3): it must not rewrite the length
        // the UDP checksum fill relies on, nor the addresses.
        let inside_header = !h.first && h.offset < super::ipv6::HEADER_LEN;
        if end > size || piece.is_empty() || (end < size && end % 8 != 0) || inside_header {
            return Err(ReassemblyError::OutOfRange { offset: h.offset, len: piece.len(), size });
        }
        let key = Key { src, dst, size: h.size, tag: h.tag };
        if !self.bufs.contains_key(&key) {
            self.handle_timeout(now);
            if self.bufs.len() >= self.cfg.max_buffers || self.bytes + size > self.cfg.max_bytes {
                self.stats.refused_full += 1;
                return Err(ReassemblyError::Full);
            }
            if self.bufs.keys().filter(|k| k.src == src).count() >= self.cfg.max_per_source {
                self.stats.refused_per_source += 1;
                return Err(ReassemblyError::PerSource);
            }
            let units = size.div_ceil(8);
            self.bufs.insert(
                key,
                Buffer {
                    data: vec![0; size],
                    have: vec![0; units.div_ceil(64)],
                    missing: units,
                    expires: now + self.cfg.timeout,
                    udp_checksum_elided: false,
                },
            );
            self.bytes += size;
            self.stats.started += 1;
        }
        let Some(buf) = self.bufs.get_mut(&key) else { return Ok(None) };
        buf.data[h.offset..end].copy_from_slice(&piece);
        buf.udp_checksum_elided |= elided;
        buf.mark(h.offset, end);
        if buf.missing > 0 {
            return Ok(None);
        }
        let Some(done) = self.bufs.remove(&key) else { return Ok(None) };
        self.bytes -= size;
        self.stats.completed += 1;
        let mut data = done.data;
        if done.udp_checksum_elided {
            sixlowpan::fill_udp_checksum(&mut data);
        }
        Ok(Some(data))
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bufs.values().map(|b| b.expires).min()
    }

    /// Drops datagrams whose fragments did not all arrive in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        let before = self.bufs.len();
        let mut freed = 0;
        self.bufs.retain(|k, b| {
            let keep = b.expires > now;
            if !keep {
                freed += usize::from(k.size);
            }
            keep
        });
        self.bytes -= freed;
        self.stats.timed_out += (before - self.bufs.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ipv6;
    use crate::net::sixlowpan::{compress, fragment};

    const A: MacAddr = MacAddr::Short(0x0a);
    const B: MacAddr = MacAddr::Short(0x0b);

    fn frags(tag: u16, len: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let full = ipv6::build_udp((ipv6::link_local(A), 1), (ipv6::link_local(B), 2), 64, &vec![0x5a; len]);
        let c = compress(&full, A, B, None).unwrap();
        (full, fragment(&c, tag, 100).unwrap())
    }

    #[test]
    fn reordered_fragments_reassemble() {
        let now = Instant::now();
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let (full, mut f) = frags(1, 500);
        f.reverse();
        let last = f.pop().unwrap();
        for x in &f {
            assert_eq!(r.accept(now, A, B, x, None).unwrap(), None);
        }
        assert_eq!(r.accept(now, A, B, &last, None).unwrap(), Some(full));
        assert_eq!((r.in_progress(), r.bytes()), (0, 0));
    }

    #[test]
    fn many_concurrent_then_timeout() {
        let now = Instant::now();
        let cfg = ReassemblyConfig { max_per_source: 64, max_bytes: 64 * 1280, ..Default::default() };
        let mut r = Reassembler::new(cfg);
        let sets: Vec<_> = (0..20u16).map(|t| frags(t, 300 + usize::from(t))).collect();
        // Interleave: first fragment of every datagram, then the rest.
        for (_, f) in &sets {
            assert_eq!(r.accept(now, A, B, &f[0], None).unwrap(), None);
        }
        assert_eq!(r.in_progress(), 20);
        for (full, f) in sets.iter().take(19) {
            let mut out = None;
            for x in &f[1..] {
                out = r.accept(now, A, B, x, None).unwrap();
            }
            assert_eq!(out.as_ref(), Some(full));
        }
        r.handle_timeout(now + Duration::from_secs(60));
        assert_eq!((r.in_progress(), r.bytes(), r.stats().timed_out), (0, 0, 1));
    }

    #[test]
    fn flood_is_bounded() {
        let now = Instant::now();
        let mut r = Reassembler::new(ReassemblyConfig::default());
        // One source: capped at max_per_source buffers.
        for tag in 0..10u16 {
            let _ = r.accept(now, A, B, &frags(tag, 400).1[1], None);
        }
        assert_eq!(r.in_progress(), 4);
        assert_eq!(r.stats().refused_per_source, 6);
        // Many sources: capped by bytes and count.
        for s in 0..100u16 {
            let _ = r.accept(now, MacAddr::Short(0x100 + s), B, &frags(0, 1200).1[1], None);
        }
        assert!(r.bytes() <= 16 * 1024 && r.in_progress() <= 32);
        assert!(r.stats().refused_full > 0);
    }

    #[test]
    fn bad_fragments_are_rejected() {
        let now = Instant::now();
        let mut r = Reassembler::new(ReassemblyConfig::default());
        // FRAGN beyond the datagram size.
        let bad = [0xe0, 0x50, 0, 1, 20, 1, 2, 3, 4, 5, 6, 7, 8];
        assert!(matches!(r.accept(now, A, B, &bad, None), Err(ReassemblyError::OutOfRange { .. })));
        // Size above 1280.
        let big = [0xe7, 0xff, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(r.accept(now, A, B, &big, None), Err(ReassemblyError::Size(0x7ff)));
        // Misaligned middle fragment.
        let odd = [0xe1, 0x00, 0, 1, 1, 1, 2, 3];
        assert!(r.accept(now, A, B, &odd, None).is_err());
        assert_eq!(r.stats().invalid, 3);
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn a_fragn_inside_the_ipv6_header_cannot_rewrite_what_frag1_wrote() {
        let now = Instant::now();
        let mut r = Reassembler::new(ReassemblyConfig::default());
        // FRAG1 of a 56-byte datagram: link-local addresses from the MAC, UDP with ports and
        // checksum compressed away (48 bytes of headers once decompressed).
        let frag1 = [0xc0, 56, 0x12, 0x34, 0x7f, 0x33, 0xf7, 0x00];
        assert_eq!(r.accept(now, A, B, &frag1, None), Ok(None));
        // A FRAGN at offset 0 with an IPv6 header whose payload length is 0 (no room for UDP).
        let mut fragn = vec![0xe0, 56, 0x12, 0x34, 0];
        fragn.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, 17, 64]);
        fragn.extend_from_slice(&[0; 48]);
        assert!(matches!(r.accept(now, A, B, &fragn, None), Err(ReassemblyError::OutOfRange { offset: 0, .. })));
        // Nor one inside the IPv6 header (the addresses, at offset 8).
        let fragn8 = [[0xe0, 56, 0x12, 0x34, 1].as_slice(), &[0xaa; 48]].concat();
        assert!(matches!(r.accept(now, A, B, &fragn8, None), Err(ReassemblyError::OutOfRange { offset: 8, .. })));
        // Whatever lands there, filling in the checksum never reads past the datagram.
        let mut short = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        short.extend_from_slice(&[0; 48]);
        crate::net::sixlowpan::fill_udp_checksum(&mut short);
        assert_eq!(&short[40..], &[0; 16]);
    }
}
