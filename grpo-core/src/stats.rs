//! Running and batch statistics with `f64` accumulation.
//!
//! [`RunningStats`] is Welford's online mean/variance (mergeable, serialisable).
//! The free functions are the small reductions the estimators share: mean,
//! unbiased (Bessel) standard deviation (torch's default, algorithms.md §0),
//! masked mean/variance, verl's `masked_whiten`, and linear-interpolation
//! quantiles (`torch.quantile`'s default).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Welford running mean and variance.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RunningStats {
    /// Number of observations.
    pub count: u64,
    /// Running mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean (`M2`).
    pub m2: f64,
}

impl RunningStats {
    /// Empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one observation.
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Adds every observation of an iterator.
    pub fn extend<I: IntoIterator<Item = f64>>(&mut self, xs: I) {
        for x in xs {
            self.push(x);
        }
    }

    /// Merges another accumulator (Chan et al. parallel update).
    pub fn merge(&mut self, other: &RunningStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n = (self.count + other.count) as f64;
        let d = other.mean - self.mean;
        self.mean += d * other.count as f64 / n;
        self.m2 += other.m2 + d * d * self.count as f64 * other.count as f64 / n;
        self.count += other.count;
    }

    /// Population variance (`M2/n`); 0 when empty.
    pub fn variance_population(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.m2 / self.count as f64
        }
    }

    /// Unbiased variance (`M2/(n−1)`); `None` when `n < 2`.
    pub fn variance_unbiased(&self) -> Option<f64> {
        (self.count >= 2).then(|| self.m2 / (self.count - 1) as f64)
    }

    /// Unbiased standard deviation; `None` when `n < 2`.
    pub fn std_unbiased(&self) -> Option<f64> {
        self.variance_unbiased().map(f64::sqrt)
    }
}

/// Arithmetic mean (0 for an empty slice).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Unbiased standard deviation (two-pass); `None` when `n < 2`.
pub fn std_unbiased(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// Population standard deviation (two-pass); 0 for an empty slice.
pub fn std_population(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// Masked mean `Σ m x / Σ m` and the masked token count; the mean is 0 when `Σm = 0`.
pub fn masked_mean(x: &Array2<f64>, m: &Array2<f64>) -> (f64, f64) {
    let mut s = 0.0;
    let mut n = 0.0;
    for (a, w) in x.iter().zip(m.iter()) {
        if *w != 0.0 {
            s += w * a;
            n += w;
        }
    }
    (if n > 0.0 { s / n } else { 0.0 }, n)
}

/// Masked unbiased variance (`Σ m (x−μ)² / Σm × M/(M−1)`); `None` when `Σm < 2`.
pub fn masked_var_unbiased(x: &Array2<f64>, m: &Array2<f64>) -> Option<f64> {
    let (mu, n) = masked_mean(x, m);
    if n < 2.0 {
        return None;
    }
    let mut ss = 0.0;
    for (a, w) in x.iter().zip(m.iter()) {
        if *w != 0.0 {
            ss += w * (a - mu) * (a - mu);
        }
    }
    Some(ss / (n - 1.0))
}

/// verl `masked_whiten` followed by masking: `(x − μ_m)·(var_m + 1e-8)^{−1/2} · m`, with the
/// unbiased masked variance. Returns `None` when fewer than 2 tokens are valid (verl raises).
pub fn masked_whiten(x: &Array2<f64>, m: &Array2<f64>) -> Option<Array2<f64>> {
    let (mu, _) = masked_mean(x, m);
    let var = masked_var_unbiased(x, m)?;
    let s = 1.0 / (var + 1e-8).sqrt();
    let mut out = x.clone();
    out.zip_mut_with(m, |a, w| {
        *a = if *w != 0.0 { (*a - mu) * s * w } else { 0.0 }
    });
    Some(out)
}

/// Quantile with linear interpolation between order statistics (`torch.quantile`);
/// `q` is clamped to `[0,1]`; `None` for an empty slice.
pub fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(v[lo] + (pos - lo as f64) * (v[hi] - v[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn welford_matches_two_pass_and_merges() {
        let xs = [1.0, 4.0, 9.0, -2.0, 3.5];
        let mut r = RunningStats::new();
        r.extend(xs);
        assert!((r.mean - mean(&xs)).abs() < 1e-12);
        assert!((r.std_unbiased().unwrap() - std_unbiased(&xs).unwrap()).abs() < 1e-12);
        let mut a = RunningStats::new();
        a.extend(xs[..2].iter().copied());
        let mut b = RunningStats::new();
        b.extend(xs[2..].iter().copied());
        a.merge(&b);
        assert!((a.m2 - r.m2).abs() < 1e-9 && a.count == 5);
        assert_eq!(RunningStats::new().variance_unbiased(), None);
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[1.0, 2.0], 0.2), Some(1.2));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn whiten_hand_example() {
        // tokens 1,2,3 valid; mean 2, unbiased var 1 → (x−2)/sqrt(1+1e-8)
        let x = array![[1.0, 2.0], [3.0, 100.0]];
        let m = array![[1.0, 1.0], [1.0, 0.0]];
        let w = masked_whiten(&x, &m).unwrap();
        let s = 1.0 / (1.0f64 + 1e-8).sqrt();
        assert!((w[[0, 0]] + s).abs() < 1e-12);
        assert_eq!(w[[0, 1]], 0.0);
        assert!((w[[1, 0]] - s).abs() < 1e-12);
        assert_eq!(w[[1, 1]], 0.0);
    }
}
