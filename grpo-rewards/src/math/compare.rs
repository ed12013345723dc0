//! Equivalence of parsed answers: gold-driven unwrapping of relations, then
//! structures (sets, tuples, intervals, matrices), then scalars (exact
//! rationals, rounded decimals, or evaluation at random points).
#![allow(clippy::collapsible_if)] // nested ifs read better for the rule tables here

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::MathConfig;
use super::eval::{Env, exact, num};
use super::expr::{E, Num, RelOp};
use super::parse::norm_text;

/// Number of random points for symbolic comparison.
const POINTS: usize = 8;

/// Compares `gold` with `pred`; returns the verdict and a short reason.
pub fn equal(gold: &E, pred: &E, cfg: &MathConfig) -> (bool, &'static str) {
    let gold = group_assignments(unwrap_in(drop_approx(fold_matrices(gold.clone()))));
    let pred = group_assignments(unwrap_in(drop_approx(fold_matrices(pred.clone()))));
    match (&gold, &pred) {
        (E::Rel(gi, go), E::Rel(pi, po)) => {
            let (gi, go) = simplify_chain(gi, go);
            let (pi, po) = simplify_chain(pi, po);
            if relations_eq(&gi, &go, &pi, &po, cfg) {
                return (true, "equivalent relations");
            }
            // `x = 3` vs `y = 3`-style assignment chains: compare values
            if go.iter().all(|o| *o == RelOp::Eq) && po.iter().all(|o| *o == RelOp::Eq) {
                if let (Some(gv), Some(pv)) = (assigned_value(&gi, &go), assigned_value(&pi, &po)) {
                    if is_assign_lhs(&gi[gi.len() - 2])
                        && is_assign_lhs(&pi[pi.len() - 2])
                        && gi[gi.len() - 2] == pi[pi.len() - 2]
                    {
                        return (value_eq(gv, pv, cfg), "assignment values compared");
                    }
                }
            }
            (false, "relations differ")
        }
        (E::Rel(gi, go), _) => {
            let (gi, go) = simplify_chain(gi, go);
            if go.len() == 1 && matches!(go[0], RelOp::Eq | RelOp::In)
                || go.iter().all(|o| *o == RelOp::Eq)
            {
                let n = gi.len();
                if is_assign_lhs(&gi[n - 2]) || go[go.len() - 1] == RelOp::In {
                    return (
                        value_eq(&gi[n - 1], &pred, cfg),
                        "gold assignment: value compared",
                    );
                }
                return (false, "gold is an equation, prediction is not");
            }
            if let Some(iv) = inequality_to_interval(&gi, &go) {
                if matches!(&pred, E::Interval(..) | E::Union(_))
                    || matches!(&pred, E::Tuple(t) if t.len() == 2)
                {
                    return (value_eq(&iv, &pred, cfg), "gold inequality vs interval");
                }
            }
            (false, "gold is a relation, prediction is not")
        }
        (_, E::Rel(pi, po)) => {
            let (pi, po) = simplify_chain(pi, po);
            if po.iter().all(|o| matches!(o, RelOp::Eq | RelOp::In)) {
                let v = &pi[pi.len() - 1];
                return (value_eq(&gold, v, cfg), "prediction's last value compared");
            }
            if cfg.allow_set_relation_comp {
                if let Some(iv) = inequality_to_interval(&pi, &po) {
                    return (
                        value_eq(&gold, &iv, cfg),
                        "prediction inequality vs interval",
                    );
                }
            }
            (false, "prediction is a relation, gold is not")
        }
        _ => {
            let ok = value_eq(&gold, &pred, cfg);
            (ok, if ok { "equivalent" } else { "not equivalent" })
        }
    }
}

/// `\approx` read as Math-Verify reads it: `x \approx 3.01` (a symbol on the
/// left) is `3.01`, `\frac{9.5}{3.14} \approx 3.01` is the fraction,
/// `x = a \approx 3.01` is `x = a`.
fn drop_approx(e: E) -> E {
    match e {
        E::Rel(mut items, mut ops) => match ops.iter().position(|o| *o == RelOp::Approx) {
            Some(0) => {
                let keep = usize::from(matches!(items.first(), Some(E::Sym(_))));
                items.swap_remove(keep)
            }
            Some(k) => {
                ops.truncate(k);
                items.truncate(k + 1);
                E::Rel(items, ops)
            }
            None => E::Rel(items, ops),
        },
        other => other,
    }
}

