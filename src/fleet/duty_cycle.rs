//! Learned duty cycles: when a sleepy node wakes, from the receive timestamps of its frames.
//!
//! A sleepy 802.15.4 node wakes every `P` µs, sends a MAC Data Request (and maybe more frames),
//! stays awake a few ms and sleeps again. ferry only sees the frames it receives, with the RCP's
//! µs timestamps, so the estimate must cope with:
//!
//! * **missed wakes** (a lost poll, a busy channel): gaps are then `k·P` rather than `P`;
//! * **jitter** of a millisecond or so (CSMA backoff, the node's timer);
//! * **clock drift**: the node's crystal may run 1 % fast or slow, which over a fixed clock is
//!   just a different period, so it is absorbed by fitting the period instead of assuming it.
//!
//! The method, all pure: group frames into wakes (frames closer than [`Params::cluster_gap_us`]
//! belong to one wake); pick a base period that explains the most gaps as integer multiples,
//! preferring the longest such period so `P/2` does not win; number the wakes by accumulating
//! `round(gap / P)`; fit `t_n = t0 + n·P` by least squares; drop outliers (residuals far beyond
//! the median absolute deviation) and refit until stable.

use serde::{Deserialize, Serialize};

/// Tunables of [`estimate`]; the defaults suit RIOT/OpenThread sleepy end devices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Frames closer than this belong to the same wake.
    pub cluster_gap_us: u64,
    /// Fewest wakes for an estimate.
    pub min_wakes: usize,
    /// Residuals within this many µs are never outliers (jitter floor).
    pub jitter_floor_us: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params { cluster_gap_us: 50_000, min_wakes: 3, jitter_floor_us: 3_000.0 }
    }
}

/// What was learned about a node's wake pattern.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DutyCycle {
    /// Wake period in µs, as the gateway's clock sees it (drift included).
    pub period_us: f64,
    /// A wake instant on the gateway's µs clock: the fitted `t0` (the phase reference).
    pub anchor_us: f64,
    /// Typical time awake per wake, from the first to the last frame of a wake, in µs.
    pub awake_us: u64,
    /// 0..=1: how much to trust the estimate (inliers, count, scatter).
    pub confidence: f64,
    /// Root-mean-square residual of the fit, µs.
    pub residual_rms_us: f64,
    /// Wakes that took part in the fit.
    pub wakes_used: usize,
}

impl DutyCycle {
    /// The first predicted wake at or after `t_us`.
    pub fn next_wake_after(&self, t_us: f64) -> f64 {
        let n = ((t_us - self.anchor_us) / self.period_us).ceil();
        self.anchor_us + n * self.period_us
    }

    /// Phase in 0..period: where in the cycle the wakes fall, relative to the clock's zero.
    pub fn phase_us(&self) -> f64 {
        self.anchor_us.rem_euclid(self.period_us)
    }

    /// Fraction of time awake.
    pub fn duty_ratio(&self) -> f64 {
        (self.awake_us as f64 / self.period_us).clamp(0.0, 1.0)
    }
}

/// Why no estimate was made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DutyCycleError {
    #[error("only {have} wakes observed; at least {need} are needed")]
    TooFewWakes { have: usize, need: usize },
    #[error("the wakes show no regular period")]
    NoPeriod,
}

/// One wake: when its first frame arrived and how long frames kept coming.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Wake {
    start: f64,
    span: u64,
}

