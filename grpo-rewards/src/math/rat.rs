//! Exact rational numbers on `i128` with checked arithmetic.
//!
//! Every operation returns `None` on overflow; the caller then falls back to
//! floating-point evaluation. This keeps exact comparison cheap for the
//! answers that matter (integers, fractions, small powers) without a bigint
//! dependency.

/// A reduced fraction `num / den` with `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rat {
    /// Numerator.
    pub num: i128,
    /// Denominator, always positive.
    pub den: i128,
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    // only `gcd(i128::MIN, 0)` exceeds i128; 1 keeps callers correct then
    i128::try_from(a).unwrap_or(1)
}

impl Rat {
    /// An integer.
    pub fn int(n: i128) -> Self {
        Rat { num: n, den: 1 }
    }

    /// Builds and reduces `num / den`; `None` if `den == 0` or on overflow.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Rat { num: n, den: d })
    }

    /// Sum.
    pub fn plus(self, o: Rat) -> Option<Rat> {
        let g = gcd(self.den, o.den).max(1);
        let l = (self.den / g).checked_mul(o.den)?;
        let a = self.num.checked_mul(l / self.den)?;
        let b = o.num.checked_mul(l / o.den)?;
        Rat::new(a.checked_add(b)?, l)
    }

    /// Negation.
    pub fn negated(self) -> Option<Rat> {
        Some(Rat {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    /// Product.
    pub fn times(self, o: Rat) -> Option<Rat> {
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        let n = (self.num / g1).checked_mul(o.num / g2)?;
        let d = (self.den / g2).checked_mul(o.den / g1)?;
        Rat::new(n, d)
    }

    /// Quotient; `None` when dividing by zero.
    pub fn over(self, o: Rat) -> Option<Rat> {
        if o.num == 0 {
            return None;
        }
        self.times(Rat::new(o.den, o.num)?)
    }

    /// Integer power with a size guard (|exp| <= 512).
    pub fn pow(self, e: i128) -> Option<Rat> {
        if e.abs() > 512 {
            return None;
        }
        let mut base = if e < 0 { Rat::int(1).over(self)? } else { self };
        let mut k = e.unsigned_abs();
        let mut acc = Rat::int(1);
        while k > 0 {
            if k & 1 == 1 {
                acc = acc.times(base)?;
            }
            k >>= 1;
            if k > 0 {
                base = base.times(base)?;
            }
        }
        Some(acc)
    }

    /// Exact `k`-th root when both numerator and denominator are perfect powers.
    pub fn root(self, k: u32) -> Option<Rat> {
        if k == 0 || (self.num < 0 && k.is_multiple_of(2)) {
            return None;
        }
        let n = iroot(self.num.unsigned_abs(), k)?;
        let d = iroot(self.den.unsigned_abs(), k)?;
        let n = i128::try_from(n).ok()?;
        let d = i128::try_from(d).ok()?;
        Rat::new(if self.num < 0 { -n } else { n }, d)
    }

    /// `Some(n)` when the value is an integer.
    pub fn as_int(self) -> Option<i128> {
        (self.den == 1).then_some(self.num)
    }

    /// Floating-point value.
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

fn iroot(x: u128, k: u32) -> Option<u128> {
    if x < 2 {
        return Some(x);
    }
    let guess = (x as f64).powf(1.0 / k as f64).round() as u128;
    (guess.saturating_sub(1)..=guess + 1).find(|&c| c.checked_pow(k) == Some(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_reduces_and_checks_overflow() {
        let a = Rat::new(2, 4).unwrap();
        assert_eq!(a, Rat { num: 1, den: 2 });
        assert_eq!(
            a.plus(Rat::new(1, 3).unwrap()).unwrap(),
            Rat::new(5, 6).unwrap()
        );
        assert_eq!(Rat::int(2).pow(10).unwrap(), Rat::int(1024));
        assert_eq!(Rat::int(2).pow(-2).unwrap(), Rat::new(1, 4).unwrap());
        assert!(Rat::int(10).pow(200).is_none());
        assert_eq!(
            Rat::new(9, 4).unwrap().root(2).unwrap(),
            Rat::new(3, 2).unwrap()
        );
        assert!(Rat::int(2).root(2).is_none());
        assert!(Rat::int(1).over(Rat::int(0)).is_none());
        assert_eq!(Rat::new(3, -6).unwrap(), Rat::new(-1, 2).unwrap());
    }
}