/// Repeating assignments `p=5, q=2; p=7, q=2` are the solutions `(5,2), (7,2)`.
fn group_assignments(e: E) -> E {
    let E::Set(items) = &e else { return e };
    let mut names = Vec::new();
    let mut values = Vec::new();
    for it in items {
        match it {
            E::Rel(v, ops) if ops.len() == 1 && ops[0] == RelOp::Eq && v.len() == 2 => {
                let E::Sym(n) = &v[0] else { return e };
                names.push(n.clone());
                values.push(v[1].clone());
            }
            _ => return e,
        }
    }
    // the group length: where the first name comes back
    let Some(k) = names
        .iter()
        .skip(1)
        .position(|n| *n == names[0])
        .map(|p| p + 1)
    else {
        return e;
    };
    if k < 2 || names.len() % k != 0 {
        return e;
    }
    if names.chunks(k).any(|c| c != &names[..k]) {
        return e;
    }
    E::Set(values.chunks(k).map(|c| E::Tuple(c.to_vec())).collect())
}

/// `x \in S` is read as `S`.
fn unwrap_in(e: E) -> E {
    match e {
        E::Rel(mut items, ops) if ops == [RelOp::In] => items.pop().unwrap_or(E::Set(vec![])),
        // `z \in A \cup B` parses as `(z \in A) \cup B`
        E::Union(mut v) if matches!(v.first(), Some(E::Rel(_, ops)) if ops == &[RelOp::In]) => {
            if let E::Rel(mut items, _) = v.remove(0) {
                v.insert(0, items.pop().unwrap_or(E::Set(vec![])));
            }
            E::Union(v)
        }
        other => other,
    }
}

/// Whether `e` names a quantity (`x`, `AB`, `|AB|`, `f(x)`, `\frac{NO}{BO}`,
/// `(x, y)`) rather than being an expression with numbers in it.
fn is_assign_lhs(e: &E) -> bool {
    match e {
        E::Sym(_) => true,
        E::Mul(v) | E::Tuple(v) => v.iter().all(is_assign_lhs),
        E::Div(a, b) => is_assign_lhs(a) && is_assign_lhs(b),
        E::Func(_, v) => v.iter().all(is_assign_lhs),
        _ => false,
    }
}

/// `x = 3` inside a set or tuple is read as `3`.
fn unwrap_assignment(e: &E) -> E {
    match e {
        E::Rel(items, ops)
            if ops.iter().all(|o| *o == RelOp::Eq)
                && items.len() >= 2
                && is_assign_lhs(&items[items.len() - 2]) =>
        {
            items[items.len() - 1].clone()
        }
        other => other.clone(),
    }
}

fn assigned_value<'a>(items: &'a [E], _ops: &[RelOp]) -> Option<&'a E> {
    items.last()
}

/// Drops `\approx` tails after an `=`, then reads `\approx` as `=`; reduces
/// an all-`=` chain to `(first, last)`.
fn simplify_chain(items: &[E], ops: &[RelOp]) -> (Vec<E>, Vec<RelOp>) {
    let mut items = items.to_vec();
    let mut ops = ops.to_vec();
    if ops.contains(&RelOp::Eq) {
        if let Some(k) = ops.iter().position(|o| *o == RelOp::Approx) {
            ops.truncate(k);
            items.truncate(k + 1);
        }
    }
    for o in ops.iter_mut() {
        if *o == RelOp::Approx {
            *o = RelOp::Eq;
        }
    }
    (items, ops)
}

fn relations_eq(gi: &[E], go: &[RelOp], pi: &[E], po: &[RelOp], cfg: &MathConfig) -> bool {
    let all_eq = |o: &[RelOp]| o.iter().all(|x| *x == RelOp::Eq);
    if all_eq(go) && all_eq(po) {
        let (gl, gr) = (&gi[0], &gi[gi.len() - 1]);
        let (pl, pr) = (&pi[0], &pi[pi.len() - 1]);
        if (value_eq(gl, pl, cfg) && value_eq(gr, pr, cfg))
            || (value_eq(gl, pr, cfg) && value_eq(gr, pl, cfg))
        {
            return true;
        }
        return proportional(&diff(gl, gr), &diff(pl, pr), cfg, false);
    }
    if go.len() == 1 && po.len() == 1 {
        let (ga, gop, gb) = orient(&gi[0], go[0], &gi[1]);
        let (pa, pop, pb) = orient(&pi[0], po[0], &pi[1]);
        if gop != pop {
            return false;
        }
        if value_eq(ga, pa, cfg) && value_eq(gb, pb, cfg) {
            return true;
        }
        let positive = gop != RelOp::Ne;
        return proportional(&diff(gb, ga), &diff(pb, pa), cfg, positive);
    }
    if go.len() == po.len() {
        if go == po && gi.iter().zip(pi).all(|(a, b)| value_eq(a, b, cfg)) {
            return true;
        }
        let flipped: Vec<RelOp> = po.iter().rev().map(|o| o.flip()).collect();
        if go == flipped.as_slice()
            && gi
                .iter()
                .zip(pi.iter().rev())
                .all(|(a, b)| value_eq(a, b, cfg))
        {
            return true;
        }
    }
    false
}

