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
//! - [`Compare::LcbStrict`]: stdout as `lcb`; call results as strict JSON.
//!
//! Call results ([`Compare::call_eq`]): `lcb` and `apps_lenient` compare them as
//! LiveCodeBench and APPS do, with Python `==` ([`py_eq`]: `True == 1`, `1 == 1.0`,
//! `[True] == [1]`); `lcb_strict` and `exact` compare them as strict JSON ([`json_eq`]:
//! numbers by value, booleans only with booleans).

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
    /// LiveCodeBench's stdout rule, strict JSON for call results (booleans are not numbers).
    LcbStrict,
}

impl Compare {
    /// Parses `lcb`, `lcb_strict`, `exact` or `apps_lenient`.
    pub fn from_name(s: &str) -> Option<Compare> {
        match s {
            "lcb" => Some(Compare::Lcb),
            "lcb_strict" => Some(Compare::LcbStrict),
            "exact" => Some(Compare::Exact),
            "apps_lenient" => Some(Compare::AppsLenient),
            _ => None,
        }
    }

    /// Whether `got` (program stdout) matches `expected`.
    pub fn matches(self, got: &str, expected: &str) -> bool {
        match self {
            Compare::Exact => got.trim_end_matches('\n') == expected.trim_end_matches('\n'),
            Compare::Lcb | Compare::LcbStrict => lcb(got, expected),
            Compare::AppsLenient => apps(got, expected),
        }
    }

    /// Whether a call result `got` equals `expected` under this mode.
    pub fn call_eq(self, got: &Value, expected: &Value) -> bool {
        match self {
            Compare::Lcb | Compare::AppsLenient => py_eq(got, expected),
            Compare::LcbStrict | Compare::Exact => json_eq(got, expected),
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

/// A JSON scalar as Python sees it in `==`: bools are the integers 0 and 1.
enum PyNum {
    Int(i128),
    Float(f64),
}

fn py_num(v: &Value) -> Option<PyNum> {
    match v {
        Value::Bool(b) => Some(PyNum::Int(i128::from(*b))),
        Value::Number(n) => n
            .as_i64()
            .map(|i| PyNum::Int(i128::from(i)))
            .or_else(|| n.as_u64().map(|u| PyNum::Int(i128::from(u))))
            .or_else(|| n.as_f64().map(PyNum::Float)),
        _ => None,
    }
}

/// Python's `int == float`: exact (no rounding of large ints).
fn int_eq_float(i: i128, f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0 && f.abs() < 1.7e38 && (f as i128) == i
}

/// Python `==` on JSON data (LiveCodeBench's and APPS's comparison of call results):
/// `True == 1 == 1.0`, `False == 0`, lists elementwise, dicts by keys.
pub fn py_eq(got: &Value, expected: &Value) -> bool {
    if let (Some(a), Some(b)) = (py_num(got), py_num(expected)) {
        return match (a, b) {
            (PyNum::Int(x), PyNum::Int(y)) => x == y,
            (PyNum::Float(x), PyNum::Float(y)) => x == y,
            (PyNum::Int(i), PyNum::Float(f)) | (PyNum::Float(f), PyNum::Int(i)) => {
                int_eq_float(i, f)
            }
        };
    }
    match (got, expected) {
        (Value::Null, Value::Null) => true,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| py_eq(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => false,
    }
}

/// Strict JSON equality of a call result and the expected value: numbers by value
/// (`3` = `3.0`), booleans only with booleans.
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
    fn python_equality() {
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(py_eq(&json!(1), &json!(true)));
        assert!(py_eq(&json!(false), &json!(0.0)));
        assert!(py_eq(&json!(1), &json!(1.0)));
        assert!(py_eq(
            &json!([true, 2, {"a": 0}]),
            &json!([1, 2.0, {"a": false}])
        ));
        assert!(!py_eq(&json!(true), &json!(2)));
        assert!(!py_eq(&json!("1"), &json!(1)));
        assert!(!py_eq(&json!(null), &json!(0)));
        assert!(!py_eq(&json!(1.5), &json!(1)));
        // exact int/float comparison, as Python: 2**53 + 1 != 2.0**53
        assert!(!py_eq(
            &json!(9007199254740993u64),
            &json!(9007199254740992.0)
        ));
        assert!(py_eq(
            &json!(9007199254740992u64),
            &json!(9007199254740992.0)
        ));
        assert!(!py_eq(&json!([1]), &json!([1, 1])));
        // the named modes
        assert!(Compare::Lcb.call_eq(&json!(true), &json!(1)));
        assert!(Compare::AppsLenient.call_eq(&json!([1.0]), &json!([true])));
        assert!(!Compare::LcbStrict.call_eq(&json!(true), &json!(1)));
        assert!(!Compare::Exact.call_eq(&json!(true), &json!(1)));
        assert!(Compare::LcbStrict.call_eq(&json!(3), &json!(3.0)));
        assert_eq!(Compare::from_name("lcb_strict"), Some(Compare::LcbStrict));
        assert!(Compare::LcbStrict.matches("0.50\n", "0.5"));
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
