//! Learning-rate schedules: linear warm-up, then constant or cosine decay.

/// The learning rate at `step` (0-based) of a stage of `total` steps.
pub fn lr_at(peak: f64, step: usize, total: usize, warmup: usize, schedule: &str) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    match schedule {
        "cosine" => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let t = (step.saturating_sub(warmup) as f64 / span).min(1.0);
            // Decays to 10% of the peak, as is common for RL fine-tuning.
            peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
        }
        _ => peak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_constant_or_cosine() {
        assert_eq!(lr_at(1.0, 0, 10, 4, "constant"), 0.25);
        assert_eq!(lr_at(1.0, 3, 10, 4, "constant"), 1.0);
        assert_eq!(lr_at(1.0, 9, 10, 4, "constant"), 1.0);
        assert!((lr_at(1.0, 4, 10, 4, "cosine") - 1.0).abs() < 1e-12);
        assert!(lr_at(1.0, 9, 10, 4, "cosine") < 0.2);
        assert!(lr_at(1.0, 9, 10, 4, "cosine") >= 0.1);
    }
}