/// Rewrites `a > b` as `b < a` so that only `<`, `<=`, `=`, `!=` remain.
fn orient<'a>(a: &'a E, op: RelOp, b: &'a E) -> (&'a E, RelOp, &'a E) {
    match op {
        RelOp::Gt | RelOp::Ge => (b, op.flip(), a),
        _ => (a, op, b),
    }
}

fn diff(a: &E, b: &E) -> E {
    E::Add(vec![a.clone(), E::Neg(Box::new(b.clone()))])
}

/// Whether `a = k * b` for one constant `k` (`k > 0` when `positive`).
fn proportional(a: &E, b: &E, cfg: &MathConfig, positive: bool) -> bool {
    let mut syms = a.symbols();
    syms.extend(b.symbols());
    syms.sort();
    syms.dedup();
    if cfg.strict && a.symbols() != b.symbols() {
        return false;
    }
    let mut ratio: Option<f64> = None;
    let mut agree = 0;
    for env in points(&syms) {
        let (Some(x), Some(y)) = (num(a, &env), num(b, &env)) else {
            continue;
        };
        if y.abs() < 1e-12 && x.abs() < 1e-12 {
            agree += 1;
            continue;
        }
        if y.abs() < 1e-12 {
            return false;
        }
        let r = x / y;
        match ratio {
            None => ratio = Some(r),
            Some(r0) => {
                if (r - r0).abs() > 1e-8 * r0.abs().max(1.0) {
                    return false;
                }
            }
        }
        agree += 1;
    }
    match ratio {
        Some(r) => agree >= 3 && r != 0.0 && (!positive || r > 0.0),
        None => agree >= 3,
    }
}

fn inequality_to_interval(items: &[E], ops: &[RelOp]) -> Option<E> {
    let n_inf = || E::Neg(Box::new(E::Inf));
    let bound = |e: &E| e.symbols().is_empty().then(|| e.clone());
    match (items, ops) {
        ([a, b], [op]) => {
            let (var_left, other) = if a.symbols().len() == 1 && b.symbols().is_empty() {
                (true, bound(b)?)
            } else if b.symbols().len() == 1 && a.symbols().is_empty() {
                (false, bound(a)?)
            } else {
                return None;
            };
            if !matches!(if var_left { a } else { b }, E::Sym(_)) {
                return None;
            }
            let op = if var_left { *op } else { op.flip() };
            Some(match op {
                RelOp::Lt => E::Interval(Box::new(n_inf()), Box::new(other), true, true),
                RelOp::Le => E::Interval(Box::new(n_inf()), Box::new(other), true, false),
                RelOp::Gt => E::Interval(Box::new(other), Box::new(E::Inf), true, true),
                RelOp::Ge => E::Interval(Box::new(other), Box::new(E::Inf), false, true),
                _ => return None,
            })
        }
        ([a, x, b], [o1, o2]) if !x.symbols().is_empty() => {
            let (lo, hi, o1, o2) = match (o1, o2) {
                (RelOp::Lt | RelOp::Le, RelOp::Lt | RelOp::Le) => (a, b, *o1, *o2),
                (RelOp::Gt | RelOp::Ge, RelOp::Gt | RelOp::Ge) => (b, a, o2.flip(), o1.flip()),
                _ => return None,
            };
            // `a <= |z| <= b` with `a >= 0`: `[-b, -a] \cup [a, b]`
            if let E::Func(f, args) = x {
                if f == "abs" && matches!(args.as_slice(), [E::Sym(_)]) {
                    let (lo, hi) = (bound(lo)?, bound(hi)?);
                    if num(&lo, &Env::new()).is_some_and(|v| v > 0.0) {
                        let neg = |e: &E| E::Neg(Box::new(e.clone()));
                        return Some(E::Union(vec![
                            E::Interval(
                                Box::new(neg(&hi)),
                                Box::new(neg(&lo)),
                                o2 == RelOp::Lt,
                                o1 == RelOp::Lt,
                            ),
                            E::Interval(
                                Box::new(lo),
                                Box::new(hi),
                                o1 == RelOp::Lt,
                                o2 == RelOp::Lt,
                            ),
                        ]));
                    }
                }
            }
            Some(E::Interval(
                Box::new(bound(lo)?),
                Box::new(bound(hi)?),
                o1 == RelOp::Lt,
                o2 == RelOp::Lt,
            ))
        }
        _ => None,
    }
}

