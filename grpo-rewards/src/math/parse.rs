//! LaTeX / plain-expression normalisation and a small recursive-descent
//! parser into [`E`]. Never panics; input that does not parse is `None`.

use std::sync::LazyLock;

use regex::Regex;

use super::expr::{E, Num, RelOp};
use super::rat::Rat;

/// Maximum input length (characters) the parser accepts.
const MAX_LEN: usize = 4096;

static DOUBLE_ESC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\\\\((?:frac|dfrac|sqrt|left|right|boxed|pi|cdot|times|le|ge|text|in|cup|infty|pm)\b)",
    )
    .expect("static regex")
});

static UNIT_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(\s|\d|\}|\))\s*(?:\\(?:text|mbox|textnormal|mathrm)\{\s*)?(?:square\s+|sq\s*|cubic\s+)?(?:cm|centimeters?|mm|millimeters?|km|kilometers?|m|meters?|metres?|miles?|mi|inches|inch|in|feet|foot|ft|yards?|yd|units?|degrees?|deg|radians?|rad|dollars?|cents?|hours?|hrs?|h|minutes?|mins?|seconds?|secs?|s|days?|weeks?|months?|years?|kg|kilograms?|grams?|g|lbs?|pounds?|ounces?|oz|liters?|litres?|l|ml|gallons?|mph|km/h|m/s|students?|people|persons?|apples?|cookies?|pages?|points?|ways?|books?|marbles?|sq|square)\.?\s*\}?\s*(?:\^\s*\{?\s*[23]\s*\}?|²|³)?\s*\.?\s*$",
    )
    .expect("static regex")
});

