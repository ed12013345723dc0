//! Answer extraction: candidate substrings of a response, in Math-Verify's
//! priority order (lower priority first; within a priority the match nearest
//! the end first). The caller takes the first candidate that parses.
#![allow(clippy::collapsible_if)] // nested ifs read better for the rule tables here

use std::sync::LazyLock;

use regex::Regex;

use super::ExtractionTarget;

/// One extracted candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Priority (lower is tried first).
    pub priority: i32,
    /// Byte offset of the end of the match (later is tried first).
    pub end: usize,
    /// The answer text to parse.
    pub text: String,
}

/// Input longer than this is cut to its last `MAX_INPUT` bytes.
const MAX_INPUT: usize = 64 * 1024;

static LATEX_SPAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?s)\$\$(?P<a>(?:[^$]|\$[^$])+?)\$\$|\\\[(?P<b>.+?)\\\]|\\\((?P<c>[^\n]+?)\\\)|\$(?P<d>(?:\\\$|[^\n$])+?)\$",
    )
    .expect("static regex")
});
static PERCENT_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\\?%|[Pp]ercentage|[Pp]ercent|[Pp]ct)").expect("static regex")
});
static FINAL_HOPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)final answer is:?\s*").expect("static regex"));
static FINAL_IS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)final answer.{0,100}?\s+is:?\s*").expect("static regex"));
static ANSWER_COLON: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)answer\s*:").expect("static regex"));
static ANSWER_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)answer").expect("static regex"));
static GSM8K: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"####\s*\$?\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)").expect("static regex")
});
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^\w.])(?P<n>-?\d+\s*/\s*\d+|-?[1-9]\d{0,2}(?:[ ,]\d{3})+(?:\.\d+)?|-?\d+[.,]\d+|-?\.\d+|-?\d+)(?P<p>\s*(?:%|[Pp]ercentage|[Pp]ercent|[Pp]ct))?",
    )
    .expect("static regex")
});
static LETTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s(*\[{:])\(?(?P<l>[A-E])\)?(?:[\s.)*\]}:,]|$)").expect("static regex")
});

static SEPARATORS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\\text\{[^}]*\}|\\quad|\\qquad|\band\b|\bor\b|\\[()\[\]]").expect("static regex")
});

fn boxed_starts(text: &str) -> Vec<usize> {
    let mut v = Vec::new();
    let mut from = 0;
    while let Some(k) = text[from..].find('\\') {
        let at = from + k;
        let rest = &text[at..];
        if rest.starts_with("\\boxed") || rest.starts_with("\\fbox") {
            v.push(at);
        }
        from = at + 1;
    }
    v
}

static WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^\\a-zA-Z])([a-zA-Z]{2,})").expect("static regex"));
static ENV_OR_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\\(?:begin|end|text|mbox|textbf|mathrm|mathbf|textnormal)\{[^}]*\}")
        .expect("static regex")
});
static THOUSANDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$|^-?\d+(?:\.\d+)?$").expect("static regex")
});
static SPACED_DIGITS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d\s+\d").expect("static regex"));

/// A short string with no prose in it (`\frac{10}{9}`, `x+1`, `(1, 2)`).
fn looks_like_bare_math(s: &str) -> bool {
    if s.contains('$') || s.contains("\\(") || s.contains("\\[") || SPACED_DIGITS.is_match(s) {
        return false;
    }
    let s = ENV_OR_TEXT.replace_all(s, " ");
    WORD.captures_iter(&s).all(|c| {
        c.get(1).is_some_and(|w| {
            matches!(
                w.as_str(),
                "sqrt" | "pi" | "sin" | "cos" | "tan" | "ln" | "log" | "exp" | "infty"
            )
        })
    })
}