/// Expands `a ± b` into both values (at most 4 signs: 16 values).
fn expand_pm(e: &E) -> Vec<E> {
    let mut found = 0;
    e.walk(&mut |x| {
        if matches!(x, E::PlusMinus(..)) {
            found += 1;
        }
    });
    if found == 0 || found > 4 {
        return vec![e.clone()];
    }
    let plus = replace_pm(e, true);
    let minus = replace_pm(e, false);
    let mut out = expand_pm(&plus);
    out.extend(expand_pm(&minus));
    out
}

fn replace_pm(e: &E, plus: bool) -> E {
    let mut done = false;
    rep(e, plus, &mut done)
}

fn rep(e: &E, plus: bool, done: &mut bool) -> E {
    let r = |x: &E, d: &mut bool| Box::new(rep(x, plus, d));
    match e {
        E::PlusMinus(a, b) if !*done => {
            *done = true;
            let b = if plus {
                (**b).clone()
            } else {
                E::Neg(b.clone())
            };
            E::Add(vec![(**a).clone(), b])
        }
        E::Add(v) => E::Add(v.iter().map(|x| rep(x, plus, done)).collect()),
        E::Mul(v) => E::Mul(v.iter().map(|x| rep(x, plus, done)).collect()),
        E::Func(f, v) => E::Func(f.clone(), v.iter().map(|x| rep(x, plus, done)).collect()),
        E::Neg(a) => E::Neg(r(a, done)),
        E::Percent(a) => E::Percent(r(a, done)),
        E::Div(a, b) => {
            let a2 = r(a, done);
            E::Div(a2, r(b, done))
        }
        E::Pow(a, b) => {
            let a2 = r(a, done);
            E::Pow(a2, r(b, done))
        }
        other => other.clone(),
    }
}

fn as_text(e: &E) -> Option<String> {
    match e {
        E::Text(t) => Some(t.clone()),
        E::Sym(s) => Some(norm_text(s)),
        E::Mul(v) => v
            .iter()
            .map(as_text)
            .collect::<Option<Vec<_>>>()
            .map(|p| p.concat()),
        _ => None,
    }
}

/// Equivalence of two non-relation values.
pub fn value_eq(g: &E, p: &E, cfg: &MathConfig) -> bool {
    if g == p {
        return true;
    }
    match (g, p) {
        (E::Text(a), _) | (_, E::Text(a)) if !a.is_empty() => {
            let other = if matches!(g, E::Text(_)) { p } else { g };
            return as_text(other).is_some_and(|t| &t == a)
                || (matches!(g, E::Text(_))
                    && matches!(p, E::Text(_))
                    && as_text(g) == as_text(p));
        }
        (E::Set(a), E::Set(b)) => return set_eq(a, b, cfg),
        (E::Set(a), other) | (other, E::Set(a)) if a.len() == 1 => {
            let other_set = expand_pm(other);
            return set_eq(a, &other_set, cfg);
        }
        (E::Tuple(a), E::Tuple(b)) => {
            return a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_eq(x, y, cfg));
        }
        (E::Interval(a, b, lo, hi), E::Interval(c, d, lo2, hi2)) => {
            return lo == lo2 && hi == hi2 && value_eq(a, c, cfg) && value_eq(b, d, cfg);
        }
        (E::Tuple(t), E::Interval(c, d, true, true))
        | (E::Interval(c, d, true, true), E::Tuple(t))
            if t.len() == 2 =>
        {
            return value_eq(&t[0], c, cfg) && value_eq(&t[1], d, cfg);
        }
        (E::Union(a), E::Union(b)) => return set_eq(a, b, cfg),
        (E::Matrix(a), E::Matrix(b)) => {
            return a.len() == b.len()
                && a.iter().zip(b).all(|(r, s)| {
                    r.len() == s.len() && r.iter().zip(s).all(|(x, y)| value_eq(x, y, cfg))
                });
        }
        (E::Matrix(m), E::Tuple(t)) | (E::Tuple(t), E::Matrix(m)) => {
            let flat: Vec<&E> = if m.len() == 1 {
                m[0].iter().collect()
            } else if m.iter().all(|r| r.len() == 1) {
                m.iter().map(|r| &r[0]).collect()
            } else {
                return false;
            };
            return flat.len() == t.len() && flat.iter().zip(t).all(|(x, y)| value_eq(x, y, cfg));
        }
        _ => {}
    }
    if let (E::Set(a), other) | (other, E::Set(a)) = (g, p) {
        if !other.is_structure() {
            let expanded = expand_pm(other);
            return expanded.len() > 1 && set_eq(a, &expanded, cfg);
        }
    }
    if g.is_structure() || p.is_structure() {
        return false;
    }
    let gs = expand_pm(g);
    let ps = expand_pm(p);
    if gs.len() > 1 || ps.len() > 1 {
        return set_eq(&gs, &ps, cfg);
    }
    scalar_eq(g, p, cfg)
}

