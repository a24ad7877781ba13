//! Directed radio links: the probability a frame arrives intact on its own (packet reception
//! ratio, before collisions) and the RSSI it arrives with. A log-distance path-loss helper
//! derives both from geometry, with the O-QPSK bit error rate of IEEE 802.15.4-2006 Annex E
//! (§E.4.1.8, the 2.4 GHz BER formula).

/// One direction of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Probability in [0, 1] that a frame that does not collide is received intact.
    pub prr: f64,
    /// Received signal strength in dBm; decides CCA (against the listener's threshold) and
    /// whether the receiver can synchronise (against its sensitivity).
    pub rssi_dbm: i8,
}

impl Link {
    pub fn new(prr: f64, rssi_dbm: i8) -> Self {
        Link { prr: prr.clamp(0.0, 1.0), rssi_dbm }
    }

    /// A perfect link at a comfortable -50 dBm.
    pub fn perfect() -> Self {
        Link::new(1.0, -50)
    }
}

/// Log-distance path loss: PL(d) = PL(d0) + 10·n·log10(d/d0), d0 = 1 m.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathLoss {
    /// Loss at 1 m in dB (≈ 40 dB at 2.4 GHz in free space).
    pub loss_at_1m_db: f64,
    /// Path-loss exponent: 2 free space, ~3 indoors.
    pub exponent: f64,
    /// Noise floor in dBm.
    pub noise_dbm: f64,
    /// Receive sensitivity: below it there is no link.
    pub sensitivity_dbm: f64,
}

impl Default for PathLoss {
    fn default() -> Self {
        PathLoss { loss_at_1m_db: 40.0, exponent: 3.0, noise_dbm: -100.0, sensitivity_dbm: -100.0 }
    }
}

impl PathLoss {
    /// The link from a transmitter at `tx_dbm` to a receiver `distance_m` away, with the PRR of
    /// a `psdu_len`-byte frame; `None` when the signal is below sensitivity.
    pub fn link(&self, distance_m: f64, tx_dbm: f64, psdu_len: usize) -> Option<Link> {
        let d = distance_m.max(0.1);
        let rssi = tx_dbm - self.loss_at_1m_db - 10.0 * self.exponent * d.log10();
        if rssi < self.sensitivity_dbm {
            return None;
        }
        let snr = 10f64.powf((rssi - self.noise_dbm) / 10.0);
        let bits = 8.0 * (psdu_len as f64 + 6.0);
        let prr = (1.0 - oqpsk_ber(snr)).powf(bits);
        Some(Link::new(prr, rssi.round().clamp(-128.0, 127.0) as i8))
    }
}

/// Bit error rate of 2.4 GHz O-QPSK at linear SINR `snr` (802.15.4-2006 Annex E):
/// BER = (8/15)·(1/16)·Σ_{k=2}^{16} (−1)^k·C(16,k)·exp(20·SINR·(1/k − 1)).
pub fn oqpsk_ber(snr: f64) -> f64 {
    let mut sum = 0.0;
    let mut binom = 16.0 * 15.0 / 2.0; // C(16, 2)
    for k in 2..=16u32 {
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        sum += sign * binom * (20.0 * snr * (1.0 / f64::from(k) - 1.0)).exp();
        binom = binom * f64::from(16 - k) / f64::from(k + 1);
    }
    (8.0 / 15.0 / 16.0 * sum).clamp(0.0, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_loss_is_monotonic() {
        let pl = PathLoss::default();
        let near = pl.link(1.0, 0.0, 127).unwrap();
        assert_eq!(near.rssi_dbm, -40);
        assert!(near.prr > 0.999);
        let far = pl.link(90.0, 0.0, 127).unwrap();
        assert!(far.prr < near.prr && far.rssi_dbm < near.rssi_dbm);
        assert!(pl.link(1000.0, 0.0, 127).is_none());
        // The BER curve falls off a cliff around 0 dB SNR, as in the Annex E plot.
        assert!(oqpsk_ber(10f64.powf(-0.5)) > 1e-3 && oqpsk_ber(10f64.powf(0.5)) < 1e-5);
    }
}
