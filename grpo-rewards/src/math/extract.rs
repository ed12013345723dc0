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

/// Language literals for answer anchors and punctuation (lighteval's
/// `TRANSLATION_LITERALS` for the languages we carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lang {
    /// Name (ISO 639-1).
    pub code: &'static str,
    /// The word for "answer".
    pub answer: &'static str,
    /// Full stop, comma and colon of the script (ASCII ones are always allowed too).
    pub full_stop: &'static str,
    /// Comma.
    pub comma: &'static str,
    /// Colon.
    pub colon: &'static str,
    /// Whether words are separated by spaces (no for Chinese / Japanese).
    pub spaced: bool,
    /// The language's own multiple-choice letters.
    pub indices: &'static [&'static str],
}

const LATIN: &[&str] = &["A", "B", "C", "D", "E"];

/// The languages we carry; names as ISO codes or lighteval's English names.
pub const LANGS: &[(&[&str], Lang)] = &[
    (
        &["en", "english"],
        Lang {
            code: "en",
            answer: "answer",
            full_stop: ".",
            comma: ",",
            colon: ":",
            spaced: true,
            indices: LATIN,
        },
    ),
    (
        &["fr", "french"],
        Lang {
            code: "fr",
            answer: "réponse",
            full_stop: ".",
            comma: ",",
            colon: ":",
            spaced: true,
            indices: LATIN,
        },
    ),
    (
        &["zh", "chinese"],
        Lang {
            code: "zh",
            answer: "答案",
            full_stop: "。",
            comma: "，",
            colon: "：",
            spaced: false,
            indices: LATIN,
        },
    ),
    (
        &["ja", "japanese"],
        Lang {
            code: "ja",
            answer: "回答",
            full_stop: "。",
            comma: "、",
            colon: "：",
            spaced: false,
            indices: LATIN,
        },
    ),
    (
        &["de", "german"],
        Lang {
            code: "de",
            answer: "antwort",
            full_stop: ".",
            comma: ",",
            colon: ":",
            spaced: true,
            indices: LATIN,
        },
    ),
    (
        &["es", "spanish"],
        Lang {
            code: "es",
            answer: "respuesta",
            full_stop: ".",
            comma: ",",
            colon: ":",
            spaced: true,
            indices: LATIN,
        },
    ),
    (
        &["it", "italian"],
        Lang {
            code: "it",
            answer: "risposta",
            full_stop: ".",
            comma: ",",
            colon: ":",
            spaced: true,
            indices: LATIN,
        },
    ),
    (
        &["pt", "portuguese"],
        Lang {
            code: "pt",
            answer: "resposta",
            full_stop: ".",
            comma: ",",
            colon: ":",
            spaced: true,
            indices: LATIN,
        },
    ),
    (
        &["ru", "russian"],
        Lang {
            code: "ru",
            answer: "ответ",
            full_stop: ".",
            comma: ",",
            colon: ":",
            spaced: true,
            indices: &["А", "Б", "В", "Г", "Д", "Е"],
        },
    ),
    (
        &["ar", "arabic"],
        Lang {
            code: "ar",
            answer: "إجابة",
            full_stop: ".",
            comma: "،",
            colon: ":",
            spaced: true,
            indices: &["أ", "ب", "ج", "د", "هـ"],
        },
    ),
    (
        &["hi", "hindi"],
        Lang {
            code: "hi",
            answer: "उत्तर",
            full_stop: "।",
            comma: ",",
            colon: ":",
            spaced: true,
            indices: &["क", "ख", "ग", "घ", "ङ"],
        },
    ),
];

/// Looks a language up by ISO code or English name (case-insensitive).
pub fn lang(name: &str) -> Option<Lang> {
    let n = name.trim().to_lowercase();
    LANGS
        .iter()
        .find(|(names, _)| names.contains(&n.as_str()))
        .map(|(_, l)| *l)
}