fn dedup(v: Vec<E>, cfg: &MathConfig) -> Vec<E> {
    let mut out: Vec<E> = Vec::with_capacity(v.len());
    for x in v {
        if !out
            .iter()
            .any(|y| y == &x || (out.len() < 16 && value_eq(y, &x, cfg)))
        {
            out.push(x);
        }
    }
    out
}

fn set_eq(a: &[E], b: &[E], cfg: &MathConfig) -> bool {
    let a: Vec<E> = a
        .iter()
        .map(unwrap_assignment)
        .flat_map(|x| expand_pm(&x))
        .collect();
    let b: Vec<E> = b
        .iter()
        .map(unwrap_assignment)
        .flat_map(|x| expand_pm(&x))
        .collect();
    let (a, b) = if a.len() != b.len() {
        (dedup(a, cfg), dedup(b, cfg))
    } else {
        (a, b)
    };
    if a.len() != b.len() || a.len() > 64 {
        return false;
    }
    let mut used = vec![false; b.len()];
    'outer: for x in &a {
        for (j, y) in b.iter().enumerate() {
            if !used[j] && value_eq(x, y, cfg) {
                used[j] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

fn scalar_eq(g: &E, p: &E, cfg: &MathConfig) -> bool {
    // Percent: `28\%` matches `0.28` and `28\%`; with `percent_accepts_bare` also a
    // bare `28`, either way round (NeMo-Skills, hendrycks).
    if cfg.percent_accepts_bare {
        match (g, p) {
            (E::Percent(inner), other) | (other, E::Percent(inner))
                if !matches!(other, E::Percent(_)) && scalar_eq(inner, other, cfg) =>
            {
                return true;
            }
            _ => {}
        }
    }
    if let (Some(a), Some(b)) = (exact(g), exact(p)) {
        return a == b;
    }
    let gsyms = g.symbols();
    let psyms = p.symbols();
    if gsyms.is_empty() && psyms.is_empty() {
        let env = Env::new();
        let (Some(a), Some(b)) = (num(g, &env), num(p, &env)) else {
            return false;
        };
        return close(a, b, g.has_float() || p.has_float(), cfg);
    }
    if gsyms == psyms {
        return sampled_eq(g, p, &gsyms, cfg);
    }
    // different symbol sets can still be the same function (`\sin^2 x + \cos^2 x` vs 1)
    let mut all = gsyms.clone();
    all.extend(psyms.iter().cloned());
    all.sort();
    all.dedup();
    if sampled_eq(g, p, &all, cfg) {
        return true;
    }
    if !cfg.strict && gsyms.len() == psyms.len() && gsyms.len() <= 4 {
        // try every renaming of the prediction's symbols
        let mut perm: Vec<usize> = (0..psyms.len()).collect();
        loop {
            let renamed = rename(p, &psyms, &perm, &gsyms);
            if sampled_eq(g, &renamed, &gsyms, cfg) {
                return true;
            }
            if !next_perm(&mut perm) {
                return false;
            }
        }
    }
    false
}

fn rename(e: &E, from: &[String], perm: &[usize], to: &[String]) -> E {
    match e {
        E::Sym(s) => match from.iter().position(|f| f == s) {
            Some(k) => E::Sym(to[perm[k]].clone()),
            None => e.clone(),
        },
        E::Add(v) => E::Add(v.iter().map(|x| rename(x, from, perm, to)).collect()),
        E::Mul(v) => E::Mul(v.iter().map(|x| rename(x, from, perm, to)).collect()),
        E::Func(f, v) => E::Func(
            f.clone(),
            v.iter().map(|x| rename(x, from, perm, to)).collect(),
        ),
        E::Neg(a) => E::Neg(Box::new(rename(a, from, perm, to))),
        E::Percent(a) => E::Percent(Box::new(rename(a, from, perm, to))),
        E::Div(a, b) => E::Div(
            Box::new(rename(a, from, perm, to)),
            Box::new(rename(b, from, perm, to)),
        ),
        E::Pow(a, b) => E::Pow(
            Box::new(rename(a, from, perm, to)),
            Box::new(rename(b, from, perm, to)),
        ),
        other => other.clone(),
    }
}

fn next_perm(p: &mut [usize]) -> bool {
    let n = p.len();
    if n < 2 {
        return false;
    }
    let mut i = n - 1;
    while i > 0 && p[i - 1] >= p[i] {
        i -= 1;
    }
    if i == 0 {
        return false;
    }
    let mut j = n - 1;
    while p[j] <= p[i - 1] {
        j -= 1;
    }
    p.swap(i - 1, j);
    p[i..].reverse();
    true
}

fn close(a: f64, b: f64, has_float: bool, cfg: &MathConfig) -> bool {
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    if has_float {
        let scale = 10f64.powi(cfg.float_rounding as i32);
        if a.abs() * scale < 4e15 && b.abs() * scale < 4e15 {
            return (a * scale).round() == (b * scale).round();
        }
    }
    let tol = 10f64.powi(-(cfg.numeric_precision.clamp(4, 15) as i32 - 3));
    (a - b).abs() <= tol * a.abs().max(b.abs())
}

fn points(syms: &[String]) -> Vec<Env> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x6d61_7468_7665_7269);
    (0..POINTS)
        .map(|_| {
            syms.iter()
                .map(|s| (s.clone(), rng.random_range(0.35..2.85)))
                .collect()
        })
        .collect()
}

fn sampled_eq(g: &E, p: &E, syms: &[String], cfg: &MathConfig) -> bool {
    let has_float = g.has_float() || p.has_float();
    let mut agree = 0;
    for env in points(syms) {
        match (num(g, &env), num(p, &env)) {
            (Some(a), Some(b)) => {
                let ok = if has_float {
                    (a - b).abs() <= 10f64.powi(-(cfg.float_rounding as i32)) * a.abs().max(1.0)
                } else {
                    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-3)
                };
                if !ok {
                    return false;
                }
                agree += 1;
            }
            (None, None) => {}
            _ => return false,
        }
    }
    agree >= 3
}

