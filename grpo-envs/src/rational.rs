//! Exact rational arithmetic and a small expression evaluator (digits, `+ - * /`,
//! parentheses, optional decimals and unary minus). Used by Countdown, the
//! calculator tool and answer normalisation; never executes code.

use std::cmp::Ordering;
use std::fmt;

/// An exact rational number `num / den` with `den > 0`, kept in lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Rational {
    /// `n / 1`.
    pub fn int(n: i128) -> Self {
        Rational { num: n, den: 1 }
    }
    /// `num / den`, `None` when `den == 0`.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let s = if den < 0 { -1 } else { 1 };
        Some(Rational {
            num: s * num / g,
            den: s * den / g,
        })
    }
    /// Numerator.
    pub fn numer(self) -> i128 {
        self.num
    }
    /// Denominator (positive).
    pub fn denom(self) -> i128 {
        self.den
    }
    /// Whether the value is an integer.
    pub fn is_integer(self) -> bool {
        self.den == 1
    }
    /// Checked addition.
    pub fn checked_add(self, o: Self) -> Option<Self> {
        let n = self
            .num
            .checked_mul(o.den)?
            .checked_add(o.num.checked_mul(self.den)?)?;
        Self::new(n, self.den.checked_mul(o.den)?)
    }
    /// Checked subtraction.
    pub fn checked_sub(self, o: Self) -> Option<Self> {
        self.checked_add(Rational {
            num: o.num.checked_neg()?,
            den: o.den,
        })
    }
    /// Checked multiplication.
    pub fn checked_mul(self, o: Self) -> Option<Self> {
        Self::new(self.num.checked_mul(o.num)?, self.den.checked_mul(o.den)?)
    }
    /// Checked division (`None` on division by zero or overflow).
    pub fn checked_div(self, o: Self) -> Option<Self> {
        if o.num == 0 {
            return None;
        }
        Self::new(self.num.checked_mul(o.den)?, self.den.checked_mul(o.num)?)
    }
    /// Nearest `f64`.
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
    /// Renders with exactly `places` decimals (rounded half away from zero).
    pub fn to_fixed(self, places: u32) -> String {
        let scale = 10i128.pow(places);
        let scaled = self.num.saturating_mul(scale);
        let q = scaled / self.den;
        let r = scaled % self.den;
        let q = if 2 * r.abs() >= self.den {
            q + scaled.signum()
        } else {
            q
        };
        let neg = q < 0;
        let a = q.abs();
        let int = a / scale;
        let frac = a % scale;
        let sign = if neg { "-" } else { "" };
        if places == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac:0width$}", width = places as usize)
        }
    }
    /// Parses an integer, decimal (`12.50`) or fraction (`3/4`) literal, allowing a
    /// leading sign, thousands separators `,` and a leading `$`.
    pub fn parse_number(s: &str) -> Option<Self> {
        let t: String = s
            .trim()
            .trim_start_matches('$')
            .chars()
            .filter(|c| *c != ',')
            .collect();
        let t = t.trim_end_matches('.');
        if let Some((a, b)) = t.split_once('/') {
            let a = Self::parse_number(a)?;
            let b = Self::parse_number(b)?;
            return a.checked_div(b);
        }
        let (neg, body) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        if body.is_empty() {
            return None;
        }
        let (ip, fp) = body.split_once('.').unwrap_or((body, ""));
        if ip.is_empty() && fp.is_empty() {
            return None;
        }
        if !ip.chars().all(|c| c.is_ascii_digit()) || !fp.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if ip.len() + fp.len() > 30 {
            return None;
        }
        let digits = format!("{ip}{fp}");
        let n: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let r = Self::new(n, 10i128.checked_pow(fp.len() as u32)?)?;
        Some(if neg {
            Rational::int(0).checked_sub(r)?
        } else {
            r
        })
    }
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Rational {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.num.saturating_mul(other.den)).cmp(&other.num.saturating_mul(self.den))
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Options for [`eval_expr`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ExprOptions {
    /// Accept decimal literals such as `12.5`.
    pub decimals: bool,
    /// Accept unary minus.
    pub unary_minus: bool,
}

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprError {
    /// A character outside the allowed alphabet, at a byte offset.
    BadChar(char, usize),
    /// The expression is malformed (unbalanced parentheses, missing operand, ...).
    Syntax(String),
    /// Division by zero.
    DivByZero,
    /// The value does not fit in 128-bit rationals.
    Overflow,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprError::BadChar(c, i) => write!(f, "character {c:?} at offset {i} is not allowed"),
            ExprError::Syntax(s) => write!(f, "syntax error: {s}"),
            ExprError::DivByZero => write!(f, "division by zero"),
            ExprError::Overflow => write!(f, "number too large"),
        }
    }
}

/// The value of an expression and the literals it used, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// Exact value.
    pub value: Rational,
    /// Literal numbers in the order they appear.
    pub literals: Vec<Rational>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Rational),
    Op(char),
    LParen,
    RParen,
}

