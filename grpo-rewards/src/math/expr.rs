//! The parsed form of a math answer: one owned tree for numbers, expressions,
//! relations and the structured answers (tuples, sets, intervals, matrices).

use super::rat::Rat;

/// A number literal: exact rational, or a decimal written with a point or an
/// exponent (compared with rounding, as Math-Verify does for floats).
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    /// Exact integer or fraction.
    Rat(Rat),
    /// A decimal literal such as `0.333`.
    Float(f64),
}

/// A relation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelOp {
    /// `=`
    Eq,
    /// `\ne`, `!=`
    Ne,
    /// `<`
    Lt,
    /// `\le`, `<=`
    Le,
    /// `>`
    Gt,
    /// `\ge`, `>=`
    Ge,
    /// `\approx`
    Approx,
    /// `\in`
    In,
}

impl RelOp {
    /// The operator seen from the other side (`a < b` is `b > a`).
    pub fn flip(self) -> RelOp {
        match self {
            RelOp::Lt => RelOp::Gt,
            RelOp::Gt => RelOp::Lt,
            RelOp::Le => RelOp::Ge,
            RelOp::Ge => RelOp::Le,
            o => o,
        }
    }
}

/// A parsed answer or sub-expression.
#[derive(Debug, Clone, PartialEq)]
pub enum E {
    /// A number literal.
    Num(Num),
    /// A free symbol (a letter, a Greek letter, `x_1`, `204_5`).
    Sym(String),
    /// The constant pi.
    Pi,
    /// Infinity.
    Inf,
    /// A sum.
    Add(Vec<E>),
    /// A product.
    Mul(Vec<E>),
    /// Negation.
    Neg(Box<E>),
    /// Quotient.
    Div(Box<E>, Box<E>),
    /// Power.
    Pow(Box<E>, Box<E>),
    /// A named function (`sin`, `sqrt`, `ln`, `abs`, `fact`, `binom`...).
    Func(String, Vec<E>),
    /// `x%` = x/100.
    Percent(Box<E>),
    /// `a ± b`.
    PlusMinus(Box<E>, Box<E>),
    /// `(a, b, c)` (a two-element tuple may also be an open interval).
    Tuple(Vec<E>),
    /// `\{a, b\}` or a bare list `a, b`.
    Set(Vec<E>),
    /// An interval with its ends: `(lo, hi, lo_open, hi_open)`.
    Interval(Box<E>, Box<E>, bool, bool),
    /// `A \cup B`.
    Union(Vec<E>),
    /// A matrix, row-major.
    Matrix(Vec<Vec<E>>),
    /// A relation chain `a op b op c`.
    Rel(Vec<E>, Vec<RelOp>),
    /// Plain text (`\text{Evelyn}`), normalised.
    Text(String),
}

impl E {
    /// An integer literal.
    pub fn int(n: i128) -> E {
        E::Num(Num::Rat(Rat::int(n)))
    }

    /// Whether a decimal literal occurs anywhere in the tree.
    pub fn has_float(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            if matches!(e, E::Num(Num::Float(_))) {
                found = true;
            }
        });
        found
    }

    /// Sorted, de-duplicated free symbols.
    pub fn symbols(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let E::Sym(s) = e {
                out.push(s.clone());
            }
        });
        out.sort();
        out.dedup();
        out
    }

    /// Number of nodes (a size guard).
    pub fn size(&self) -> usize {
        let mut n = 0;
        self.walk(&mut |_| n += 1);
        n
    }

    /// Whether the tree is a structure (tuple, set, interval, matrix...).
    pub fn is_structure(&self) -> bool {
        matches!(
            self,
            E::Tuple(_) | E::Set(_) | E::Interval(..) | E::Union(_) | E::Matrix(_)
        )
    }

    /// Pre-order traversal.
    pub fn walk(&self, f: &mut dyn FnMut(&E)) {
        f(self);
        match self {
            E::Add(v) | E::Mul(v) | E::Func(_, v) | E::Tuple(v) | E::Set(v) | E::Union(v) => {
                v.iter().for_each(|c| c.walk(f))
            }
            E::Rel(v, _) => v.iter().for_each(|c| c.walk(f)),
            E::Neg(a) | E::Percent(a) => a.walk(f),
            E::Div(a, b) | E::Pow(a, b) | E::PlusMinus(a, b) | E::Interval(a, b, _, _) => {
                a.walk(f);
                b.walk(f)
            }
            E::Matrix(rows) => rows.iter().flatten().for_each(|c| c.walk(f)),
            E::Num(_) | E::Sym(_) | E::Pi | E::Inf | E::Text(_) => {}
        }
    }
}
