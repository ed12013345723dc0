//! Output comparison for stdin/stdout tests and for JSON results of call-based tests.
//!
//! - [`Compare::Lcb`] (default), LiveCodeBench's rule: strip the whole output, split into
//!   lines, strip each line; the line counts must match; each line matches as text or,
//!   token by token (split on whitespace), as exact decimals (`0.50` = `0.5`, `1e3` = `1000`,
//!   `0.3333333` != `0.333333333`).
//! - [`Compare::Exact`]: equality after removing trailing newlines (verl's SandboxFusion
//!   client).
//! - [`Compare::AppsLenient`]: the APPS/TACO cascade: stripped lines, then tokens as floats
//!   within 1e-5 relative/absolute tolerance.
//!
//! Call results are compared as JSON values: numbers by value (`3` = `3.0`, as Python),
//! booleans only with booleans, strings, arrays and objects structurally.

use serde_json::Value;

/// How stdout is compared with the expected output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compare {
    /// LiveCodeBench line/decimal rule.
    #[default]
    Lcb,
    /// Exact text after trimming trailing newlines.
    Exact,
    /// APPS-style lenient comparison (stripped lines, float tolerance).
    AppsLenient,
}

impl Compare {
    /// Parses `lcb`, `exact` or `apps_lenient`.
    pub fn from_name(s: &str) -> Option<Compare> {
        match s {
            "lcb" => Some(Compare::Lcb),
            "exact" => Some(Compare::Exact),
            "apps_lenient" => Some(Compare::AppsLenient),
            _ => None,
        }
    }

    /// Whether `got` (program stdout) matches `expected`.
    pub fn matches(self, got: &str, expected: &str) -> bool {
        match self {
            Compare::Exact => got.trim_end_matches('\n') == expected.trim_end_matches('\n'),
            Compare::Lcb => lcb(got, expected),
            Compare::AppsLenient => apps(got, expected),
        }
    }
}

fn stripped_lines(s: &str) -> Vec<&str> {
    s.trim().split('\n').map(str::trim).collect()
}

fn lcb(got: &str, expected: &str) -> bool {
    let g = stripped_lines(got);
    let e = stripped_lines(expected);
    if g.len() != e.len() {
        return false;
    }
    g.iter().zip(&e).all(|(a, b)| {
        if a == b {
            return true;
        }
        let ta: Vec<&str> = a.split_whitespace().collect();
        let tb: Vec<&str> = b.split_whitespace().collect();
        if ta.len() != tb.len() {
            return false;
        }
        ta.iter()
            .zip(&tb)
            .all(|(x, y)| match (Decimal::parse(x), Decimal::parse(y)) {
                (Some(dx), Some(dy)) => dx == dy,
                _ => false,
            })
    })
}

fn apps(got: &str, expected: &str) -> bool {
    let g = stripped_lines(got);
    let e = stripped_lines(expected);
    if g == e {
        return true;
    }
    let gt: Vec<&str> = got.split_whitespace().collect();
    let et: Vec<&str> = expected.split_whitespace().collect();
    if gt.len() != et.len() {
        return false;
    }
    gt.iter().zip(&et).all(|(a, b)| {
        a == b
            || match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                _ => false,
            }
    })
}

/// An exact decimal number, normalised (Python `Decimal` equality).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decimal {
    /// Any zero (`-0` = `0.00` = `0e5`).
    Zero,
    /// `(-1)^neg * digits * 10^exp`, `digits` without leading or trailing zeros.
    Finite { neg: bool, digits: String, exp: i64 },
    /// Signed infinity.
    Inf { neg: bool },
}

impl Decimal {
    /// Parses a decimal literal as Python's `Decimal` does (no NaN: NaN never compares equal).
    pub(crate) fn parse(s: &str) -> Option<Decimal> {
        let (neg, rest) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = rest.to_ascii_lowercase();
        if lower == "inf" || lower == "infinity" {
            return Some(Decimal::Inf { neg });
        }
        let (mant, exp) = match lower.find('e') {
            Some(i) => (&lower[..i], lower[i + 1..].parse::<i64>().ok()?),
            None => (lower.as_str(), 0),
        };
        let (int, frac) = match mant.find('.') {
            Some(i) => (&mant[..i], &mant[i + 1..]),
            None => (mant, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut digits: String = format!("{int}{frac}").trim_start_matches('0').to_string();
        let mut exp = exp.checked_sub(frac.len() as i64)?;
        if digits.is_empty() {
            return Some(Decimal::Zero);
        }
        while digits.ends_with('0') {
            digits.pop();
            exp = exp.checked_add(1)?;
        }
        Some(Decimal::Finite { neg, digits, exp })
    }
}

/// Whether a call result equals the expected JSON value (Python `==` on JSON data, except
/// that booleans never equal numbers).
pub fn json_eq(got: &Value, expected: &Value) -> bool {
    match (got, expected) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
                return x == y;
            }
            if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                return x == y;
            }
            match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
        }
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lcb_rules() {
        let c = Compare::Lcb;
        assert!(c.matches("1 2\n3\n", "1 2\n3"));
        assert!(c.matches("  1   2 \n 3 ", "1 2\n3"));
        assert!(c.matches("0.50\n", "0.5"));
        assert!(c.matches("1e3", "1000"));
        assert!(c.matches("-0", "0.000"));
        assert!(!c.matches("0.3333333", "0.333333333"));
        assert!(!c.matches("1\n2", "1 2"));
        assert!(!c.matches("2 1", "1 2"));
        assert!(!c.matches("abc", "abd"));
        assert!(!c.matches("", "1"));
        assert!(c.matches("YES", "YES\n"));
        assert!(c.matches("nan", "nan "));
        assert!(!c.matches("nan 1", "NaN 1"));
    }

    #[test]
    fn exact_and_lenient() {
        assert!(Compare::Exact.matches("a\n\n", "a"));
        assert!(!Compare::Exact.matches("a ", "a"));
        assert!(Compare::AppsLenient.matches("1.000001\n", "1.0"));
        assert!(!Compare::AppsLenient.matches("1.1", "1.0"));
        assert!(Compare::AppsLenient.matches("x  y\n", "x y"));
    }

    #[test]
    fn decimals() {
        assert_eq!(Decimal::parse("12.3400"), Decimal::parse("1234e-2"));
        assert_eq!(Decimal::parse("+5"), Decimal::parse("5.0"));
        assert_ne!(Decimal::parse("-5"), Decimal::parse("5"));
        assert_eq!(Decimal::parse("."), None);
        assert_eq!(Decimal::parse("1.2.3"), None);
        assert_eq!(Decimal::parse("abc"), None);
        assert_eq!(Decimal::parse("-inf"), Some(Decimal::Inf { neg: true }));
    }

    #[test]
    fn json_equality() {
        assert!(json_eq(&json!([1, 2.0, "a"]), &json!([1.0, 2, "a"])));
        assert!(!json_eq(&json!(true), &json!(1)));
        assert!(!json_eq(&json!([1]), &json!([1, 1])));
        assert!(json_eq(&json!({"a": [null]}), &json!({"a": [null]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"b": 1})));
        assert!(!json_eq(&json!("1"), &json!(1)));
    }
}