/// Estimates the duty cycle from µs receive timestamps (any order, duplicates allowed).
pub fn estimate(timestamps_us: &[u64], params: &Params) -> Result<DutyCycle, DutyCycleError> {
    let wakes = cluster(timestamps_us, params.cluster_gap_us);
    let need = params.min_wakes.max(2);
    if wakes.len() < need {
        return Err(DutyCycleError::TooFewWakes { have: wakes.len(), need });
    }
    let gaps: Vec<f64> = wakes.windows(2).map(|w| w[1].start - w[0].start).collect();
    let mut period = base_period(&gaps, params.jitter_floor_us).ok_or(DutyCycleError::NoPeriod)?;

    let mut inliers: Vec<bool> = vec![true; wakes.len()];
    let mut fit = Fit { t0: wakes[0].start, period, rms: 0.0 };
    // A few rounds reach a fixed point: each refines the period that numbers the wakes.
    for _ in 0..6 {
        let index = number_wakes(&wakes, &inliers, period);
        let Some(next) = least_squares(&wakes, &index, &inliers) else { return Err(DutyCycleError::NoPeriod) };
        let residuals: Vec<f64> =
            wakes.iter().zip(&index).map(|(w, &n)| w.start - (next.t0 + n as f64 * next.period)).collect();
        let threshold = outlier_threshold(&residuals, &inliers, params.jitter_floor_us);
        let new_inliers = reject_duplicates(&residuals, &index, threshold);
        let stable = new_inliers == inliers && (next.period - period).abs() < 1e-3;
        inliers = new_inliers;
        period = next.period;
        fit = next;
        if stable {
            break;
        }
    }
    let used = inliers.iter().filter(|&&i| i).count();
    if used < need || fit.period <= 0.0 {
        return Err(DutyCycleError::NoPeriod);
    }
    let mut spans: Vec<u64> = wakes.iter().zip(&inliers).filter(|(_, &i)| i).map(|(w, _)| w.span).collect();
    spans.sort_unstable();
    let awake_us = spans[spans.len() / 2];
    // Confidence: share of wakes explained, saturating in the count, shrinking with scatter
    // relative to the period.
    let inlier_share = used as f64 / wakes.len() as f64;
    let count = 1.0 - (-(used as f64) / 4.0).exp();
    let scatter = 1.0 / (1.0 + fit.rms / (0.002 * fit.period).max(1.0));
    Ok(DutyCycle {
        period_us: fit.period,
        anchor_us: fit.t0,
        awake_us,
        confidence: (inlier_share * count * scatter).clamp(0.0, 1.0),
        residual_rms_us: fit.rms,
        wakes_used: used,
    })
}

fn cluster(timestamps_us: &[u64], gap_us: u64) -> Vec<Wake> {
    let mut sorted = timestamps_us.to_vec();
    sorted.sort_unstable();
    let mut wakes: Vec<(u64, u64)> = Vec::new();
    for t in sorted {
        match wakes.last_mut() {
            Some((_, last)) if t - *last < gap_us => *last = t,
            _ => wakes.push((t, t)),
        }
    }
    wakes.into_iter().map(|(first, last)| Wake { start: first as f64, span: last - first }).collect()
}

/// The longest candidate period that explains (nearly) as many gaps as any candidate.
///
/// Candidates are the gaps themselves and their halves and thirds (in case no single period was
/// seen). A gap is explained when it is within tolerance of a positive multiple of the candidate.
fn base_period(gaps: &[f64], floor: f64) -> Option<f64> {
    let candidates: Vec<f64> = gaps.iter().flat_map(|&g| [g, g / 2.0, g / 3.0]).filter(|&c| c > 2.0 * floor).collect();
    let support = |c: f64| -> usize {
        gaps.iter()
            .filter(|&&g| {
                let k = (g / c).round();
                // Tolerance grows with k: the candidate's own error multiplies.
                k >= 1.0 && (g - k * c).abs() <= 2.0 * floor + 0.03 * k * c
            })
            .count()
    };
    let scored: Vec<(f64, usize)> = candidates.iter().map(|&c| (c, support(c))).collect();
    let best = scored.iter().map(|s| s.1).max()?;
    if best == 0 {
        return None;
    }
    // Harmonics (P/2, P/3) explain as much as P; the longest well-supported one is P.
    let good: Vec<f64> = scored.iter().filter(|s| s.1 * 10 >= best * 9).map(|s| s.0).collect();
    let longest = good.iter().cloned().fold(f64::MIN, f64::max);
    // Average the candidates near the longest to damp one gap's jitter.
    let near: Vec<f64> = good.iter().cloned().filter(|&c| (c - longest).abs() <= 0.05 * longest).collect();
    Some(near.iter().sum::<f64>() / near.len() as f64)
}