/// Extraction options beyond the targets.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractOpts {
    /// Priority of `\boxed{}` matches; negative = never.
    pub boxed_priority: i32,
    /// Language of the answer anchors.
    pub lang: Lang,
    /// Multiple-choice strings to extract (Math-Verify's `strings`).
    pub letters: Vec<String>,
    /// Extract letters without an anchor phrase (`try_extract_without_anchor`).
    pub letters_without_anchor: bool,
}

impl ExtractOpts {
    /// English, boxed at `boxed_priority`, letters A-E.
    pub fn english(boxed_priority: i32) -> ExtractOpts {
        let lang = LANGS[0].1;
        ExtractOpts {
            boxed_priority,
            lang,
            letters: lang.indices.iter().map(|s| s.to_string()).collect(),
            letters_without_anchor: true,
        }
    }
}

/// The anchor and letter patterns of one language / letter set (cached).
struct LangRes {
    answer_colon: Regex,
    answer_word: Regex,
    letters: Vec<(Regex, i32)>,
}

fn lang_res(o: &ExtractOpts) -> std::sync::Arc<LangRes> {
    type Key = (&'static str, Vec<String>, bool);
    static CACHE: LazyLock<std::sync::Mutex<Vec<(Key, std::sync::Arc<LangRes>)>>> =
        LazyLock::new(|| std::sync::Mutex::new(Vec::new()));
    let key: Key = (o.lang.code, o.letters.clone(), o.letters_without_anchor);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = cache.iter().find(|(k, _)| *k == key) {
        return r.clone();
    }
    let l = o.lang;
    let e = regex::escape;
    let answer = format!("(?i:{})", e(l.answer));
    let colon = format!("[{}:]", e(l.colon));
    let keys: Vec<String> = o
        .letters
        .iter()
        .map(|k| format!(r"{}|\({}\)", e(k), e(k)))
        .collect();
    let key = format!("(?P<l>{})", keys.join("|"));
    let (space, prefix) = if l.spaced {
        (r"\s", r"(?:^|\s)(?:\*\*)?")
    } else {
        ("", r"(?:\*\*)?")
    };
    let suffix = format!(
        r"(?:\*\*)?(?:[{}.]|[{},]|\s?{colon}|{space}|$)",
        e(l.full_stop),
        e(l.comma)
    );
    let answer_re = format!("{prefix}{key}{suffix}");
    let mut letters = Vec::new();
    if l.code == "en" {
        letters.push((format!(r"(?i:final answer is):?\s*{key}\.?\s?I hope"), 0));
        letters.push((format!(r"(?i:final answer.{{0,100}}?)\s+is:?\s*{key}"), 50));
    }
    letters.push((format!(r"(?s){answer}\s?{colon}.{{0,50}}?{answer_re}"), 100));
    letters.push((format!(r"(?s){answer}.{{0,50}}?{answer_re}"), 200));
    letters.push((format!(r"^(?:\*\*)?{key}{suffix}"), 250));
    letters.push((format!(r"\n(?:\*\*)?{key}{suffix}"), 260));
    if o.letters_without_anchor {
        letters.push((answer_re, 300));
    }
    let compiled = LangRes {
        answer_colon: Regex::new(&format!(r"{answer}\s?{colon}")).expect("escaped regex"),
        answer_word: Regex::new(&answer).expect("escaped regex"),
        letters: letters
            .into_iter()
            .filter_map(|(p, prio)| Regex::new(&p).ok().map(|r| (r, prio)))
            .collect(),
    };
    let r = std::sync::Arc::new(compiled);
    cache.push((key_of(o), r.clone()));
    r
}

fn key_of(o: &ExtractOpts) -> (&'static str, Vec<String>, bool) {
    (o.lang.code, o.letters.clone(), o.letters_without_anchor)
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
static GSM8K: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"####\s*\$?\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)").expect("static regex")
});
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^\w.]|[\p{Han}\p{Hiragana}\p{Katakana}])(?P<n>-?\d+\s*/\s*\d+|-?[1-9]\d{0,2}(?:[ ,]\d{3})+(?:\.\d+)?|-?\d+[.,]\d+|-?\.\d+|-?\d+)(?P<p>\s*(?:%|[Pp]ercentage|[Pp]ercent|[Pp]ct))?",
    )
    .expect("static regex")
});

