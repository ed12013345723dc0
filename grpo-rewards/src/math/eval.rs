//! Exact (rational) and numeric (f64) evaluation of [`E`] trees.

use std::collections::BTreeMap;

use super::expr::{E, Num};
use super::rat::Rat;

/// Exact value when the tree is a closed rational expression.
pub fn exact(e: &E) -> Option<Rat> {
    match e {
        E::Num(Num::Rat(r)) => Some(*r),
        E::Neg(a) => exact(a)?.negated(),
        E::Add(v) => v.iter().try_fold(Rat::int(0), |acc, x| acc.plus(exact(x)?)),
        E::Mul(v) => v
            .iter()
            .try_fold(Rat::int(1), |acc, x| acc.times(exact(x)?)),
        E::Div(a, b) => exact(a)?.over(exact(b)?),
        E::Percent(a) => exact(a)?.over(Rat::int(100)),
        E::Pow(a, b) => {
            let base = exact(a)?;
            let ex = exact(b)?;
            if ex.den == 1 {
                base.pow(ex.num)
            } else if ex.den <= 16 && ex.num.abs() <= 64 {
                base.root(u32::try_from(ex.den).ok()?)?.pow(ex.num)
            } else {
                None
            }
        }
        E::Func(f, v) if v.len() == 1 => {
            let x = exact(&v[0])?;
            match f.as_str() {
                "sqrt" => x.root(2),
                "abs" => Some(if x.num < 0 { x.negated()? } else { x }),
                "fact" => {
                    let n = x.as_int()?;
                    if !(0..=33).contains(&n) {
                        return None;
                    }
                    (1..=n).try_fold(Rat::int(1), |acc, k| acc.times(Rat::int(k)))
                }
                "floor" => Rat::new(x.num.div_euclid(x.den), 1),
                "ceil" => Rat::new(-((-x.num).div_euclid(x.den)), 1),
                _ => None,
            }
        }
        E::Func(f, v) if f == "binom" && v.len() == 2 => {
            let n = exact(&v[0])?.as_int()?;
            let k = exact(&v[1])?.as_int()?;
            if k < 0 || n < 0 || k > n || n > 120 {
                return None;
            }
            let mut acc = Rat::int(1);
            for j in 0..k.min(n - k) {
                acc = acc.times(Rat::new(n - j, j + 1)?)?;
            }
            Some(acc)
        }
        _ => None,
    }
}

/// Symbol values for numeric evaluation.
pub type Env = BTreeMap<String, f64>;

/// Numeric value at `env`; `None` when undefined, non-finite (except a literal
/// infinity), or not a scalar.
pub fn num(e: &E, env: &Env) -> Option<f64> {
    let v = num_inner(e, env)?;
    if v.is_nan() { None } else { Some(v) }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn num_inner(e: &E, env: &Env) -> Option<f64> {
    Some(match e {
        E::Num(Num::Rat(r)) => r.to_f64(),
        E::Num(Num::Float(f)) => *f,
        E::Sym(s) => *env.get(s)?,
        E::Pi => std::f64::consts::PI,
        E::Inf => f64::INFINITY,
        E::Neg(a) => -num_inner(a, env)?,
        E::Add(v) => {
            let mut s = 0.0;
            for x in v {
                s += num_inner(x, env)?;
            }
            s
        }
        E::Mul(v) => {
            let mut s = 1.0;
            for x in v {
                s *= num_inner(x, env)?;
            }
            s
        }
        E::Div(a, b) => {
            let d = num_inner(b, env)?;
            if d == 0.0 {
                return None;
            }
            num_inner(a, env)? / d
        }
        E::Percent(a) => num_inner(a, env)? / 100.0,
        E::Pow(a, b) => {
            let base = num_inner(a, env)?;
            let ex = num_inner(b, env)?;
            if ex.abs() > 1e4 && base.abs() > 1.0 {
                return None;
            }
            let r = if base < 0.0 && ex.fract() != 0.0 {
                // odd roots of negatives: (-8)^(1/3) = -2
                let inv = 1.0 / ex;
                if (inv.round() - inv).abs() < 1e-9 && (inv.round() as i64) % 2 != 0 {
                    -(-base).powf(ex)
                } else {
                    return None;
                }
            } else {
                base.powf(ex)
            };
            finite(r)?
        }
        E::Func(f, v) => {
            let x = num_inner(v.first()?, env)?;
            let r = match (f.as_str(), v.len()) {
                ("sqrt", 1) if x >= 0.0 => x.sqrt(),
                ("sin", 1) => x.sin(),
                ("cos", 1) => x.cos(),
                ("tan", 1) => x.tan(),
                ("sec", 1) => 1.0 / x.cos(),
                ("csc", 1) => 1.0 / x.sin(),
                ("cot", 1) => 1.0 / x.tan(),
                ("arcsin", 1) => x.asin(),
                ("arccos", 1) => x.acos(),
                ("arctan", 1) => x.atan(),
                ("sinh", 1) => x.sinh(),
                ("cosh", 1) => x.cosh(),
                ("tanh", 1) => x.tanh(),
                ("ln", 1) if x > 0.0 => x.ln(),
                ("exp", 1) => x.exp(),
                ("abs", 1) => x.abs(),
                ("floor", 1) => x.floor(),
                ("ceil", 1) => x.ceil(),
                ("fact", 1) if x >= 0.0 && x.fract() == 0.0 && x <= 170.0 => {
                    (1..=x as u64).fold(1.0, |acc, k| acc * k as f64)
                }
                ("binom", 2) => {
                    let k = num_inner(&v[1], env)?;
                    if k < 0.0 || k.fract() != 0.0 || k > 1000.0 {
                        return None;
                    }
                    let mut acc = 1.0;
                    for j in 0..k as u64 {
                        acc = acc * (x - j as f64) / (j as f64 + 1.0);
                    }
                    acc
                }
                _ => return None,
            };
            finite(r)?
        }
        _ => return None,
    })
}