fn lex(s: &str, opts: ExprOptions) -> Result<Vec<Tok>, ExprError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (opts.decimals && c == '.') {
            let st = i;
            while i < b.len() && (b[i].is_ascii_digit() || (opts.decimals && b[i] == b'.')) {
                i += 1;
            }
            let lit = &s[st..i];
            let r = Rational::parse_number(lit)
                .ok_or_else(|| ExprError::Syntax(format!("bad number {lit:?}")))?;
            out.push(Tok::Num(r));
        } else if matches!(c, '+' | '-' | '*' | '/') {
            out.push(Tok::Op(c));
            i += 1;
        } else if c == '×' || c == '÷' {
            out.push(Tok::Op(if c == '×' { '*' } else { '/' }));
            i += c.len_utf8();
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            return Err(ExprError::BadChar(ch, i));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    opts: ExprOptions,
    literals: Vec<Rational>,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn expr(&mut self) -> Result<Rational, ExprError> {
        let mut v = self.term()?;
        while let Some(Tok::Op(c)) = self.peek() {
            let c = *c;
            if c != '+' && c != '-' {
                break;
            }
            self.pos += 1;
            let r = self.term()?;
            v = if c == '+' {
                v.checked_add(r)
            } else {
                v.checked_sub(r)
            }
            .ok_or(ExprError::Overflow)?;
        }
        Ok(v)
    }
    fn term(&mut self) -> Result<Rational, ExprError> {
        let mut v = self.factor()?;
        while let Some(Tok::Op(c)) = self.peek() {
            let c = *c;
            if c != '*' && c != '/' {
                break;
            }
            self.pos += 1;
            let r = self.factor()?;
            v = if c == '*' {
                v.checked_mul(r).ok_or(ExprError::Overflow)?
            } else {
                if r.numer() == 0 {
                    return Err(ExprError::DivByZero);
                }
                v.checked_div(r).ok_or(ExprError::Overflow)?
            };
        }
        Ok(v)
    }
    fn factor(&mut self) -> Result<Rational, ExprError> {
        self.depth += 1;
        if self.depth > 200 {
            return Err(ExprError::Syntax("nesting too deep".into()));
        }
        let r = match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                self.literals.push(n);
                Ok(n)
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let v = self.expr()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(ExprError::Syntax("missing `)`".into()));
                }
                self.pos += 1;
                Ok(v)
            }
            Some(Tok::Op('-')) if self.opts.unary_minus => {
                self.pos += 1;
                let v = self.factor()?;
                Rational::int(0).checked_sub(v).ok_or(ExprError::Overflow)
            }
            Some(t) => Err(ExprError::Syntax(format!("unexpected {t:?}"))),
            None => Err(ExprError::Syntax("unexpected end of expression".into())),
        };
        self.depth -= 1;
        r
    }
}

/// Evaluates an arithmetic expression exactly.
pub fn eval_expr(s: &str, opts: ExprOptions) -> Result<Evaluated, ExprError> {
    if s.len() > 4096 {
        return Err(ExprError::Syntax(
            "expression longer than 4096 bytes".into(),
        ));
    }
    let toks = lex(s, opts)?;
    if toks.is_empty() {
        return Err(ExprError::Syntax("empty expression".into()));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        opts,
        literals: Vec::new(),
        depth: 0,
    };
    let value = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(ExprError::Syntax(format!(
            "unexpected {:?} after a complete expression",
            p.toks[p.pos]
        )));
    }
    Ok(Evaluated {
        value,
        literals: p.literals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_exactly() {
        let o = ExprOptions::default();
        let e = eval_expr("(10 - 4) * 7 / 3", o).unwrap();
        assert_eq!(e.value, Rational::int(14));
        assert_eq!(e.literals.len(), 4);
        assert_eq!(eval_expr("1/3+1/3+1/3", o).unwrap().value, Rational::int(1));
        assert_eq!(eval_expr("5/0", o), Err(ExprError::DivByZero));
        assert!(eval_expr("-5", o).is_err());
        assert!(eval_expr("2**3", o).is_err());
        assert!(eval_expr("import os", o).is_err());
        assert!(eval_expr("((1)", o).is_err());
        let d = ExprOptions {
            decimals: true,
            unary_minus: true,
        };
        assert_eq!(eval_expr("-2.5*2", d).unwrap().value, Rational::int(-5));
    }

    #[test]
    fn fixed_and_parse() {
        let r = Rational::new(46, 1).unwrap();
        assert_eq!(r.to_fixed(2), "46.00");
        assert_eq!(Rational::new(1, 8).unwrap().to_fixed(2), "0.13");
        assert_eq!(Rational::new(-1, 8).unwrap().to_fixed(2), "-0.13");
        assert_eq!(Rational::parse_number("$1,234.50"), Rational::new(2469, 2));
        assert_eq!(Rational::parse_number("3/4"), Rational::new(3, 4));
        assert_eq!(Rational::parse_number("abc"), None);
        assert_eq!(Rational::parse_number("18."), Some(Rational::int(18)));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
        assert!(eval_expr(&s, ExprOptions::default()).is_err());
    }
}