static SPACED_THOUSANDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d)\s*\{\s*,\s*\}\s*(\d)").expect("static regex"));
static BARE_AND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s+and\s+").expect("static regex"));
static UNIT_IN_LIST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d)\s*(?:\\(?:text|mbox|mathrm)\{\s*)?(?:cm|mm|km|kg|meters?|metres?|inches|feet|units?|degrees?|dollars?|cents?|hours?|minutes?|seconds?|days?)\s*\}?\s*(,|\\?\})")
        .expect("static regex")
});
static LIST_AND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\s*,\s*(?:\\text\{\s*and\s*\}|\band\b)\s*").expect("static regex")
});
static OR_TUPLES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\)\s*(?:\\text\{\s*or\s*\}|or)\s*\(").expect("static regex"));
static MALFORMED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\\[dtc]?frac\s*[^\s{]|\\sqrt\s*[^\s{\[]").expect("static regex"));

/// Whether `s` uses a malformed operator that [`normalize`] would repair
/// (`\frac12`, `\sqrt3`); Math-Verify's `malformed_operators` switch.
pub fn malformed_operator(s: &str) -> bool {
    MALFORMED.is_match(s)
}

/// Math-Verify-style string normalisation before tokenising.
pub fn normalize(s: &str) -> String {
    let mut t = s.trim().to_string();
    // a stray trailing backslash (`185\`)
    if t.ends_with('\\') && !t.ends_with("\\\\") {
        t.pop();
    }
    if t.contains("\\\\") && !t.contains("\\begin") {
        // double-escaped commands (`\\\\frac`) from JSON-in-JSON sources
        t = DOUBLE_ESC.replace_all(&t, "\\$1").into_owned();
    }
    // tuples joined by `or`: `(11,7)or(7,11)`
    if t.contains("or") {
        t = OR_TUPLES.replace_all(&t, "), (").into_owned();
    }
    // `14 {, }916`: a spaced LaTeX thousands separator
    if t.contains("{,") {
        t = SPACED_THOUSANDS.replace_all(&t, "$1$2").into_owned();
    }
    // `$` left inside a box (`\boxed{12 $ and $13 }`)
    if t.contains('$') {
        t = t.replace('$', " ");
    }
    // units inside a list (`{35 cm, 4}`): the tail rule below only sees the end
    if t.contains(',') {
        t = UNIT_IN_LIST.replace_all(&t, "$1$2").into_owned();
    }
    // a list written with a final `and` (`19, 46, and 82`, `19, 46, \\text{ and } 82`)
    if t.contains("and") {
        t = LIST_AND.replace_all(&t, ", ").into_owned();
    }
    // `12 and 13`: a bare `and` between two answers (not inside text)
    if t.contains(" and ") && !t.contains("\\text") && !t.contains("\\mbox") {
        t = BARE_AND.replace_all(&t, ", ").into_owned();
    }
    // protect row separators `\\\\` from the `\\ ` (spacing) rule below
    let mut t = t.replace("\\\\", "\u{1}");
    for (a, b) in [
        (",\\! ", ","),
        (",\\!", ","),
        ("\\text{ and }", ","),
        ("\\text{and}", ","),
        ("\\text{ or }", ","),
        ("\\text{or}", ","),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\cfrac", "\\frac"),
        ("\\displaystyle", " "),
        ("\\left", ""),
        ("\\right", ""),
        ("\\bigl", ""),
        ("\\bigr", ""),
        ("\\Bigl", ""),
        ("\\Bigr", ""),
        ("\\big", ""),
        ("\\Big", ""),
        ("\\!", ""),
        ("\\,", " "),
        ("\\:", " "),
        ("\\;", " "),
        ("\\qquad", " "),
        ("\\quad", " "),
        ("\\ ", " "),
        ("~", " "),
        ("{,}", ""),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("\\circ", ""),
        ("\\degree", ""),
        ("°", ""),
        ("\\$", ""),
        ("$", ""),
        ("\\dots", ""),
        ("\\ldots", ""),
        ("\\cdots", ""),
        ("×", "*"),
        ("÷", "/"),
        ("−", "-"),
        ("≤", "\\le "),
        ("≥", "\\ge "),
        ("≠", "\\ne "),
        ("π", "\\pi "),
        ("√", "\\sqrt"),
        ("∞", "\\infty "),
        ("€", ""),
        ("£", ""),
        ("²", "^2"),
        ("³", "^3"),
    ] {
        if t.contains(a) {
            t = t.replace(a, b);
        }
    }
    // Trailing units (`15\mbox{ cm}^2`, `125 miles`): strip repeatedly.
    for _ in 0..3 {
        let Some(c) = UNIT_TAIL.captures(&t) else {
            break;
        };
        let (Some(m), Some(keep)) = (c.get(0), c.get(1)) else {
            break;
        };
        let cut = m.start() + keep.as_str().len();
        let head = t[..cut].trim_end();
        if head.is_empty() || !head.chars().any(|ch| ch.is_ascii_digit() || ch == '}') {
            break;
        }
        t = head.to_string();
    }
    let t = t.trim().trim_end_matches(['.', ',', ';']).trim();
    t.replace('\u{1}', "\\\\")
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Letter(char),
    Word(String),
    Cmd(String),
    Text(String),
    Ch(char),
    Rel(RelOp),
    RowSep,
    Amp,
}

const WORDS: &[&str] = &[
    "sqrt",
    "sin",
    "cos",
    "tan",
    "sec",
    "csc",
    "cot",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "ln",
    "log",
    "exp",
    "pi",
    "infty",
    "inf",
    "oo",
    "percentage",
    "percent",
    "pct",
    "abs",
];

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let st = i;
            while i < c.len() && c[i].is_ascii_digit() {
                i += 1;
            }
            // thousands separators: ",ddd" groups when the head has 1-3 digits,
            // except as the first entry of a tuple / interval (`(12,102)`)
            let opens_group = c[..st]
                .iter()
                .rev()
                .find(|x| !x.is_whitespace())
                .is_some_and(|x| matches!(x, '(' | '['));
            if i - st <= 3 && c[st] != '0' && !opens_group {
                let mut j = i;
                let mut groups = 0;
                while j + 3 < c.len()
                    && c[j] == ','
                    && c[j + 1..j + 4].iter().all(|d| d.is_ascii_digit())
                    && !c.get(j + 4).is_some_and(|d| d.is_ascii_digit())
                {
                    j += 4;
                    groups += 1;
                }
                if groups > 0 {
                    i = j;
                }
            }
            if i < c.len() && c[i] == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while i < c.len() && c[i].is_ascii_digit() {
                    i += 1;
                }
            } else if i < c.len()
                && c[i] == '.'
                && !c.get(i + 1).is_some_and(|d| d.is_alphabetic())
                && st < i
                && i + 1 < c.len()
            {
                // `3.` followed by something else: drop the stray point
            }
            // scientific notation 1.5e-3 / 2E10
            if i < c.len() && (c[i] == 'e' || c[i] == 'E') {
                let mut j = i + 1;
                if j < c.len() && (c[j] == '-' || c[j] == '+') {
                    j += 1;
                }
                if j < c.len() && c[j].is_ascii_digit() {
                    while j < c.len() && c[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let lit: String = c[st..i].iter().filter(|&&d| d != ',').collect();
            out.push(Tok::Num(lit));
        } else if ch.is_alphabetic() {
            let st = i;
            while i < c.len() && c[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i == st {
                i += 1;
            }
            let w: String = c[st..i].iter().collect();
            let lw = w.to_ascii_lowercase();
            if w.chars().count() > 1 && WORDS.contains(&lw.as_str()) {
                out.push(Tok::Word(lw));
            } else if let Some(p) = WORDS
                .iter()
                .find(|p| p.len() >= 3 && lw.starts_with(**p) && **p != "in")
            {
                // e.g. `sqrtx` is rare; split the known word then the letters
                out.push(Tok::Word((*p).to_string()));
                for l in w.chars().skip(p.len()) {
                    out.push(Tok::Letter(l));
                }
            } else {
                for l in w.chars() {
                    out.push(Tok::Letter(l));
                }
            }
        } else if ch == '\\' {
            i += 1;
            if i < c.len() && c[i] == '\\' {
                out.push(Tok::RowSep);
                i += 1;
                continue;
            }
            if i < c.len() && !c[i].is_ascii_alphabetic() {
                match c[i] {
                    '{' => out.push(Tok::Ch('⦃')),
                    '}' => out.push(Tok::Ch('⦄')),
                    '%' => out.push(Tok::Ch('%')),
                    '|' => out.push(Tok::Ch('|')),
                    _ => {}
                }
                i += 1;
                continue;
            }
            let st = i;
            while i < c.len() && c[i].is_ascii_alphabetic() {
                i += 1;
            }
            let name: String = c[st..i].iter().collect();
            match name.as_str() {
                "text" | "textbf" | "textnormal" | "mbox" | "mathrm" | "textit" | "mathbf"
                | "operatorname" | "textrm" | "mathit" | "mathsf" | "emph" => {
                    while i < c.len() && c[i].is_whitespace() {
                        i += 1;
                    }
                    if i < c.len() && c[i] == '{' {
                        let (inner, end) = brace_group(&c, i)?;
                        i = end;
                        let inner = inner.trim().to_string();
                        if matches!(
                            name.as_str(),
                            "mathrm" | "mathbf" | "operatorname" | "mathit"
                        ) {
                            // math content: tokenise it in place
                            out.extend(tokenize(&inner)?);
                        } else {
                            out.push(Tok::Text(inner));
                        }
                    }
                }
                "le" | "leq" | "leqslant" => out.push(Tok::Rel(RelOp::Le)),
                "ge" | "geq" | "geqslant" => out.push(Tok::Rel(RelOp::Ge)),
                "lt" => out.push(Tok::Rel(RelOp::Lt)),
                "gt" => out.push(Tok::Rel(RelOp::Gt)),
                "ne" | "neq" => out.push(Tok::Rel(RelOp::Ne)),
                "approx" | "simeq" | "sim" => out.push(Tok::Rel(RelOp::Approx)),
                "in" => out.push(Tok::Rel(RelOp::In)),
                "cdot" | "times" | "ast" => out.push(Tok::Ch('*')),
                "div" => out.push(Tok::Ch('/')),
                "lbrace" => out.push(Tok::Ch('⦃')),
                "rbrace" => out.push(Tok::Ch('⦄')),
                "lvert" | "rvert" | "vert" => out.push(Tok::Ch('|')),
                "limits" | "nolimits" | "hfill" | "hline" | "cline" | "noindent" | "Bigg"
                | "bigg" => {}
                _ => out.push(Tok::Cmd(name)),
            }
        } else {
            match ch {
                '<' | '>' | '!' | '=' => {
                    let next_eq = c.get(i + 1) == Some(&'=');
                    let op = match (ch, next_eq) {
                        ('<', true) => Some(RelOp::Le),
                        ('>', true) => Some(RelOp::Ge),
                        ('!', true) => Some(RelOp::Ne),
                        ('<', false) => Some(RelOp::Lt),
                        ('>', false) => Some(RelOp::Gt),
                        ('=', _) => Some(RelOp::Eq),
                        _ => None,
                    };
                    match op {
                        Some(o) => {
                            out.push(Tok::Rel(o));
                            i += if next_eq && ch != '=' { 2 } else { 1 };
                        }
                        None => {
                            out.push(Tok::Ch('!'));
                            i += 1;
                        }
                    }
                    continue;
                }
                '&' => out.push(Tok::Amp),
                '≈' => out.push(Tok::Rel(RelOp::Approx)),
                // a ratio / clock time `12:00` reads as a division (Math-Verify: 12/0)
                ':' if matches!(
                    out.last(),
                    Some(Tok::Num(_) | Tok::Letter(_) | Tok::Ch(')' | '}'))
                ) && c
                    .get(i + 1)
                    .is_some_and(|d| d.is_alphanumeric() || matches!(d, '\\' | '{' | '(')) =>
                {
                    out.push(Tok::Ch('/'))
                }
                _ => out.push(Tok::Ch(ch)),
            }
            i += 1;
        }
    }
    Some(out)
}

/// The content of a `{...}` group starting at `c[start] == '{'`, and the index after it.
fn brace_group(c: &[char], start: usize) -> Option<(String, usize)> {
    let mut depth = 0usize;
    for (k, &ch) in c.iter().enumerate().skip(start) {
        if ch == '{' && (k == 0 || c[k - 1] != '\\') {
            depth += 1;
        } else if ch == '}' && (k == 0 || c[k - 1] != '\\') {
            depth -= 1;
            if depth == 0 {
                return Some((c[start + 1..k].iter().collect(), k + 1));
            }
        }
    }
    None
}

struct P {
    t: Vec<Tok>,
    i: usize,
    abs_depth: usize,
    steps: usize,
    depth: usize,
}

/// Maximum nesting of groups (keeps recursion far from the stack limit).
const MAX_DEPTH: usize = 48;

type R = Option<E>;

fn is_func(name: &str) -> bool {
    matches!(
        name,
        "sin"
            | "cos"
            | "tan"
            | "sec"
            | "csc"
            | "cot"
            | "arcsin"
            | "arccos"
            | "arctan"
            | "sinh"
            | "cosh"
            | "tanh"
            | "ln"
            | "log"
            | "exp"
            | "abs"
    )
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn eat_ch(&mut self, ch: char) -> bool {
        if self.peek() == Some(&Tok::Ch(ch)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn tick(&mut self) -> Option<()> {
        self.steps += 1;
        (self.steps < 20_000).then_some(())
    }

    fn list(&mut self) -> Option<Vec<E>> {
        let mut v = vec![self.union()?];
        while self.eat_ch(',') || self.eat_ch(';') {
            v.push(self.union()?);
        }
        Some(v)
    }

    fn union(&mut self) -> R {
        let mut v = vec![self.rel()?];
        while self.peek() == Some(&Tok::Cmd("cup".into())) {
            self.i += 1;
            v.push(self.rel()?);
        }
        Some(if v.len() == 1 {
            v.remove(0)
        } else {
            E::Union(v)
        })
    }

    fn rel(&mut self) -> R {
        let first = self.sum()?;
        let mut items = vec![first];
        let mut ops = Vec::new();
        while let Some(Tok::Rel(op)) = self.peek().cloned() {
            self.i += 1;
            ops.push(op);
            items.push(self.sum()?);
        }
        Some(if ops.is_empty() {
            items.remove(0)
        } else {
            E::Rel(items, ops)
        })
    }

    fn sum(&mut self) -> R {
        self.tick()?;
        let mut terms = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Tok::Ch('+')) => {
                    self.i += 1;
                    terms.push(self.term()?);
                }
                Some(Tok::Ch('-')) => {
                    self.i += 1;
                    terms.push(E::Neg(Box::new(self.term()?)));
                }
                Some(Tok::Cmd(c)) if c == "pm" || c == "mp" => {
                    self.i += 1;
                    let rhs = self.term()?;
                    let lhs = if terms.len() == 1 {
                        terms.remove(0)
                    } else {
                        E::Add(std::mem::take(&mut terms))
                    };
                    terms = vec![E::PlusMinus(Box::new(lhs), Box::new(rhs))];
                }
                _ => break,
            }
        }
        Some(if terms.len() == 1 {
            terms.remove(0)
        } else {
            E::Add(terms)
        })
    }

    fn unary(&mut self) -> R {
        match self.peek() {
            Some(Tok::Ch('-')) => {
                self.i += 1;
                Some(E::Neg(Box::new(self.term()?)))
            }
            Some(Tok::Ch('+')) => {
                self.i += 1;
                self.term()
            }
            Some(Tok::Cmd(c)) if c == "pm" || c == "mp" => {
                self.i += 1;
                Some(E::PlusMinus(Box::new(E::int(0)), Box::new(self.term()?)))
            }
            _ => self.term(),
        }
    }

    fn starts_atom(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) | Some(Tok::Letter(_)) | Some(Tok::Word(_)) => true,
            Some(Tok::Ch(c)) => {
                matches!(c, '(' | '{' | '[' | '⦃') || (*c == '|' && self.abs_depth == 0)
            }
            Some(Tok::Cmd(c)) => !matches!(
                c.as_str(),
                "cup" | "pm" | "mp" | "end" | "rfloor" | "rceil" | "right" | "cap" | "setminus"
            ),
            Some(Tok::Text(_)) => true,
            _ => false,
        }
    }

    fn term(&mut self) -> R {
        self.tick()?;
        let first = self.power()?;
        let mut factors = vec![first];
        let mut den: Vec<E> = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Ch('*')) => {
                    self.i += 1;
                    factors.push(self.power_signed()?);
                }
                Some(Tok::Ch('/')) => {
                    self.i += 1;
                    den.push(self.power_signed()?);
                }
                _ if self.starts_atom() => {
                    let save = self.i;
                    match self.power() {
                        Some(E::Text(_)) => {} // stray words between factors are ignored
                        Some(f) => factors.push(f),
                        None => {
                            self.i = save;
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
        factors.retain(|f| !matches!(f, E::Text(t) if t.is_empty()));
        let mut num = if factors.len() == 1 {
            factors.remove(0)
        } else {
            E::Mul(factors)
        };
        for d in den {
            num = E::Div(Box::new(num), Box::new(d));
        }
        Some(num)
    }

    fn power_signed(&mut self) -> R {
        if self.eat_ch('-') {
            return Some(E::Neg(Box::new(self.power()?)));
        }
        self.power()
    }

    fn power(&mut self) -> R {
        let base = self.postfix()?;
        if self.eat_ch('^') {
            let exp = self.arg_signed()?;
            let e = E::Pow(Box::new(base), Box::new(exp));
            return self.post_ops(e);
        }
        Some(base)
    }

    fn post_ops(&mut self, mut e: E) -> R {
        loop {
            if self.peek() == Some(&Tok::Ch('!')) {
                self.i += 1;
                e = E::Func("fact".into(), vec![e]);
            } else if self.eat_ch('%') {
                e = E::Percent(Box::new(e));
            } else if matches!(self.peek(), Some(Tok::Word(w)) if w.starts_with("perc") || w == "pct")
            {
                self.i += 1;
                e = E::Percent(Box::new(e));
            } else {
                return Some(e);
            }
        }
    }

    fn postfix(&mut self) -> R {
        let mut a = self.atom()?;
        if self.eat_ch('_') {
            let sub = self.arg()?;
            let name = match (&a, &sub) {
                (E::Sym(s), _) => format!("{s}_{}", show(&sub)),
                (E::Num(_), _) => format!("{}_{}", show(&a), show(&sub)),
                _ => return None,
            };
            a = E::Sym(name);
        }
        self.post_ops(a)
    }

    /// A macro argument: `{...}`, or one character of a number, or one atom.
    fn arg(&mut self) -> R {
        match self.peek().cloned() {
            Some(Tok::Ch('{')) => {
                self.i += 1;
                let e = self.group_inner('}')?;
                Some(e)
            }
            Some(Tok::Num(n)) => {
                let mut it = n.chars();
                let first = it.next()?;
                let rest: String = it.collect();
                if rest.is_empty() || first == '.' {
                    self.i += 1;
                    return num_lit(&n);
                }
                self.t[self.i] = Tok::Num(rest);
                num_lit(&first.to_string())
            }
            _ => self.atom(),
        }
    }

    fn arg_signed(&mut self) -> R {
        if self.eat_ch('-') {
            return Some(E::Neg(Box::new(self.arg()?)));
        }
        self.arg()
    }

    /// Inside `{ ... }` until `close`: one expression, or a set when commas appear.
    fn group_inner(&mut self, close: char) -> R {
        if self.eat_ch(close) {
            return Some(E::Text(String::new()));
        }
        let mut v = self.list()?;
        if !self.eat_ch(close) {
            return None;
        }
        Some(if v.len() == 1 { v.remove(0) } else { E::Set(v) })
    }

    fn atom(&mut self) -> R {
        self.tick()?;
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let r = self.atom_inner();
        self.depth -= 1;
        r
    }

    fn atom_inner(&mut self) -> R {
        let tok = self.peek()?.clone();
        self.i += 1;
        match tok {
            Tok::Num(n) => num_lit(&n),
            Tok::Letter(c) => Some(E::Sym(c.to_string())),
            Tok::Text(t) => Some(text_value(&t)),
            Tok::Word(w) => self.word(&w),
            Tok::Ch('{') => self.group_inner('}'),
            Tok::Ch('⦃') => {
                if self.eat_ch('⦄') {
                    return Some(E::Set(vec![]));
                }
                let v = self.list()?;
                if !self.eat_ch('⦄') {
                    return None;
                }
                Some(E::Set(v))
            }
            Tok::Ch('|') => {
                self.abs_depth += 1;
                let e = self.sum();
                self.abs_depth -= 1;
                let e = e?;
                if !self.eat_ch('|') {
                    return None;
                }
                Some(E::Func("abs".into(), vec![e]))
            }
            Tok::Ch(open @ ('(' | '[')) => {
                let save_abs = self.abs_depth;
                self.abs_depth = 0;
                let v = self.list();
                self.abs_depth = save_abs;
                let mut v = v?;
                let close = match self.peek() {
                    Some(Tok::Ch(c @ (')' | ']'))) => *c,
                    _ => return None,
                };
                self.i += 1;
                let lo_open = open == '(';
                let hi_open = close == ')';
                if v.len() == 1 {
                    if lo_open == hi_open {
                        return Some(v.remove(0));
                    }
                    return None;
                }
                if v.len() == 2 && !(lo_open && hi_open) {
                    let hi = v.pop()?;
                    let lo = v.pop()?;
                    return Some(E::Interval(Box::new(lo), Box::new(hi), lo_open, hi_open));
                }
                Some(E::Tuple(v))
            }
            Tok::Cmd(name) => self.command(&name),
            _ => None,
        }
    }

    fn word(&mut self, w: &str) -> R {
        match w {
            "pi" => Some(E::Pi),
            "infty" | "inf" | "oo" => Some(E::Inf),
            "sqrt" => {
                let a = self.arg()?;
                Some(E::Func("sqrt".into(), vec![a]))
            }
            "percent" | "percentage" | "pct" => Some(E::Text(String::new())),
            f if is_func(f) => self.func_app(f),
            _ => None,
        }
    }

    fn func_app(&mut self, f: &str) -> R {
        // optional power right after the name: \sin^2 x
        let mut pow = None;
        if self.eat_ch('^') {
            pow = Some(self.arg_signed()?);
        }
        let mut base = None;
        if f == "log" && self.eat_ch('_') {
            base = Some(self.arg()?);
        }
        let arg = if self.peek() == Some(&Tok::Ch('(')) {
            self.atom()?
        } else {
            self.power()?
        };
        let mut e = match base {
            Some(b) => E::Div(
                Box::new(E::Func("ln".into(), vec![arg])),
                Box::new(E::Func("ln".into(), vec![b])),
            ),
            None => E::Func(if f == "log" { "ln".into() } else { f.into() }, vec![arg]),
        };
        if let Some(p) = pow {
            e = E::Pow(Box::new(e), Box::new(p));
        }
        Some(e)
    }

    fn command(&mut self, name: &str) -> R {
        match name {
            "frac" | "over" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Some(E::Div(Box::new(a), Box::new(b)))
            }
            "binom" | "dbinom" | "tbinom" | "choose" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Some(E::Func("binom".into(), vec![a, b]))
            }
            "sqrt" => {
                let mut index = None;
                if self.eat_ch('[') {
                    let e = self.sum()?;
                    if !self.eat_ch(']') {
                        return None;
                    }
                    index = Some(e);
                }
                let a = self.arg()?;
                Some(match index {
                    None => E::Func("sqrt".into(), vec![a]),
                    Some(k) => E::Pow(
                        Box::new(a),
                        Box::new(E::Div(Box::new(E::int(1)), Box::new(k))),
                    ),
                })
            }
            "pi" => Some(E::Pi),
            "infty" | "infinity" => Some(E::Inf),
            "boxed" | "fbox" | "mathbb" if name != "mathbb" => self.arg(),
            "mathbb" => {
                let a = self.arg()?;
                match a {
                    E::Sym(s) if s == "R" => Some(E::Interval(
                        Box::new(E::Neg(Box::new(E::Inf))),
                        Box::new(E::Inf),
                        true,
                        true,
                    )),
                    other => Some(other),
                }
            }
            "lfloor" | "lceil" => {
                let e = self.sum()?;
                let close = if name == "lfloor" { "rfloor" } else { "rceil" };
                if self.peek() != Some(&Tok::Cmd(close.into())) {
                    return None;
                }
                self.i += 1;
                Some(E::Func(
                    if name == "lfloor" {
                        "floor".into()
                    } else {
                        "ceil".into()
                    },
                    vec![e],
                ))
            }
            "begin" => self.environment(),
            "emptyset" | "varnothing" => Some(E::Set(vec![])),
            f if is_func(f) => self.func_app(f),
            _ => Some(E::Sym(format!("\\{name}"))),
        }
    }

    fn environment(&mut self) -> R {
        // \begin{env} ... \end{env}
        if !self.eat_ch('{') {
            return None;
        }
        let mut env = String::new();
        while let Some(Tok::Letter(c)) = self.peek().cloned() {
            env.push(c);
            self.i += 1;
        }
        if self.eat_ch('*') {
            env.push('*');
        }
        if !self.eat_ch('}') {
            return None;
        }
        if env == "array" && self.peek() == Some(&Tok::Ch('{')) {
            // column spec
            while self.peek().is_some() && !self.eat_ch('}') {
                self.i += 1;
            }
        }
        let mut rows: Vec<Vec<E>> = vec![vec![]];
        loop {
            self.tick()?;
            match self.peek() {
                Some(Tok::Cmd(c)) if c == "end" => {
                    self.i += 1;
                    // skip {env}
                    if self.eat_ch('{') {
                        while self.peek().is_some() && !self.eat_ch('}') {
                            self.i += 1;
                        }
                    }
                    break;
                }
                Some(Tok::Amp) => self.i += 1,
                Some(Tok::RowSep) => {
                    self.i += 1;
                    rows.push(vec![]);
                }
                None => return None,
                _ => {
                    let e = self.union()?;
                    rows.last_mut()?.push(e);
                }
            }
        }
        rows.retain(|r| !r.is_empty());
        if rows.is_empty() {
            return None;
        }
        let w = rows[0].len();
        if rows.iter().any(|r| r.len() != w) {
            return None;
        }
        Some(E::Matrix(rows))
    }
}

fn text_value(t: &str) -> E {
    let s = t.trim();
    if s.is_empty() {
        return E::Text(String::new());
    }
    if s.contains('\\') {
        return E::Text(norm_text(s));
    }
    if let Some(e) = parse_math(s).filter(|e| !matches!(e, E::Text(_) | E::Sym(_) | E::Mul(_))) {
        return e;
    }
    E::Text(norm_text(s))
}

/// Normalised text for string comparison (lowercase, no spaces or braces).
pub fn norm_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '{' | '}' | '\\' | '$' | '.' | '(' | ')'))
        .flat_map(|c| c.to_lowercase())
        .collect()
}

