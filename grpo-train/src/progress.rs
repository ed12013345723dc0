//! Progress bars (indicatif) with ETA; hidden when stderr is not a terminal
//! or when quiet mode is requested, so CI logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A stage's progress bar.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `total` steps of `stage`; hidden when `quiet` or not a TTY.
    pub fn new(stage: &str, total: usize, quiet: bool) -> Self {
        let bar = ProgressBar::new(total as u64);
        if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template(
            "{prefix:>5} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(stage.to_string());
        Self { bar }
    }

    /// Sets the position and a short status message.
    pub fn update(&self, pos: usize, msg: String) {
        self.bar.set_position(pos as u64);
        self.bar.set_message(msg);
    }

    /// Prints a line above the bar (or plainly when hidden).
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            tracing::info!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