/// Wake numbers, accumulated gap by gap so that drift never adds up to a wrong index.
fn number_wakes(wakes: &[Wake], inliers: &[bool], period: f64) -> Vec<i64> {
    let mut index = Vec::with_capacity(wakes.len());
    let mut last: Option<(f64, i64)> = None;
    for (w, &inlier) in wakes.iter().zip(inliers) {
        let n = match last {
            None => 0,
            Some((t, n)) => n + ((w.start - t) / period).round() as i64,
        };
        index.push(n);
        // Outliers get an index (for their residual) but do not anchor the next gap.
        if inlier || last.is_none() {
            last = Some((w.start, n));
        }
    }
    index
}

#[derive(Debug, Clone, Copy)]
struct Fit {
    t0: f64,
    period: f64,
    rms: f64,
}

fn least_squares(wakes: &[Wake], index: &[i64], inliers: &[bool]) -> Option<Fit> {
    let points: Vec<(f64, f64)> =
        wakes.iter().zip(index).zip(inliers).filter(|(_, &i)| i).map(|((w, &n), _)| (n as f64, w.start)).collect();
    let count = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_n = points.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_t = points.iter().map(|p| p.1).sum::<f64>() / count;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_n).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_n) * (p.1 - mean_t)).sum();
    let period = sxy / sxx;
    let t0 = mean_t - period * mean_n;
    let rms = (points.iter().map(|p| (p.1 - t0 - period * p.0).powi(2)).sum::<f64>() / count).sqrt();
    Some(Fit { t0, period, rms })
}