fn num_lit(s: &str) -> R {
    if s.contains(['e', 'E']) || s.contains('.') {
        // exact when it is a short decimal written without an exponent? Math-Verify
        // treats any decimal as a Float; keep the value and mark it as such.
        let v: f64 = s.parse().ok()?;
        return Some(E::Num(Num::Float(v)));
    }
    let t = s.trim_start_matches('0');
    if t.len() > 36 {
        let v: f64 = s.parse().ok()?;
        return Some(E::Num(Num::Float(v)));
    }
    let n: i128 = if t.is_empty() { 0 } else { t.parse().ok()? };
    Some(E::Num(Num::Rat(Rat::int(n))))
}

/// A short printable form (used for subscript names).
pub fn show(e: &E) -> String {
    match e {
        E::Num(Num::Rat(r)) if r.den == 1 => r.num.to_string(),
        E::Num(Num::Rat(r)) => format!("{}/{}", r.num, r.den),
        E::Num(Num::Float(f)) => f.to_string(),
        E::Sym(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Mixed numbers `3\frac{1}{2}` (integer immediately followed by a numeric
/// fraction) are read as `3 + 1/2`, as Math-Verify does.
fn mixed_numbers(e: E) -> E {
    match e {
        E::Mul(v) if v.len() == 2 => {
            let is_int = matches!(&v[0], E::Num(Num::Rat(r)) if r.den == 1 && r.num >= 0);
            let is_frac = matches!(&v[1], E::Div(a, b)
                if matches!(**a, E::Num(Num::Rat(_))) && matches!(**b, E::Num(Num::Rat(_))));
            if is_int && is_frac {
                E::Add(v)
            } else {
                E::Mul(v)
            }
        }
        E::Neg(a) => E::Neg(Box::new(mixed_numbers(*a))),
        other => other,
    }
}

/// Parses a (normalised or raw) LaTeX / plain math string.
pub fn parse_math(s: &str) -> Option<E> {
    if s.len() > MAX_LEN {
        return None;
    }
    let n = normalize(s);
    if n.is_empty() {
        return None;
    }
    let toks = tokenize(&n)?;
    let mut p = P {
        t: toks,
        i: 0,
        abs_depth: 0,
        steps: 0,
        depth: 0,
    };
    let mut v = p.list()?;
    // allow a trailing full stop
    while p.eat_ch('.') {}
    if p.i != p.t.len() {
        return None;
    }
    let e = if v.len() == 1 { v.remove(0) } else { E::Set(v) };
    let e = mixed_numbers(e);
    if e.size() > 2000 {
        return None;
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_forms() {
        assert_eq!(parse_math("7,425,000"), Some(E::int(7_425_000)));
        assert!(matches!(parse_math("\\frac13"), Some(E::Div(..))));
        assert!(matches!(
            parse_math("[0,1)"),
            Some(E::Interval(_, _, false, true))
        ));
        assert!(matches!(parse_math("\\{1,2\\}"), Some(E::Set(_))));
        assert!(matches!(parse_math("(6,31,-1)"), Some(E::Tuple(_))));
        assert!(matches!(parse_math("x = 3"), Some(E::Rel(..))));
        assert!(matches!(
            parse_math("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"),
            Some(E::Matrix(_))
        ));
        assert_eq!(parse_math("15\\mbox{ cm}^2"), Some(E::int(15)));
        assert!(parse_math("((").is_none());
        assert!(matches!(parse_math("\\text{Evelyn}"), Some(E::Text(_))));
    }
}
