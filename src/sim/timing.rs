//! PHY and MAC timing of the 2.4 GHz O-QPSK PHY and the unslotted CSMA-CA MAC
//! (IEEE 802.15.4-2006: §6.5 2450 MHz PHY, §6.4 PHY constants, §7.4 MAC constants and PIB,
//! §7.5.1.4 CSMA-CA, §7.5.6.4 acknowledgments, §7.5.1.3 IFS). Values and the analytic
//! single-sender ceiling: `shared/reference/radio.md`.

/// PSDU of an immediate acknowledgment: frame control, sequence number, FCS.
pub const ACK_PSDU_BYTES: usize = 5;
/// Acknowledgment Request, bit 5 of the frame control's first octet.
const ACK_REQUEST_BIT: u8 = 1 << 5;

/// Timing the medium runs on. [`Timing::STANDARD`] is the standard; the other profile exists
/// only to reproduce a published analysis under its own assumptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// One octet on air: 2 symbols of 16 µs.
    pub byte_us: u64,
    /// SHR (preamble 4 + SFD 1) and PHR (1) before the PSDU.
    pub phy_header_bytes: u64,
    /// aUnitBackoffPeriod, 20 symbols.
    pub backoff_unit_us: u64,
    /// CCA detection time, 8 symbols.
    pub cca_us: u64,
    /// RX→TX switch between a clear CCA and the frame (aTurnaroundTime).
    pub cca_to_tx_us: u64,
    /// aTurnaroundTime: RX end → ACK start; also RX→TX for a transmission without CSMA.
    pub turnaround_us: u64,
    /// macAckWaitDuration, 54 symbols: the ACK must be fully received by then.
    pub ack_wait_us: u64,
    /// macSifsPeriod, 12 symbols, after an MPDU of at most aMaxSifsFrameSize bytes.
    pub sifs_us: u64,
    /// macLifsPeriod, 40 symbols, after longer MPDUs.
    pub lifs_us: u64,
    /// aMaxSifsFrameSize.
    pub max_sifs_frame: usize,
    pub min_be: u8,
    pub max_be: u8,
}

impl Timing {
    /// IEEE 802.15.4 2.4 GHz O-QPSK with the default PIB (macMinBE 3, macMaxBE 5).
    pub const STANDARD: Timing = Timing {
        byte_us: 32,
        phy_header_bytes: 6,
        backoff_unit_us: 320,
        cca_us: 128,
        cca_to_tx_us: 192,
        turnaround_us: 192,
        ack_wait_us: 864,
        sifs_us: 192,
        lifs_us: 640,
        max_sifs_frame: 18,
        min_be: 3,
        max_be: 5,
    };

    /// Latré et al. (JNW 2006) count neither the CCA nor the RX→TX switch after it as time of
    /// their own (delay = backoff + frame [+ turnaround + ACK] + IFS): this profile zeroes
    /// both so the simulator can be checked against their headline figure. Not for anything
    /// else.
    pub const LATRE_2006: Timing = Timing { cca_us: 0, cca_to_tx_us: 0, ..Timing::STANDARD };

    /// Time a PSDU of `psdu_len` bytes occupies the air, PHY header included.
    pub fn air_time_us(&self, psdu_len: usize) -> u64 {
        (psdu_len as u64 + self.phy_header_bytes) * self.byte_us
    }

    /// Time a frame and its immediate acknowledgment occupy the air: the frame, and the ACK
    /// when the frame asked for one (the AR bit of its frame control) and it came. The
    /// turnaround between them is silence. ferry's air-time metric counts with this.
    pub fn frame_and_ack_air_time_us(&self, psdu: &[u8], acked: bool) -> u64 {
        let ack_requested = psdu.first().is_some_and(|fc| fc & ACK_REQUEST_BIT != 0);
        let ack = if ack_requested && acked { self.air_time_us(ACK_PSDU_BYTES) } else { 0 };
        self.air_time_us(psdu.len()) + ack
    }

    /// The interframe space owed after a frame with this PSDU length.
    pub fn ifs_us(&self, psdu_len: usize) -> u64 {
        if psdu_len <= self.max_sifs_frame {
            self.sifs_us
        } else {
            self.lifs_us
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing::STANDARD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_costs_its_ack_only_when_it_asked_for_one_and_got_it() {
        let t = Timing::STANDARD;
        let data = [0x61u8, 0xdc, 0, 0, 0, 0, 0, 0, 0, 0]; // AR set
        let broadcast = [0x41u8, 0xd8, 0, 0, 0, 0, 0, 0, 0, 0]; // AR clear
        assert_eq!(t.frame_and_ack_air_time_us(&data, true), (10 + 6) * 32 + (5 + 6) * 32);
        assert_eq!(t.frame_and_ack_air_time_us(&data, false), (10 + 6) * 32);
        assert_eq!(t.frame_and_ack_air_time_us(&broadcast, true), (10 + 6) * 32);
    }

    #[test]
    fn air_times_from_radio_md() {
        let t = Timing::STANDARD;
        assert_eq!(t.air_time_us(127), 4256);
        assert_eq!(t.air_time_us(5), 352);
        assert_eq!(t.ifs_us(18), 192);
        assert_eq!(t.ifs_us(19), 640);
    }
}