/// Finds `\boxed{...}` / `\fbox{...}` / `\boxed X` contents (brace-matched).
pub fn boxed_all(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(rel) = text[from..].find(['\\']) {
        let at = from + rel;
        from = at + 1;
        let rest = &text[at..];
        let skip = if rest.starts_with("\\boxed") {
            6
        } else if rest.starts_with("\\fbox") {
            5
        } else {
            continue;
        };
        let mut k = at + skip;
        if bytes.get(k) == Some(&b'{') {
            let mut depth = 0usize;
            let mut j = k;
            while j < bytes.len() {
                match bytes[j] {
                    b'{' if j == 0 || bytes[j - 1] != b'\\' => depth += 1,
                    b'}' if bytes[j - 1] != b'\\' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j < bytes.len() {
                out.push((j + 1, text[k + 1..j].to_string()));
                from = j + 1;
            }
        } else if bytes.get(k) == Some(&b' ') {
            while bytes.get(k) == Some(&b' ') {
                k += 1;
            }
            let end = text[k..]
                .find(['$', '\n', ' '])
                .map_or(text.len(), |e| k + e);
            if end > k {
                out.push((end, text[k..end].trim_end_matches('.').to_string()));
            }
        }
    }
    out
}

fn latex_spans(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for c in LATEX_SPAN.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let inner = ["a", "b", "c", "d"]
            .iter()
            .find_map(|n| c.name(n))
            .map_or("", |g| g.as_str());
        let mut s = inner.trim().to_string();
        let mut end = m.end();
        if let Some(p) = PERCENT_AFTER.find(&text[end..]) {
            s.push_str("\\%");
            end += p.end();
        }
        if !s.is_empty() {
            out.push((m.start(), end, s));
        }
    }
    out
}

fn number_text(c: &regex::Captures<'_>) -> Option<String> {
    let n = c.name("n")?.as_str();
    if n.contains('/') {
        return Some(n.replace(' ', ""));
    }
    let s = if n.contains(' ')
        || (n.matches(',').count() >= 1 && n.contains('.'))
        || n.matches(',').count() > 1
    {
        n.replace([' ', ','], "")
    } else if let Some((a, b)) = n.split_once(',') {
        // `1,000` (thousands) vs `1,22` / `0,111` (decimal comma)
        if b.len() == 3 && !a.trim_start_matches('-').starts_with('0') {
            format!("{a}{b}")
        } else {
            format!("{a}.{b}")
        }
    } else {
        n.to_string()
    };
    Some(if c.name("p").is_some() {
        format!("{s}\\%")
    } else {
        s
    })
}

/// All candidates for `targets`, sorted in the order they should be tried.
pub fn candidates(text: &str, targets: &[ExtractionTarget], boxed_priority: i32) -> Vec<Candidate> {
    let text = if text.len() > MAX_INPUT {
        let mut cut = text.len() - MAX_INPUT;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        &text[cut..]
    } else {
        text
    };
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |priority: i32, end: usize, t: String| {
        if !t.trim().is_empty() {
            out.push(Candidate {
                priority,
                end,
                text: t,
            });
        }
    };
    if let Some(c) = GSM8K.captures_iter(text).last() {
        if let Some(m) = c.get(1) {
            let n = m.as_str().trim_end_matches([',', '.']);
            let t = if THOUSANDS.is_match(n) {
                n.replace(',', "")
            } else {
                n.replace(',', ".")
            };
            push(0, m.end(), t);
        }
    }
    let want_latex = targets.contains(&ExtractionTarget::Latex);
    let want_expr = targets.contains(&ExtractionTarget::Expr);
    if want_latex {
        let boxed = boxed_all(text);
        if let Some((end, last)) = boxed.last() {
            // Boxes separated only by punctuation / `and` / spacing are one answer
            // (Math-Verify 0.8.0 joins them); boxes separated by prose are not.
            let mut first = boxed.len() - 1;
            while first > 0 {
                let (prev_end, _) = boxed[first - 1];
                let start_of_this = boxed_starts(text)[first];
                let between = text.get(prev_end..start_of_this).unwrap_or("x");
                let between = SEPARATORS.replace_all(between, "");
                if between.chars().any(|c| c.is_alphanumeric()) {
                    break;
                }
                first -= 1;
            }
            let mut distinct: Vec<&str> = Vec::new();
            for (_, b) in &boxed[first..] {
                if !distinct.contains(&b.as_str()) {
                    distinct.push(b);
                }
            }
            if distinct.len() > 1 {
                let joined: Vec<String> = distinct
                    .iter()
                    .map(|b| super::parse::normalize(b))
                    .collect();
                push(boxed_priority, *end + 1, joined.join(", "));
            }
            push(boxed_priority, *end, last.clone());
        }
        let spans = latex_spans(text);
        for (start, end, s) in &spans {
            let before = &text[..*start];
            let window = |n: usize| {
                let mut k = before.len().saturating_sub(n);
                while !before.is_char_boundary(k) {
                    k += 1;
                }
                &before[k..]
            };
            let w = window(160);
            let prio = if FINAL_HOPE
                .find_iter(w)
                .last()
                .is_some_and(|m| m.end() == w.len())
                && text[*end..]
                    .trim_start()
                    .trim_start_matches('.')
                    .trim_start()
                    .starts_with("I hope")
            {
                0
            } else if FINAL_IS
                .find_iter(w)
                .last()
                .is_some_and(|m| m.end() + 2 >= w.len())
            {
                50
            } else if ANSWER_COLON.find_iter(window(60)).last().is_some() {
                100
            } else if ANSWER_WORD.find_iter(window(60)).last().is_some() {
                200
            } else {
                300
            };
            push(prio, *end, s.clone());
        }
    }
    if want_expr {
        for c in NUMBER.captures_iter(text) {
            let Some(m) = c.name("n") else { continue };
            // a number glued to letters before it (`AZYUK2A`) is not an answer
            let Some(t) = number_text(&c) else { continue };
            let before = &text[..m.start()];
            let w_start = before.len().saturating_sub(60);
            let w = before.get(w_start..).unwrap_or("");
            let prio = if FINAL_IS.is_match(w) {
                50
            } else if ANSWER_COLON.is_match(w) {
                100
            } else if ANSWER_WORD.is_match(w) {
                200
            } else {
                300
            };
            let end = c.name("p").map_or(m.end(), |p| p.end());
            push(prio, end, t);
        }
    }
    if targets.contains(&ExtractionTarget::Letters) {
        for c in LETTER.captures_iter(text) {
            if let Some(m) = c.name("l") {
                let before = &text[..m.start()];
                let w = before.get(before.len().saturating_sub(40)..).unwrap_or("");
                let prio = if ANSWER_WORD.is_match(w) { 100 } else { 300 };
                push(prio, m.end(), m.as_str().to_string());
            }
        }
    }
    // Whole-string fallback: a bare answer such as `\frac{14}{3}` or `x+1`.
    if want_latex && text.len() <= 512 && looks_like_bare_math(text) {
        push(250, text.len(), text.trim().to_string());
    }
    out.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.end.cmp(&a.end)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_nested_and_last() {
        let b = boxed_all(r"a \boxed{\frac{1}{2}} then \fbox{x^{2}} and \boxed 5$");
        assert_eq!(
            b.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["\\frac{1}{2}", "x^{2}", "5"]
        );
    }

    #[test]
    fn priority_order() {
        let c = candidates(
            "We get $3$. The answer is $\\boxed{4}$ #### 5",
            &[ExtractionTarget::Latex, ExtractionTarget::Expr],
            0,
        );
        assert_eq!(c[0].text, "5");
        assert_eq!(c[1].text, "4");
    }
}
