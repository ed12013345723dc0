//! Progress display of long generations (indicatif): generated tokens against the
//! expected total, with prefill and decode throughput. Drawn only when asked for and
//! stderr is a terminal; otherwise every call is a no-op.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::GenerateStats;

/// A progress bar, or nothing.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` tokens when `enabled` and stderr is a terminal.
    pub(crate) fn new(enabled: bool, total: u64) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} generate [{elapsed_precise}] {wide_bar} {pos}/{len} tokens {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Self { bar: Some(bar) }
    }

    /// A disabled display.
    pub(crate) fn off() -> Self {
        Self { bar: None }
    }

    /// `n` more tokens were generated.
    pub(crate) fn produced(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
    }

    /// Tokens that will not be generated after all (a sample stopped early).
    pub(crate) fn skip(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
    }

    /// Refreshes the throughput message.
    pub(crate) fn update(&self, stats: &GenerateStats) {
        if let Some(b) = &self.bar {
            b.set_message(rates(stats));
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// "prefill N tok/s · decode M tok/s" from the counters.
pub(crate) fn rates(stats: &GenerateStats) -> String {
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    format!(
        "prefill {:.0} tok/s · decode {:.0} tok/s",
        rate(
            stats.prefill_tokens + stats.recomputed_tokens,
            stats.prefill_secs
        ),
        rate(stats.decode_tokens, stats.decode_secs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_divide_tokens_by_seconds() {
        let s = GenerateStats {
            prefill_tokens: 300,
            recomputed_tokens: 100,
            decode_tokens: 50,
            prefill_secs: 2.0,
            decode_secs: 0.5,
            ..Default::default()
        };
        assert_eq!(rates(&s), "prefill 200 tok/s · decode 100 tok/s");
        assert_eq!(
            rates(&GenerateStats::default()),
            "prefill 0 tok/s · decode 0 tok/s"
        );
        // Not a terminal under the test harness (or not enabled): no bar.
        assert!(Progress::new(false, 10).bar.is_none());
    }
}
