//! Our side of CPU workload C5 (`docs/benchmarks.md`): the LM head of
//! Qwen2.5-0.5B (H = 896, V = 151936, f32) on 4 × 128 tokens, fused lm_head → log-softmax →
//! gather → clipped GRPO loss, forward + backward (d hidden and d lm_head), never
//! materialising the `[512, V]` logits. Driven by `cargo xtask bench cpu C5`, which runs the
//! eager PyTorch peer (`xtask/peer/bench_c5.py`) in the same invocation.
//!
//! Prints one JSON line: `s` (median of `--reps` timed runs after one warm-up), `runs`, and
//! the extra memory of one fwd+bwd: `workspace_bytes` (the fused ops' scratch, from
//! [`logprob::workspace_bytes`] plus the per-token vectors) and `peak_rss_delta_bytes`
//! (peak resident set during one run minus the resident set before it, with the peak reset
//! through `/proc/self/clear_refs`; inputs and the gradient buffers are allocated before, as
//! on the peer side). Run by hand:
//! `cargo run --release -p grpo-kernels --example bench_c5 -- --reps 3`.

use std::time::Instant;

use grpo_kernels::ops::logprob::{self, logprob_bwd, logprob_fwd};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEQS: usize = 4;
const TOKENS: usize = 128;
const H: usize = 896;
const V: usize = 151_936;
/// Clip range of the surrogate (as the peer: `clamp(r, 0.8, 1.2)`).
const EPS: f32 = 0.2;
/// Old-policy log-prob of every token (random weights give log-probs near `-ln V ≈ -11.9`,
/// so ratios land on both sides of the clip range).
const OLD_LOGP: f32 = -12.0;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_c5: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut reps = 3usize;
    let mut chunk = 4096usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a positive integer"))
        };
        match a.as_str() {
            "--reps" => reps = value("--reps")?.max(1),
            "--chunk" => chunk = value("--chunk")?.max(1),
            other => return Err(format!("unknown argument `{other}` (--reps N, --chunk C)")),
        }
    }
    let t = SEQS * TOKENS;
    let mut g = ChaCha8Rng::seed_from_u64(5);
    let hidden: Vec<f32> = (0..t * H).map(|_| g.random_range(-1.0f32..1.0)).collect();
    let lm_head: Vec<f32> = (0..V * H).map(|_| g.random_range(-0.02f32..0.02)).collect();
    let targets: Vec<u32> = (0..t).map(|_| g.random_range(0..V as u32)).collect();
    let adv: Vec<f32> = (0..SEQS).map(|_| g.random_range(-1.0f32..1.0)).collect();
    let mut dhidden = vec![0.0f32; t * H];
    let mut dlm_head = vec![0.0f32; V * H];
    let mut loss = 0.0f64;
    let step = |dhidden: &mut [f32], dlm_head: &mut [f32]| -> Result<f64, String> {
        let (mut logp, mut entropy, mut lse) = (vec![0.0; t], vec![0.0; t], vec![0.0; t]);
        logprob_fwd(
            &mut logp,
            &mut entropy,
            &mut lse,
            &hidden,
            &lm_head,
            &targets,
            t,
            H,
            V,
            chunk,
        )
        .map_err(|e| e.to_string())?;
        // Clipped surrogate -min(r·A, clip(r)·A), token mean; its gradient w.r.t. logp.
        let mut l = 0.0f64;
        let dlogp: Vec<f32> = logp
            .iter()
            .enumerate()
            .map(|(i, &lp)| {
                let a = adv[i / TOKENS];
                let r = (lp - OLD_LOGP).exp();
                let (un, cl) = (r * a, r.clamp(1.0 - EPS, 1.0 + EPS) * a);
                l -= f64::from(un.min(cl));
                if un <= cl { -un / t as f32 } else { 0.0 }
            })
            .collect();
        let dentropy = vec![0.0f32; t];
        logprob_bwd(
            dhidden, dlm_head, &dlogp, &dentropy, &hidden, &lm_head, &targets, &lse, &entropy, t,
            H, V, chunk,
        )
        .map_err(|e| e.to_string())?;
        Ok(l / t as f64)
    };
    // Warm-up (rayon pool, first-touch of the gradient buffers).
    step(&mut dhidden, &mut dlm_head)?;
    let mut runs = Vec::with_capacity(reps);
    let mut rss_delta = None;
    for rep in 0..reps {
        let before = if rep == 0 { reset_peak_rss() } else { None };
        let t0 = Instant::now();
        loss = step(&mut dhidden, &mut dlm_head)?;
        runs.push(t0.elapsed().as_secs_f64());
        if let (Some(b), Some(peak)) = (before, status_kib("VmHWM:")) {
            rss_delta = Some(peak.saturating_sub(b) * 1024);
        }
    }
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let s = sorted[sorted.len() / 2];
    let workspace = logprob::workspace_bytes(t, chunk.min(V)) + 7 * t * 4;
    let flops = 8.0 * (t * H * V) as f64;
    println!(
        "{{\"workload\":\"c5\",\"s\":{s},\"runs\":{runs:?},\"tokens\":{t},\"h\":{H},\"v\":{V},\
         \"chunk\":{chunk},\"workspace_bytes\":{workspace},\"peak_rss_delta_bytes\":{},\
         \"gflop\":{:.1},\"gflop_per_s\":{:.1},\"loss\":{loss}}}",
        rss_delta.map_or("null".to_string(), |b| b.to_string()),
        flops / 1e9,
        flops / 1e9 / s
    );
    Ok(())
}

/// Resets the peak resident set (`VmHWM`) to the current one and returns the current
/// resident set in KiB (`None` where `/proc` does not offer this).
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kib("VmRSS:")
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