/// Folds sums and products of matrices in the prediction (`A + B`, `A B`).
fn fold_matrices(e: E) -> E {
    match e {
        E::Add(v) if v.iter().all(|x| matches!(x, E::Matrix(_))) && v.len() > 1 => {
            let mut it = v.into_iter();
            let Some(E::Matrix(mut acc)) = it.next() else {
                return E::Set(vec![]);
            };
            for m in it {
                let E::Matrix(m) = m else {
                    return E::Set(vec![]);
                };
                if m.len() != acc.len() || m.iter().zip(&acc).any(|(a, b)| a.len() != b.len()) {
                    return E::Set(vec![]);
                }
                for (r, s) in acc.iter_mut().zip(m) {
                    for (x, y) in r.iter_mut().zip(s) {
                        *x = E::Add(vec![x.clone(), y]);
                    }
                }
            }
            E::Matrix(acc)
        }
        E::Mul(v) if v.len() == 2 && v.iter().all(|x| matches!(x, E::Matrix(_))) => {
            let (E::Matrix(a), E::Matrix(b)) = (&v[0], &v[1]) else {
                return E::Mul(v);
            };
            let inner = a.first().map_or(0, |r| r.len());
            if inner != b.len() || inner == 0 {
                return E::Mul(v);
            }
            let cols = b[0].len();
            let rows = a
                .iter()
                .map(|r| {
                    (0..cols)
                        .map(|j| {
                            E::Add(
                                (0..inner)
                                    .map(|k| E::Mul(vec![r[k].clone(), b[k][j].clone()]))
                                    .collect(),
                            )
                        })
                        .collect()
                })
                .collect();
            E::Matrix(rows)
        }
        E::Neg(a) if matches!(*a, E::Num(Num::Float(_))) => E::Neg(a),
        other => other,
    }
}
