//! Stop conditions checked after every sampled token: end-of-sequence ids,
//! stop token ids, stop strings matched on the decoded text (with the exact
//! cut point), and the length limit.

use serde::{Deserialize, Serialize};

/// Why a sample stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token was sampled.
    Eos,
    /// A stop token id or stop string was produced.
    Stop,
    /// `max_new_tokens` was reached (or the context is full).
    Length,
}

impl FinishReason {
    /// The name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// Finds the earliest occurrence of any stop string in `text` that ends at or
/// after byte `new_from` (so a match is reported once, when its last byte
/// arrives). Returns the byte offset where the matched stop string starts.
pub fn find_stop(text: &str, stops: &[String], new_from: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    for s in stops.iter().filter(|s| !s.is_empty()) {
        // A match ending at or after `new_from` starts at or after new_from + 1 - len.
        let start_from = new_from.saturating_sub(s.len().saturating_sub(1));
        let mut from = floor_char_boundary(text, start_from);
        while let Some(pos) = text.get(from..).and_then(|t| t.find(s.as_str())) {
            let at = from + pos;
            if at + s.len() > new_from {
                best = Some(best.map_or(at, |b: usize| b.min(at)));
                break;
            }
            from = at + 1;
            while from < text.len() && !text.is_char_boundary(from) {
                from += 1;
            }
        }
    }
    best
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_stop_across_token_boundaries() {
        let stops = vec!["</answer>".to_string()];
        // The stop string completes with the last token; only new bytes count.
        let text = "<answer>42</ans";
        assert_eq!(find_stop(text, &stops, 10), None);
        let text = "<answer>42</answer> tail";
        assert_eq!(find_stop(text, &stops, 15), Some(10));
        // Already reported earlier: a match wholly before `new_from` is not re-reported.
        assert_eq!(find_stop(text, &stops, 20), None);
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let stops = vec!["b".to_string(), "cd".to_string(), "".to_string()];
        assert_eq!(find_stop("xxcdb", &stops, 0), Some(2));
    }

    #[test]
    fn multibyte_text_is_safe() {
        let stops = vec!["é!".to_string()];
        assert_eq!(find_stop("ééé!", &stops, 5), Some(4));
    }
}
