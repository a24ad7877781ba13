//! Spinel property ids, `shared/reference/spinel.md` §3 (spinel.h `SPINEL_PROP_*`).
//!
//! Each variant's doc gives the value's Spinel type as the RCP uses it.

enum_with_unknown! {
    /// A Spinel property id (packed uint after property commands).
    pub enum Property(u32) {
        /// `i` status, see [`super::Status`]; also the TX-done report (see `stream_raw`).
        LastStatus = 0,
        /// `ii` major, minor; must be 4.3.
        ProtocolVersion = 1,
        /// `U` free-form version string.
        NcpVersion = 2,
        /// `i` (3 = THREAD); not queried by the RCP host.
        InterfaceType = 3,
        /// `i`.
        VendorId = 4,
        /// `A(i)` of [`super::Capability`].
        Caps = 5,
        /// `E` factory EUI-64.
        HwAddr = 8,
        /// `b`.
        PhyEnabled = 0x20,
        /// `C` channel 11..=26.
        PhyChan = 0x21,
        /// `A(C)`.
        PhyChanSupported = 0x22,
        /// `c` dBm.
        PhyCcaThreshold = 0x24,
        /// `c` dBm.
        PhyTxPower = 0x25,
        /// `c` dBm.
        PhyRssi = 0x26,
        /// `c` dBm.
        PhyRxSensitivity = 0x27,
        /// `A(C)`.
        PhyChanPreferred = 0x29,
        /// `c`.
        PhyFemLnaGain = 0x2A,
        PhyChanMaxPower = 0x2B,
        PhyRegionCode = 0x2C,
        PhyCalibratedPower = 0x2D,
        PhyChanTargetPower = 0x2E,
        /// `C` 0 IDLE, 1 BEACON, 2 ENERGY, 3 DISCOVER.
        MacScanState = 0x30,
        /// `A(C)`; the host sends one channel byte.
        MacScanMask = 0x31,
        /// `S` ms per channel.
        MacScanPeriod = 0x32,
        MacScanBeacon = 0x33,
        /// `E` extended address.
        Mac15_4Laddr = 0x34,
        /// `S` short address.
        Mac15_4Saddr = 0x35,
        /// `S` PAN id.
        Mac15_4Panid = 0x36,
        /// `b` receiver on and raw frames flowing (0 = sleep).
        MacRawStreamEnabled = 0x37,
        /// `C` 0 OFF, 1 NETWORK, 2 FULL.
        MacPromiscuousMode = 0x38,
        /// `Cc` channel, max RSSI.
        MacEnergyScanResult = 0x39,
        MacDataPollPeriod = 0x3A,
        /// `b`.
        MacRxOnWhenIdleMode = 0x3B,
        /// `S`.
        Mac15_4AltSaddr = 0x3C,
        /// `XLC` when, duration, channel.
        MacRxAt = 0x3D,
        StreamDebug = 0x70,
        /// `dD`; layouts in `stream_raw`.
        StreamRaw = 0x71,
        StreamNet = 0x72,
        StreamNetInsecure = 0x73,
        StreamLog = 0x74,
        /// `i`.
        RcpApiVersion = 0xB0,
        /// `i`.
        RcpMinHostApiVersion = 0xB1,
        /// empty, write-only.
        RcpLogCrashDump = 0xB2,
        UartBitrate = 0x100,
        UartXonXoff = 0x101,
        /// Old alias of MAC_PROMISCUOUS_MODE; not used by the RCP host.
        Pib15_4MacPromiscuousMode = 0x451,
        /// `CCddd` keyIdMode (must be 1), keyId, prev/curr/next 16-byte keys.
        RcpMacKey = 0x800,
        /// `L` or `Lb` (b = set only if larger).
        RcpMacFrameCounter = 0x801,
        /// `X` µs radio time.
        RcpTimestamp = 0x802,
        /// `SEC`.
        RcpEnhAckProbing = 0x803,
        /// `C` ±ppm.
        RcpCslAccuracy = 0x804,
        /// `C` units of 10 µs.
        RcpCslUncertainty = 0x805,
        MultipanActiveInterface = 0x900,
        /// `i` bitmask, see [`super::RadioCaps`].
        RadioCaps = 0x120B,
        RadioCoexMetrics = 0x120C,
        RadioCoexEnable = 0x120D,
        /// `b`.
        MacSrcMatchEnabled = 0x1303,
        /// `A(S)`; SET replaces the list, INSERT/REMOVE take one `S`.
        MacSrcMatchShortAddresses = 0x1304,
        /// `A(E)`; SET replaces the list, INSERT/REMOVE take one `E`.
        MacSrcMatchExtendedAddresses = 0x1305,
        ThreadCslPeriod = 0x1529,
        ThreadCslTimeout = 0x152A,
        ThreadCslChannel = 0x152B,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spinel::packed;

    #[test]
    fn lossless_over_the_packed_range_samples() {
        // Every id up to 0x2000 (covers all named ones) and a sparse sweep above.
        let ids = (0..0x2000u32).chain((0x2000..=packed::MAX).step_by(997));
        for n in ids {
            assert_eq!(u32::from(Property::from(n)), n);
        }
        for &p in Property::KNOWN {
            assert_eq!(Property::from(u32::from(p)), p);
        }
    }

    #[test]
    fn packed_ids_from_vectors() {
        // spinel-primitives.txt packed-uint table
        let mut buf = [0u8; 3];
        for (p, bytes) in [
            (Property::RcpApiVersion, &[0xb0, 0x01][..]),
            (Property::RcpMacKey, &[0x80, 0x10]),
            (Property::RcpTimestamp, &[0x82, 0x10]),
            (Property::RadioCaps, &[0x8b, 0x24]),
            (Property::MacSrcMatchEnabled, &[0x83, 0x26]),
            (Property::MacSrcMatchShortAddresses, &[0x84, 0x26]),
            (Property::MacSrcMatchExtendedAddresses, &[0x85, 0x26]),
        ] {
            let n = packed::encode(p.into(), &mut buf).expect("fits");
            assert_eq!(&buf[..n], bytes);
        }
    }
}
