//! Sampling properties: determinism per seed, filters never sample excluded tokens, greedy is
//! argmax, empirical frequencies match the tempered softmax, reported log-probs are right.

use crate::reference::{randv, rng};
use grpo_kernels::ops::sample::{SamplingParams, sample};

/// Naive reference: the renormalised distribution after temperature, top-k, top-p, min-p.
fn reference_dist(logits: &[f32], p: &SamplingParams) -> Vec<f64> {
    let t = p.temperature as f64;
    let zmax = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut w: Vec<f64> = logits
        .iter()
        .map(|&z| ((z as f64 - zmax) / t).exp())
        .collect();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if p.top_k > 0 {
        for &i in &order[p.top_k.min(order.len())..] {
            w[i] = 0.0;
        }
    }
    if p.top_p < 1.0 {
        let total: f64 = w.iter().sum();
        let mut acc = 0.0;
        let mut done = false;
        for &i in &order {
            if done {
                w[i] = 0.0;
            } else {
                acc += w[i] / total;
                done = acc >= p.top_p as f64;
            }
        }
    }
    if p.min_p > 0.0 {
        let wmax = w.iter().cloned().fold(0.0, f64::max);
        for x in w.iter_mut() {
            if *x < p.min_p as f64 * wmax {
                *x = 0.0;
            }
        }
    }
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

fn params(temperature: f32, top_k: usize, top_p: f32, min_p: f32) -> SamplingParams {
    SamplingParams {
        temperature,
        top_k,
        top_p,
        min_p,
    }
}

#[test]
fn same_seed_same_tokens_different_seed_differs() {
    let mut g = rng(1);
    let logits = randv(&mut g, 50, 2.0);
    let draw = |seed: u64, p: &SamplingParams| -> Vec<u32> {
        let mut r = rng(seed);
        (0..200)
            .map(|_| sample(&logits, p, &mut r).unwrap().token)
            .collect()
    };
    for p in [SamplingParams::PURE, params(0.7, 10, 0.9, 0.05)] {
        assert_eq!(draw(42, &p), draw(42, &p));
        assert_ne!(draw(42, &p), draw(43, &p));
    }
}

#[test]
fn greedy_is_argmax() {
    let mut g = rng(2);
    for _ in 0..50 {
        let logits = randv(&mut g, 97, 5.0);
        let want = logits
            .iter()
            .enumerate()
            .fold(0, |b, (i, &z)| if z > logits[b] { i } else { b });
        let mut r = rng(0);
        let s = sample(&logits, &SamplingParams::GREEDY, &mut r).unwrap();
        assert_eq!(s.token as usize, want);
    }
}

#[test]
fn filters_never_sample_excluded_tokens_and_logprobs_are_right() {
    let mut g = rng(3);
    let settings = [
        params(1.0, 5, 1.0, 0.0),
        params(0.8, 0, 0.5, 0.0),
        params(1.3, 0, 1.0, 0.3),
        params(0.6, 20, 0.8, 0.1),
        params(1.0, 1, 1.0, 0.0),
        params(2.0, 0, 0.05, 0.0),
    ];
    for p in settings {
        let mut logits = randv(&mut g, 64, 3.0);
        logits[7] = f32::NEG_INFINITY; // banned token
        let dist = reference_dist(&logits, &p);
        let zmax = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let raw_lse = zmax
            + logits
                .iter()
                .map(|&z| (z as f64 - zmax).exp())
                .sum::<f64>()
                .ln();
        let mut r = rng(11);
        for _ in 0..2000 {
            let s = sample(&logits, &p, &mut r).unwrap();
            let i = s.token as usize;
            assert!(dist[i] > 0.0, "{p:?} sampled excluded token {i}");
            assert!(
                (s.logprob as f64 - dist[i].ln()).abs() < 1e-5,
                "{p:?} logprob"
            );
            assert!(
                (s.logprob_raw as f64 - (logits[i] as f64 - raw_lse)).abs() < 1e-5,
                "{p:?} logprob_raw"
            );
        }
    }
}

#[test]
fn empirical_frequencies_match_softmax() {
    let logits = [1.0f32, 0.0, -0.5, 2.0, 0.3];
    for p in [
        params(1.0, 0, 1.0, 0.0),
        params(0.5, 0, 1.0, 0.0),
        params(1.0, 3, 0.95, 0.0),
    ] {
        let dist = reference_dist(&logits, &p);
        let n = 40_000;
        let mut counts = [0usize; 5];
        let mut r = rng(5);
        for _ in 0..n {
            counts[sample(&logits, &p, &mut r).unwrap().token as usize] += 1;
        }
        for i in 0..5 {
            let f = counts[i] as f64 / n as f64;
            let sd = (dist[i] * (1.0 - dist[i]) / n as f64).sqrt();
            assert!(
                (f - dist[i]).abs() <= 5.0 * sd + 1e-9,
                "{p:?} token {i}: freq {f} vs p {}",
                dist[i]
            );
        }
    }
}

#[test]
fn invalid_inputs_are_named_errors() {
    let mut r = rng(0);
    for (p, name) in [
        (params(-1.0, 0, 1.0, 0.0), "temperature"),
        (params(1.0, 0, 1.5, 0.0), "top_p"),
        (params(1.0, 0, 1.0, 2.0), "min_p"),
    ] {
        let e = sample(&[0.0, 1.0], &p, &mut r).unwrap_err();
        assert!(e.to_string().contains(name), "{e}");
    }
    assert!(sample(&[], &SamplingParams::PURE, &mut r).is_err());
    assert!(sample(&[f32::NEG_INFINITY; 3], &SamplingParams::PURE, &mut r).is_err());
}
