//! Capabilities: `PROP_CAPS` entries and the `PROP_RADIO_CAPS` bitmask,
//! `shared/reference/spinel.md` §3 (spinel.h `SPINEL_CAP_*`, OpenThread `OT_RADIO_CAPS_*`).

enum_with_unknown! {
    /// One entry of `PROP_CAPS` (`A(i)`).
    pub enum Capability(u32) {
        Lock = 1,
        NetSave = 2,
        Hbo = 3,
        PowerSave = 4,
        Counters = 5,
        JamDetect = 6,
        PeekPoke = 7,
        WritableRawStream = 8,
        Gpio = 9,
        Trng = 10,
        CmdMulti = 11,
        UnsolUpdateFilter = 12,
        McuPowerState = 13,
        Pcap = 14,
        Ieee802154_2003 = 16,
        Ieee802154_2006 = 17,
        Ieee802154_2011 = 18,
        Pib = 21,
        Ieee802154_2450MhzOqpsk = 24,
        ConfigFtd = 32,
        ConfigMtd = 33,
        /// Required by the host: this co-processor is an RCP.
        ConfigRadio = 34,
        RoleRouter = 48,
        RoleSleepy = 49,
        NetThread1_0 = 52,
        NetThread1_1 = 53,
        NetThread1_2 = 54,
        RcpApiVersion = 64,
        RcpMinHostApiVersion = 65,
        RcpResetToBootloader = 66,
        RcpLogCrashDump = 67,
        MacAllowlist = 512,
        /// Required by the host: raw 802.15.4 frames over STREAM_RAW.
        MacRaw = 513,
        OpenthreadLogMetadata = 518,
        TimeSync = 519,
        Posix = 521,
        RadioCoex = 523,
        MultiRadio = 525,
        /// ferry's own (Spinel's vendor range starts at 15360): the RCP takes one more
        /// STREAM_RAW SET while a transmission is on air and starts it when that one is done,
        /// so the next frame crosses the UART during the current one's air time. A host may
        /// then keep two transmissions outstanding; ot-rcp has one TX buffer and does not.
        FerryTxQueue = 15360,
    }
}

/// The `PROP_RADIO_CAPS` bitmask (`OT_RADIO_CAPS_*`), kept as raw bits so unknown ones survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RadioCaps(pub u32);

impl RadioCaps {
    pub const ACK_TIMEOUT: RadioCaps = RadioCaps(1 << 0);
    pub const ENERGY_SCAN: RadioCaps = RadioCaps(1 << 1);
    pub const TRANSMIT_RETRIES: RadioCaps = RadioCaps(1 << 2);
    pub const CSMA_BACKOFF: RadioCaps = RadioCaps(1 << 3);
    pub const SLEEP_TO_TX: RadioCaps = RadioCaps(1 << 4);
    pub const TRANSMIT_SEC: RadioCaps = RadioCaps(1 << 5);
    pub const TRANSMIT_TIMING: RadioCaps = RadioCaps(1 << 6);
    pub const RECEIVE_TIMING: RadioCaps = RadioCaps(1 << 7);
    pub const RX_ON_WHEN_IDLE: RadioCaps = RadioCaps(1 << 8);
    pub const TRANSMIT_FRAME_POWER: RadioCaps = RadioCaps(1 << 9);
    pub const ALT_SHORT_ADDR: RadioCaps = RadioCaps(1 << 10);

    /// What the posix host (`kRequiredRadioCaps`) demands when built for Thread ≥ 1.2, as
    /// otbr-agent is.
    pub const OTBR_REQUIRED: RadioCaps = RadioCaps(
        Self::ACK_TIMEOUT.0
            | Self::TRANSMIT_RETRIES.0
            | Self::CSMA_BACKOFF.0
            | Self::TRANSMIT_SEC.0
            | Self::TRANSMIT_TIMING.0,
    );

    /// True if every bit of `other` is set here.
    pub const fn contains(self, other: RadioCaps) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union of both bit sets.
    pub const fn union(self, other: RadioCaps) -> RadioCaps {
        RadioCaps(self.0 | other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bits() {
        for n in 0..600u32 {
            assert_eq!(u32::from(Capability::from(n)), n);
        }
        assert_eq!(Capability::from(34), Capability::ConfigRadio);
        assert_eq!(Capability::from(513), Capability::MacRaw);
        // 0x6F from spinel-frames.txt is ACK_TIMEOUT|ENERGY_SCAN|TRANSMIT_RETRIES|CSMA_BACKOFF|
        // TRANSMIT_SEC|TRANSMIT_TIMING, which covers what otbr-agent requires.
        let caps = RadioCaps(0x6F);
        assert!(caps.contains(RadioCaps::OTBR_REQUIRED));
        assert!(caps.contains(RadioCaps::ENERGY_SCAN));
        assert!(!caps.contains(RadioCaps::SLEEP_TO_TX));
    }
}
