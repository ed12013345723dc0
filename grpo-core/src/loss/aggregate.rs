//! Loss aggregation modes (algorithms.md §1), shared by every token-level loss.
//!
//! An aggregation turns a per-token loss `λ[i,t]` into a scalar
//! `𝓛 = Σ_{i,t} w[i,t]·λ[i,t]`; the weights `w = ∂𝓛/∂λ` are returned so that
//! `∂𝓛/∂ℓ = w·∂λ/∂ℓ` exactly. With `M = Σ m`, `L_i = Σ_t m[i,t]` and
//! `B' = #{i : L_i > 0}`:
//!
//! | mode | `w[i,t]` |
//! |---|---|
//! | `token_mean` (verl `token-mean`, DAPO, TRL `bnpo`/`dapo` single micro-batch) | `m/M` |
//! | `seq_mean_token_mean` (verl, original GRPO, TRL `grpo`) | `m/((L_i + 1e-8)·B')` |
//! | `seq_mean_token_sum` (verl) | `m/B'` |
//! | `seq_mean_token_sum_norm` (Dr.GRPO) | `m/C`, `C = normalizer` |
//!
//! Deliberate difference from verl: `seq_mean_token_sum_norm` always takes an
//! explicit constant `normalizer` (Dr.GRPO's `MAX_TOKENS`; verl defaults it to the
//! padded width, which makes the loss depend on padding, §1.1). An all-masked
//! batch aggregates to 0 with all-zero weights (verl would return NaN).

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::registry::{Entry, Kind, Verification};

/// An aggregation mode (serde tag `type`, e.g. `{ type = "token_mean" }`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Aggregation {
    /// `Σ m λ / M`.
    TokenMean,
    /// `(1/B') Σ_i Σ_t m λ / (L_i + 1e-8)`.
    SeqMeanTokenMean,
    /// `(1/B') Σ_i Σ_t m λ`.
    SeqMeanTokenSum,
    /// `Σ m λ / C` (Dr.GRPO constant normaliser).
    SeqMeanTokenSumNorm {
        /// The constant `C` (e.g. the maximum response length); must be > 0.
        normalizer: f64,
    },
}

impl Aggregation {
    /// Registry name.
    pub fn name(&self) -> &'static str {
        match self {
            Aggregation::TokenMean => "token_mean",
            Aggregation::SeqMeanTokenMean => "seq_mean_token_mean",
            Aggregation::SeqMeanTokenSum => "seq_mean_token_sum",
            Aggregation::SeqMeanTokenSumNorm { .. } => "seq_mean_token_sum_norm",
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if let Aggregation::SeqMeanTokenSumNorm { normalizer } = self
            && !(normalizer.is_finite() && *normalizer > 0.0)
        {
            return Err(CoreError::InvalidParam {
                name: "normalizer".into(),
                value: normalizer.to_string(),
                reason: "must be finite and > 0".into(),
            });
        }
        Ok(())
    }

    /// The weights `w[i,t] = ∂𝓛/∂λ[i,t]` for the response mask `mask` `[B,T]`
    /// (zero wherever `mask = 0`).
    pub fn weights(&self, mask: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        let (b, t) = mask.dim();
        let lens: Vec<f64> = (0..b).map(|i| mask.row(i).sum()).collect();
        let rw = self.row_weights(&lens)?;
        let mut w = Array2::<f64>::zeros((b, t));
        for i in 0..b {
            if rw[i] != 0.0 {
                let mut wr = w.row_mut(i);
                wr.zip_mut_with(&mask.row(i), |w, m| *w = m * rw[i]);
            }
        }
        Ok(w)
    }

    /// Every mode's weight is `w[i,t] = m[i,t]·c_i`; returns `c_i` for row lengths
    /// `lens` (`L_i`, zero for empty rows, all zero when `Σ L_i = 0`).
    pub fn row_weights(&self, lens: &[f64]) -> Result<Vec<f64>> {
        self.validate()?;
        let n_tok: f64 = lens.iter().sum();
        let n_rows = lens.iter().filter(|l| **l > 0.0).count() as f64;
        if n_tok <= 0.0 {
            return Ok(vec![0.0; lens.len()]);
        }
        Ok(lens
            .iter()
            .map(|l| {
                if *l <= 0.0 {
                    return 0.0;
                }
                match self {
                    Aggregation::TokenMean => 1.0 / n_tok,
                    Aggregation::SeqMeanTokenMean => 1.0 / ((l + 1e-8) * n_rows),
                    Aggregation::SeqMeanTokenSum => 1.0 / n_rows,
                    Aggregation::SeqMeanTokenSumNorm { normalizer } => 1.0 / normalizer,
                }
            })
            .collect())
    }

    /// Aggregates `values` `[B,T]` under `mask` `[B,T]`: returns `(𝓛, w)`.
    /// Values outside the mask are ignored (even if NaN), as verl's `masked_sum`.
    pub fn aggregate(
        &self,
        values: ArrayView2<'_, f64>,
        mask: ArrayView2<'_, f64>,
    ) -> Result<(f64, Array2<f64>)> {
        if values.dim() != mask.dim() {
            return Err(CoreError::ShapeMismatch {
                what: "values".into(),
                expected: vec![mask.nrows(), mask.ncols()],
                got: vec![values.nrows(), values.ncols()],
            });
        }
        let w = self.weights(mask)?;
        let mut s = 0.0;
        for ((i, j), wij) in w.indexed_iter() {
            if *wij != 0.0 {
                s += wij * values[[i, j]];
            }
        }
        Ok((s, w))
    }
}

/// Registry rows of the aggregation modes.
pub fn registry() -> Vec<Entry> {
    let e = |name, summary| Entry {
        name,
        kind: Kind::Aggregation,
        summary,
        verification: Verification::Verified,
    };
    vec![
        e(
            "token_mean",
            "Σmλ/M over all valid tokens (verl `token-mean`, DAPO), §1.1",
        ),
        e(
            "seq_mean_token_mean",
            "mean over rows of the per-row token mean (verl, original GRPO), §1.1",
        ),
        e(
            "seq_mean_token_sum",
            "mean over rows of the per-row token sum (verl), §1.1",
        ),
        e(
            "seq_mean_token_sum_norm",
            "Σmλ/C with an explicit constant C (Dr.GRPO, verl `seq-mean-token-sum-norm`), §1.1",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn worked_example() {
        let m = array![[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]];
        let v = array![[1.0, 2.0, 99.0], [4.0, 0.0, 0.0]];
        let (l, _) = Aggregation::TokenMean
            .aggregate(v.view(), m.view())
            .unwrap();
        assert!((l - 7.0 / 3.0).abs() < 1e-12);
        let (l, _) = Aggregation::SeqMeanTokenMean
            .aggregate(v.view(), m.view())
            .unwrap();
        assert!((l - (1.5 + 4.0) / 2.0).abs() < 1e-7);
        let (l, _) = Aggregation::SeqMeanTokenSum
            .aggregate(v.view(), m.view())
            .unwrap();
        assert!((l - 3.5).abs() < 1e-12);
        let (l, _) = Aggregation::SeqMeanTokenSumNorm { normalizer: 10.0 }
            .aggregate(v.view(), m.view())
            .unwrap();
        assert!((l - 0.7).abs() < 1e-12);
    }
}