static BARE_FRAC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-?\\[dt]?frac\{-?\d+(?:\.\d+)?\}\{-?\d+(?:\.\d+)?\}").expect("static regex")
});
static BOX_JOINER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:,|\band|\bor)\s*\$?\s*$").expect("static regex"));
static SPAN_JOINER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:,?\s*and|,?\s*or|,)\s*$").expect("static regex"));
static SEPARATORS: LazyLock<Regex> = LazyLock::new(|| {
    // prose-free glue between boxes: text, spacing, and/or, delimiters, and the
    // `y_2 =` of an assignment inside the next LaTeX span
    Regex::new(
        r"\\text\{[^}]*\}|\\quad|\\qquad|\band\b|\bor\b|\\[()\[\]]|\$|[A-Za-z](?:_\{?\w+\}?)?\s*=",
    )
    .expect("static regex")
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
    // prose in another script (`计划的比例为13/28`); Greek letters are math
    if s.chars()
        .any(|c| c.is_alphabetic() && !c.is_ascii() && !('\u{370}'..='\u{3ff}').contains(&c))
    {
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
    candidates_with(text, targets, &ExtractOpts::english(boxed_priority))
}

/// Number starts that an answer anchor points at: after each anchor, the
/// number after the last `=` within 100 characters, else the first number
/// within 50 characters (Math-Verify's / lighteval's `answer ... = N`
/// patterns); priority 100 after `answer:`, 200 after `answer`.
fn anchored_numbers(text: &str, starts: &[usize], res: &LangRes) -> Vec<(usize, i32)> {
    let mut out = Vec::new();
    let mut anchors: Vec<(usize, i32)> = res
        .answer_colon
        .find_iter(text)
        .map(|m| (m.end(), 100))
        .collect();
    for m in res.answer_word.find_iter(text) {
        if !anchors
            .iter()
            .any(|(e, _)| *e >= m.end() && *e <= m.end() + 2)
        {
            anchors.push((m.end(), 200));
        }
    }
    for (a, prio) in anchors {
        let within = |n: usize| {
            let mut k = (a + n).min(text.len());
            while !text.is_char_boundary(k) {
                k -= 1;
            }
            k
        };
        let eq_zone = &text[a..within(100)];
        let after_eq = eq_zone.rmatch_indices('=').find_map(|(i, _)| {
            let p = a + i + 1;
            let rest = &text[p..];
            let skip = rest.len() - rest.trim_start().len();
            starts.contains(&(p + skip)).then_some(p + skip)
        });
        let first = starts.iter().copied().find(|s| *s >= a && *s <= within(51));
        if let Some(s) = after_eq.or(first) {
            out.push((s, prio));
        }
    }
    out
}

/// [`candidates`] with a language, a letter set and boxed priority.
pub fn candidates_with(
    text: &str,
    targets: &[ExtractionTarget],
    o: &ExtractOpts,
) -> Vec<Candidate> {
    let boxed_priority = o.boxed_priority;
    let res = lang_res(o);
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
    let mut joined_spans: Vec<(usize, usize, String)> = Vec::new();
    if want_latex {
        let boxed = if boxed_priority < 0 {
            Vec::new()
        } else {
            boxed_all(text)
        };
        if let Some((end, last)) = boxed.last() {
            // Boxes separated only by punctuation / `and` / spacing are one answer
            // (Math-Verify 0.8.0 joins them); boxes separated by prose are not.
            let mut first = boxed.len() - 1;
            while first > 0 {
                let (prev_end, _) = boxed[first - 1];
                let start_of_this = boxed_starts(text)[first];
                let raw = text.get(prev_end..start_of_this).unwrap_or("x");
                // Math-Verify chains boxes joined by `and` / `or` / `,`, whatever
                // prose precedes the joiner (`\boxed{1} papers and \boxed{2}`), but
                // not boxes separated by prose alone (`\boxed{1} no no \boxed{2}`)
                let joined = BOX_JOINER.is_match(raw);
                let between = SEPARATORS.replace_all(raw, "");
                if !joined && between.chars().any(|c| c.is_alphanumeric()) {
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
            // a percent sign after the box (`$\boxed{28}$ pct`) belongs to it
            let after = text
                .get(*end..)
                .unwrap_or("")
                .trim_start_matches(['$', ' ']);
            let last = if PERCENT_AFTER.is_match(after) && !last.contains('%') {
                format!("{last}\\%")
            } else {
                last.clone()
            };
            push(boxed_priority, *end, last);
        }
        let spans = latex_spans(text);
        // spans joined by `and` / `or` / `,` are one answer (Math-Verify joins up
        // to six into a set): `$1$ and $2$ and $3$`, `$21,16$ or $11$`
        let mut k = 0;
        while k < spans.len() {
            let mut j = k;
            while j + 1 < spans.len()
                && j + 1 - k < 6
                && SPAN_JOINER.is_match(text.get(spans[j].1..spans[j + 1].0).unwrap_or("x"))
            {
                j += 1;
            }
            if j > k {
                let joined: Vec<&str> = spans[k..=j].iter().map(|s| s.2.as_str()).collect();
                joined_spans.push((spans[k].0, spans[j].1, joined.join(", ")));
            }
            k = j + 1;
        }
        // joined first: the sort below is stable, so at equal priority and end it wins
        let spans: Vec<(usize, usize, String)> = joined_spans.into_iter().chain(spans).collect();
        // bare numeric fractions outside any delimiters (`(\frac{2}{5}) 吨`)
        let mut spans = spans;
        for m in BARE_FRAC.find_iter(text) {
            if !spans
                .iter()
                .any(|(a, b, _)| *a <= m.start() && m.end() <= *b)
            {
                spans.push((m.start(), m.end(), m.as_str().to_string()));
            }
        }
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
            } else if res.answer_colon.find_iter(window(60)).last().is_some() {
                100
            } else if res.answer_word.find_iter(window(60)).last().is_some() {
                200
            } else {
                300
            };
            push(prio, *end, s.clone());
        }
    }
    if want_expr {
        let numbers: Vec<regex::Captures<'_>> = NUMBER.captures_iter(text).collect();
        let starts: Vec<usize> = numbers
            .iter()
            .filter_map(|c| c.name("n").map(|m| m.start()))
            .collect();
        let anchored = anchored_numbers(text, &starts, &res);
        for c in &numbers {
            let Some(m) = c.name("n") else { continue };
            // a number glued to letters before it (`AZYUK2A`) is not an answer
            let Some(t) = number_text(c) else { continue };
            let before = &text[..m.start()];
            let mut w_start = before.len().saturating_sub(60);
            while !before.is_char_boundary(w_start) {
                w_start += 1;
            }
            let w = before.get(w_start..).unwrap_or("");
            let anchor = anchored
                .iter()
                .filter(|(s, _)| *s == m.start())
                .map(|(_, p)| *p)
                .min();
            let prio = if o.lang.code == "en" && FINAL_IS.is_match(w) {
                50
            } else {
                anchor.unwrap_or(300)
            };
            let end = c.name("p").map_or(m.end(), |p| p.end());
            push(prio, end, t);
        }
    }
    if targets.contains(&ExtractionTarget::Letters) {
        for (re, prio) in &res.letters {
            for c in re.captures_iter(text) {
                if let Some(m) = c.name("l") {
                    let k = m.as_str().trim_start_matches('(').trim_end_matches(')');
                    push(*prio, m.end(), k.to_string());
                }
            }
        }
    }
    // Whole-string fallback: a bare answer such as `\frac{14}{3}` or `x+1`.
    if want_latex
        && text.len() <= 512
        && looks_like_bare_math(text)
        && !(boxed_priority < 0 && text.contains("\\boxed"))
    {
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