/// Residuals beyond ~4 robust standard deviations (or the jitter floor) are outliers.
fn outlier_threshold(residuals: &[f64], inliers: &[bool], floor: f64) -> f64 {
    let mut abs: Vec<f64> = residuals.iter().zip(inliers).filter(|(_, &i)| i).map(|(r, _)| r.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let mad = abs.get(abs.len() / 2).copied().unwrap_or(0.0);
    (4.0 * 1.4826 * mad).max(floor)
}

/// Inliers are residuals under the threshold; of several wakes with one index, the closest wins.
fn reject_duplicates(residuals: &[f64], index: &[i64], threshold: f64) -> Vec<bool> {
    let mut keep: Vec<bool> = residuals.iter().map(|r| r.abs() <= threshold).collect();
    for i in 0..index.len() {
        for j in i + 1..index.len() {
            if index[i] == index[j] && keep[i] && keep[j] {
                if residuals[i].abs() <= residuals[j].abs() {
                    keep[j] = false;
                } else {
                    keep[i] = false;
                }
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixtures' seeded generator, with a rough normal distribution on top.
    struct Rng(crate::seeded::SplitMix64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0.next_f64()
        }
        /// Approximately normal (Irwin–Hall, 12 uniforms), standard deviation `sd`, clipped to ±3 sd.
        fn gaussish(&mut self, sd: f64) -> f64 {
            let s: f64 = (0..12).map(|_| self.unit()).sum::<f64>() - 6.0;
            (s * sd).clamp(-3.0 * sd, 3.0 * sd)
        }
    }

    /// Ground truth: true wakes of a node with `period_us`, a clock `drift` off, ±1 ms jitter
    /// (sd 1/3 ms), each wake missed with probability `miss`. Returns (observed frames, all true wakes).
    struct Truth {
        frames: Vec<u64>,
        observed_wakes: Vec<f64>,
        wakes: Vec<f64>,
    }

    fn generate(seed: u64, period_us: f64, drift: f64, miss: f64, observe: usize) -> Truth {
        let mut rng = Rng(crate::seeded::SplitMix64::new(seed));
        let start = 1_000_000.0 + rng.unit() * period_us;
        let real_period = period_us * (1.0 + drift);
        let (mut frames, mut observed_wakes, mut wakes) = (Vec::new(), Vec::new(), Vec::new());
        let mut k = 0;
        // Until `observe` wakes were seen, plus two true wakes after the last one.
        let mut after = 0;
        while after < 2 {
            let t = start + k as f64 * real_period + rng.gaussish(1_000.0 / 3.0);
            wakes.push(t);
            if observed_wakes.len() >= observe {
                after += 1;
            } else if rng.unit() >= miss {
                observed_wakes.push(t);
                // A data request, sometimes followed by a data frame a few ms later.
                frames.push(t as u64);
                if rng.unit() < 0.3 {
                    frames.push(t as u64 + 4_000 + (rng.unit() * 2_000.0) as u64);
                }
            }
            k += 1;
        }
        Truth { frames, observed_wakes, wakes }
    }

    /// Error of predicting the first true wake after the last observed one.
    fn prediction_error(seed: u64, period_us: f64, drift: f64) -> f64 {
        let truth = generate(seed, period_us, drift, 0.2, 10);
        let est = estimate(&truth.frames, &Params::default()).expect("estimates");
        let last = *truth.observed_wakes.last().expect("observed");
        let actual = *truth.wakes.iter().find(|&&w| w > last + 1.0).expect("a later wake");
        let predicted = est.next_wake_after(last + est.period_us / 2.0);
        (predicted - actual).abs()
    }

    #[test]
    fn predicts_next_wake_within_5ms_after_10_wakes() {
        let e = prediction_error(1, 5_000_000.0, 0.01);
        assert!(e < 5_000.0, "error {e} µs");
    }

    #[test]
    fn worst_case_over_200_seeds_periods_and_drifts() {
        let mut worst: f64 = 0.0;
        let mut sum = 0.0;
        let mut n = 0.0;
        for seed in 0..200u64 {
            // Periods from 1 s to 60 s, drift ±1 %.
            let period = 1_000_000.0 * (1.0 + (seed % 60) as f64);
            let drift = if seed % 2 == 0 { 0.01 } else { -0.01 };
            let e = prediction_error(seed + 1000, period, drift);
            worst = worst.max(e);
            sum += e;
            n += 1.0;
        }
        println!("duty cycle: mean next-wake error {:.0} µs, worst {:.0} µs over 200 seeds", sum / n, worst);
        assert!(worst < 5_000.0, "worst error {worst} µs");
    }

    #[test]
    fn period_absorbs_drift_and_awake_time_is_the_median_span() {
        let truth = generate(7, 10_000_000.0, 0.01, 0.2, 20);
        let est = estimate(&truth.frames, &Params::default()).expect("estimates");
        assert!((est.period_us - 10_100_000.0).abs() < 2_000.0, "{est:?}");
        assert!(est.confidence > 0.8, "{est:?}");
        assert!(est.awake_us < 7_000, "{est:?}");
        assert!((0.0..est.period_us).contains(&est.phase_us()));
    }

    #[test]
    fn a_stray_frame_between_wakes_is_rejected() {
        let mut truth = generate(9, 5_000_000.0, 0.0, 0.0, 12);
        let stray = truth.frames[5] + 2_300_000;
        truth.frames.push(stray);
        let est = estimate(&truth.frames, &Params::default()).expect("estimates");
        assert!((est.period_us - 5_000_000.0).abs() < 2_000.0, "{est:?}");
        assert_eq!(est.wakes_used, 12);
    }

    #[test]
    fn too_few_wakes_is_an_error() {
        assert_eq!(estimate(&[1, 2], &Params::default()), Err(DutyCycleError::TooFewWakes { have: 1, need: 3 }));
    }
}
