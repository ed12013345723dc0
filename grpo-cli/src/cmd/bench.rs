//! `grpo bench WORKLOAD` (hidden): runs OUR side of one benchmark workload of
//! `docs/benchmarks.md` on random weights and prints one JSON line of
//! timings (`{"workload", "s" (median), "runs", ...}`). Driven by `cargo xtask bench`,
//! which runs the peer (PyTorch / TRL) in the same invocation and computes the ratios.
//!
//! Workloads (sizes identical to the peer scripts in `xtask/peer/`):
//! - `c1`: tiny Qwen2 (d=256, L=4, H=8, KV=2, I=704, V=512), 16 prompts × G=8, prompt 32,
//!   64 new tokens (sampled, temperature 1, EOS ignored, fixed length).
//! - `c2`: same model, one GRPO step (forward + clipped-ratio loss + backward + AdamW) on 128
//!   sequences of 32 prompt + 64 completion tokens.
//! - `c3`: Qwen2.5-0.5B sizes, f32, 4 prompts × G=2, prompt 64, 16 new tokens.
//! - `c3b`: Qwen2.5-0.5B sizes, 4 prompts × G=2, prompt 16, 64 new tokens.
//! - `c4`: Qwen2.5-0.5B sizes, per-token log-probs of 8 sequences × 128 tokens (forward only).
//! - `e2e`: one GRPO step reproducing TRL's CPU workload (tiny model, 16 prompts × G=8,
//!   32 new tokens), with the split rollout / reward / scoring / backward / optimiser.
//!
//! Generation workloads share each prompt's prefill across its G samples unless
//! `--no-share` is given (then G requests of one sample each).

use std::time::Instant;

use anyhow::{Context, bail};
use grpo_kernels::ops::gemm::{linear_rows, matmul};
use grpo_model::optim::Optimizer;
use grpo_model::{Arch, ForwardOptions, GroupInput, Model, ModelConfig, SeqInput};
use grpo_rollout::model::ModelLm;
use grpo_rollout::{Engine, EngineConfig, GenerateStats, Request, SamplingParams};
use serde_json::{Value, json};

/// Arguments of `grpo bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workload: c1, c2, c3, c3b, c4 or e2e.
    pub workload: String,
    /// Timed repetitions after one untimed warm-up run (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Generation without prefix sharing (G requests of one sample per prompt).
    #[arg(long)]
    pub no_share: bool,
    /// Seed of the random weights and prompts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs the workload and prints its JSON line.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let out = match args.workload.to_ascii_lowercase().as_str() {
        "c1" => gen_bench(tiny_config(), 16, 8, 32, 64, &args)?,
        "c2" => train_bench(&args)?,
        "c3" => gen_bench(small_config(), 4, 2, 64, 16, &args)?,
        "c3b" => gen_bench(small_config(), 4, 2, 16, 64, &args)?,
        "c4" => score_bench(&args)?,
        "e2e" => e2e_bench(&args)?,
        other => bail!("unknown workload `{other}` (expected c1, c2, c3, c3b, c4 or e2e)"),
    };
    println!("{out}");
    Ok(())
}

/// The tiny Qwen2 of the CPU workloads C1/C2 and the TRL end-to-end step.
fn tiny_config() -> ModelConfig {
    ModelConfig {
        arch: Arch::Qwen2,
        vocab_size: 512,
        hidden_size: 256,
        intermediate_size: 704,
        num_layers: 4,
        num_heads: 8,
        num_kv_heads: 2,
        head_dim: 32,
        max_position_embeddings: 1024,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: vec![1],
        pad_token_id: None,
    }
}

/// Qwen2.5-0.5B sizes (f32).
fn small_config() -> ModelConfig {
    ModelConfig {
        arch: Arch::Qwen2,
        vocab_size: 151_936,
        hidden_size: 896,
        intermediate_size: 4864,
        num_layers: 24,
        num_heads: 14,
        num_kv_heads: 2,
        head_dim: 64,
        max_position_embeddings: 32_768,
        rms_norm_eps: 1e-6,
        rope_theta: 1e6,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: vec![151_643],
        pad_token_id: None,
    }
}

/// Deterministic pseudo-random token ids in `[lo, hi)` (splitmix64; values do not affect timing).
fn random_ids(n: usize, lo: u32, hi: u32, seed: &mut u64) -> Vec<u32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            lo + (z % u64::from(hi - lo)) as u32
        })
        .collect()
}

/// One warm-up call, then `reps` timed calls; returns (median, all runs).
fn time_runs(
    reps: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, Vec<f64>)> {
    f()?;
    let mut runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        runs.push(t.elapsed().as_secs_f64());
    }
    Ok((median(&runs), runs))
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Fixed-length sampled requests: shared (`prompts` requests × `g`) or unshared (`prompts·g` × 1).
fn requests(prompts: &[Vec<u32>], g: usize, new: usize, share: bool, seed: u64) -> Vec<Request> {
    let mut out = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let copies = if share { 1 } else { g };
        for j in 0..copies {
            let mut params = SamplingParams::sampled(
                if share { g } else { 1 },
                1.0,
                new,
                seed + (i * g + j) as u64,
            );
            params.min_new_tokens = new;
            params.ignore_eos = true;
            out.push(Request {
                prompt_ids: p.clone(),
                params,
            });
        }
    }
    out
}

/// Runs the engine and checks every request produced exactly `new` tokens per sample.
fn generate(
    engine: &Engine<'_, ModelLm<&Model>>,
    reqs: &[Request],
    new: usize,
) -> anyhow::Result<(Vec<Vec<Vec<u32>>>, GenerateStats)> {
    let mut stats = GenerateStats::default();
    let mut out = Vec::with_capacity(reqs.len());
    for (i, r) in engine
        .generate(reqs, None, &mut stats)
        .into_iter()
        .enumerate()
    {
        let comps = r.with_context(|| format!("request {i}"))?;
        let ids: Vec<Vec<u32>> = comps.into_iter().map(|c| c.ids).collect();
        if ids.iter().any(|c| c.len() != new) {
            bail!("request {i}: a completion is not {new} tokens long");
        }
        out.push(ids);
    }
    Ok((out, stats))
}

fn gen_bench(
    config: ModelConfig,
    n_prompts: usize,
    g: usize,
    plen: usize,
    new: usize,
    args: &Args,
) -> anyhow::Result<Value> {
    let vocab = config.vocab_size as u32;
    let model = Model::new_random(config, args.seed)?;
    let mut rng = args.seed ^ 0x5EED;
    let prompts: Vec<Vec<u32>> = (0..n_prompts)
        .map(|_| random_ids(plen, 2, vocab - 1, &mut rng))
        .collect();
    let reqs = requests(&prompts, g, new, !args.no_share, args.seed);
    let lm = ModelLm::new(&model);
    let engine = Engine::new(
        &lm,
        EngineConfig {
            max_batch: n_prompts * g,
            ..EngineConfig::default()
        },
    );
    let mut last = GenerateStats::default();
    let (s, runs) = time_runs(args.reps, || {
        last = generate(&engine, &reqs, new)?.1;
        Ok(())
    })?;
    let tokens = n_prompts * g * new;
    Ok(json!({
        "workload": args.workload, "share": !args.no_share, "s": s, "runs": runs,
        "gen_tok_per_s": tokens as f64 / s, "prefill_tokens": last.prefill_tokens,
        "prefill_s": last.prefill_secs, "decode_s": last.decode_secs,
    }))
}

/// d loss / d logp of the peer's clipped-ratio loss `-min(r·A, clip(r, 0.8, 1.2)·A)`,
/// token-mean over all completion tokens (`count`), `r = exp(logp - old)`.
fn clipped_dlogp(logp: &[f32], old: &[f32], adv: f32, count: f32) -> Vec<f32> {
    logp.iter()
        .zip(old)
        .map(|(&lp, &o)| {
            let r = (lp - o).exp();
            let unclipped = r * adv;
            let clipped = r.clamp(0.8, 1.2) * adv;
            // The min picks the unclipped term (gradient r·A) unless the clipped one is smaller
            // and r is outside the clip range (then the gradient is 0).
            let in_range = (0.8..=1.2).contains(&r);
            if unclipped <= clipped || in_range {
                -unclipped / count
            } else {
                0.0
            }
        })
        .collect()
}

/// AdamW state with the peer's hyper-parameters (torch defaults, lr 1e-5). The
/// hyper-parameter type lives in grpo-kernels, which this crate does not depend on, so it is
/// built through its serde form.
fn optimizer(model: &Model) -> anyhow::Result<Optimizer> {
    let hp = json!({"lr": 1e-5, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01});
    Ok(Optimizer::new(&model.layout, serde_json::from_value(hp)?)?)
}

fn train_bench(args: &Args) -> anyhow::Result<Value> {
    let (b, p, c) = (128usize, 32usize, 64usize);
    let mut model = Model::new_random(tiny_config(), args.seed)?;
    let mut rng = args.seed ^ 0x7EA1;
    let seqs: Vec<(Vec<u32>, Vec<u32>)> = (0..b)
        .map(|_| {
            (
                random_ids(p, 0, 512, &mut rng),
                random_ids(c, 0, 512, &mut rng),
            )
        })
        .collect();
    let adv: Vec<f32> = random_ids(b, 0, 2001, &mut rng)
        .into_iter()
        .map(|x| (x as f32 - 1000.0) / 500.0)
        .collect();
    let old = vec![-6.0f32; c];
    let mut opt = optimizer(&model)?;
    let count = (b * c) as f32;
    let (mut fwd, mut bwd, mut upd) = (Vec::new(), Vec::new(), Vec::new());
    let (s, runs) = time_runs(args.reps, || {
        let t0 = Instant::now();
        let batch: Vec<SeqInput<'_>> = seqs
            .iter()
            .map(|(pr, co)| SeqInput {
                prompt: pr,
                completion: co,
            })
            .collect();
        let (out, acts) = model.forward(&batch, ForwardOptions::default())?;
        let dlogp: Vec<Vec<f32>> = out
            .logprobs
            .iter()
            .zip(&adv)
            .map(|(lp, &a)| clipped_dlogp(lp, &old, a, count))
            .collect();
        let t1 = Instant::now();
        let mut grads = model.zero_grads();
        model.backward(&acts, &dlogp, None, &mut grads)?;
        model.recycle(acts);
        let t2 = Instant::now();
        opt.update(&mut model.weights, &grads)?;
        let t3 = Instant::now();
        fwd.push((t1 - t0).as_secs_f64());
        bwd.push((t2 - t1).as_secs_f64());
        upd.push((t3 - t2).as_secs_f64());
        Ok(())
    })?;
    // Rows: prompt + completion minus its last token; the last layer keeps the c rows per
    // sequence that predict a completion token.
    let (gemm_s, gflop) = gemm_floor(&model.config, b * (p + c - 1), b * c, b * c, args.reps)?;
    Ok(json!({
        "workload": args.workload, "s": s, "runs": runs, "tok_per_s": (b * (p + c)) as f64 / s,
        "forward_s": median(&fwd[1..]), "backward_s": median(&bwd[1..]),
        "optimizer_s": median(&upd[1..]),
        "gemm_only_s": gemm_s, "gemm_gflop": gflop,
    }))
}

/// The matrix products of one training step alone, on the same kernel ([`matmul`]) and
/// products as the model's forward and backward, as whole-batch shapes: every layer's
/// projections over `rows` tokens (the last layer's q/o/MLP over the `last_rows` the loss
/// reads, as the model runs them), the LM head over `lm_rows`, each followed by its
/// input-gradient and weight-gradient products (the model's backward runs the same FLOPs in
/// row tiles on large batches). Returns (median seconds, GFLOP): the floor that the rest of
/// the step (norms, attention, RoPE, SwiGLU, softmax, AdamW) adds to.
fn gemm_floor(
    c: &ModelConfig,
    rows: usize,
    last_rows: usize,
    lm_rows: usize,
    reps: usize,
) -> anyhow::Result<(f64, f64)> {
    let shapes = product_shapes(c, rows, last_rows, lm_rows);
    let (x, w, mut y) = operands(&shapes);
    let dy = x.clone();
    let mut dw = vec![0.0f32; w.len()];
    let (s, _) = time_runs(reps, || {
        for &(m, k, n) in &shapes {
            matmul(
                &mut y[..m * n],
                &x[..m * k],
                &w[..n * k],
                m,
                k,
                n,
                false,
                true,
                false,
            )?;
            matmul(
                &mut y[..m * k],
                &dy[..m * n],
                &w[..n * k],
                m,
                n,
                k,
                false,
                false,
                false,
            )?;
            matmul(
                &mut dw[..n * k],
                &dy[..m * n],
                &x[..m * k],
                n,
                m,
                k,
                true,
                false,
                true,
            )?;
        }
        Ok(())
    })?;
    Ok((s, gflop(&shapes, 3)))
}

/// The linear products of `steps` decode steps of `rows` rows (every layer's projections and
/// the LM head) on the generation engine's row-invariant kernel ([`linear_rows`]). Returns
/// (median seconds, GFLOP).
fn decode_floor(
    c: &ModelConfig,
    rows: usize,
    steps: usize,
    reps: usize,
) -> anyhow::Result<(f64, f64)> {
    let shapes = product_shapes(c, rows, rows, rows);
    let (x, w, mut y) = operands(&shapes);
    let (s, _) = time_runs(reps, || {
        for _ in 0..steps {
            for &(m, k, n) in &shapes {
                linear_rows(&mut y[..m * n], &x[..m * k], &w[..n * k], m, k, n, false)?;
            }
        }
        Ok(())
    })?;
    Ok((s, steps as f64 * gflop(&shapes, 1)))
}

/// `(rows, k, n)` of every `y = x · Wᵀ` of a forward: each layer's q, k, v, o, gate, up and
/// down projections over `rows` tokens, then the LM head over `lm_rows`.
fn product_shapes(
    c: &ModelConfig,
    rows: usize,
    last_rows: usize,
    lm_rows: usize,
) -> Vec<(usize, usize, usize)> {
    let (h, qd, kvd, inter) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
    // (k, n, whether the last layer runs it on every row: keys and values).
    let layer = [
        (h, qd, false),
        (h, kvd, true),
        (h, kvd, true),
        (qd, h, false),
        (h, inter, false),
        (h, inter, false),
        (inter, h, false),
    ];
    let nl = c.num_layers;
    let mut shapes: Vec<_> = (0..nl)
        .flat_map(|l| {
            layer.map(|(k, n, all)| {
                let m = if l + 1 == nl && !all { last_rows } else { rows };
                (m, k, n)
            })
        })
        .collect();
    shapes.push((lm_rows, h, c.vocab_size));
    shapes
}

/// Input, weight and output buffers large enough for every shape (either way round).
fn operands(shapes: &[(usize, usize, usize)]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows_max = shapes
        .iter()
        .map(|&(m, k, n)| m * k.max(n))
        .max()
        .unwrap_or(0);
    let w_max = shapes.iter().map(|&(_, k, n)| k * n).max().unwrap_or(0);
    let x = (0..rows_max).map(|i| (i % 13) as f32 * 0.01).collect();
    let w = (0..w_max).map(|i| (i % 7) as f32 * 0.01).collect();
    (x, w, vec![0.0; rows_max])
}

/// GFLOP of `passes` products of each shape.
fn gflop(shapes: &[(usize, usize, usize)], passes: usize) -> f64 {
    let flop: usize = shapes.iter().map(|&(m, k, n)| passes * 2 * m * k * n).sum();
    flop as f64 / 1e9
}

fn score_bench(args: &Args) -> anyhow::Result<Value> {
    let model = Model::new_random(small_config(), args.seed)?;
    let mut rng = args.seed ^ 0x5C0E;
    // 8 sequences × 128 tokens: log-probs of tokens 1..128 (127 per sequence), as the peer.
    let seqs: Vec<Vec<u32>> = (0..8)
        .map(|_| random_ids(128, 0, 151_936, &mut rng))
        .collect();
    let (s, runs) = time_runs(args.reps, || {
        let batch: Vec<SeqInput<'_>> = seqs
            .iter()
            .map(|x| SeqInput {
                prompt: &x[..1],
                completion: &x[1..],
            })
            .collect();
        let out = model.score(&batch)?;
        if out.logprobs.iter().any(|l| l.len() != 127) {
            bail!("scoring returned the wrong number of log-probs");
        }
        Ok(())
    })?;
    Ok(json!({"workload": args.workload, "s": s, "runs": runs, "tok_per_s": 1024.0 / s}))
}

/// One GRPO step shaped like `xtask/peer/trl_grpo_step.py`: prompts `"abc+def="` over a
/// 16-token digit vocabulary (8 tokens each), G=8, 32 sampled tokens, exact-match reward,
/// group-normalised advantages, a shared-prefix training forward, backward and AdamW.
fn e2e_bench(args: &Args) -> anyhow::Result<Value> {
    let (n_prompts, g, new) = (16usize, 8usize, 32usize);
    let mut model = Model::new_random(tiny_config(), args.seed)?;
    let mut opt = optimizer(&model)?;
    let mut rng = args.seed ^ 0xE2E;
    let mut split: [Vec<f64>; 5] = Default::default();
    let mut step = 0u64;
    let (s, runs) = time_runs(args.reps, || {
        step += 1;
        // Prompts: digits are tokens 0..10, '+' = 10, '=' = 11.
        let mut answers = Vec::new();
        let prompts: Vec<Vec<u32>> = (0..n_prompts)
            .map(|_| {
                let ab = random_ids(2, 100, 1000, &mut rng);
                answers.push(digits(ab[0] + ab[1]));
                let mut p = digits(ab[0]);
                p.push(10);
                p.extend(digits(ab[1]));
                p.push(11);
                p
            })
            .collect();
        let t0 = Instant::now();
        let lm = ModelLm::new(&model);
        let engine = Engine::new(
            &lm,
            EngineConfig {
                max_batch: n_prompts * g,
                ..EngineConfig::default()
            },
        );
        let reqs = requests(&prompts, g, new, true, args.seed + 1000 * step);
        let (comps, _) = generate(&engine, &reqs, new)?;
        let t1 = Instant::now();
        // Exact-match reward and group-normalised advantages.
        let mut adv = Vec::with_capacity(n_prompts * g);
        for (group, ans) in comps.iter().zip(&answers) {
            let r: Vec<f32> = group
                .iter()
                .map(|c| f32::from(u8::from(c.starts_with(ans))))
                .collect();
            let mean = r.iter().sum::<f32>() / g as f32;
            let std =
                (r.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / (g - 1) as f32).sqrt();
            adv.extend(r.iter().map(|x| (x - mean) / (std + 1e-4)));
        }
        let t2 = Instant::now();
        let groups: Vec<GroupInput<'_>> = prompts
            .iter()
            .zip(&comps)
            .map(|(p, cs)| GroupInput {
                prompt: p,
                completions: cs.iter().map(Vec::as_slice).collect(),
            })
            .collect();
        let (out, acts) = model.forward_grouped(&groups, ForwardOptions::default())?;
        let count = (n_prompts * g * new) as f32;
        // Single policy iteration: old log-probs are the current ones (detached).
        let dlogp: Vec<Vec<f32>> = out
            .logprobs
            .iter()
            .zip(&adv)
            .map(|(lp, &a)| clipped_dlogp(lp, lp, a, count))
            .collect();
        let t3 = Instant::now();
        let mut grads = model.zero_grads();
        model.backward(&acts, &dlogp, None, &mut grads)?;
        model.recycle(acts);
        let t4 = Instant::now();
        grpo_model::optim::clip_grad_norm(&mut grads, 1.0)?;
        opt.update(&mut model.weights, &grads)?;
        let t5 = Instant::now();
        for (v, d) in split
            .iter_mut()
            .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
        {
            v.push(d.as_secs_f64());
        }
        Ok(())
    })?;
    let m = |i: usize| median(&split[i][1..]);
    // The step's matrix products alone: training over 4096 rows (16 prompts of 8 tokens
    // once + 128 completions of 31 input tokens; the last layer on each prompt's last row and
    // the completions; LM head on the 4096 completion tokens) and 32 decode steps of 128 rows
    // on the engine's row-invariant kernel.
    let (train_gemm, train_gf) = gemm_floor(
        &model.config,
        n_prompts * 8 + n_prompts * g * (new - 1),
        n_prompts + n_prompts * g * (new - 1),
        n_prompts * g * new,
        3,
    )?;
    let (decode_gemm, decode_gf) = decode_floor(&model.config, n_prompts * g, new, 3)?;
    Ok(json!({
        "workload": args.workload, "s": s, "runs": runs,
        "rollout_s": m(0), "reward_s": m(1), "scoring_s": m(2), "backward_s": m(3),
        "optimizer_s": m(4),
        "gemm_only_s": train_gemm + decode_gemm, "train_gemm_s": train_gemm,
        "decode_gemm_s": decode_gemm, "gemm_gflop": train_gf + decode_gf,
    }))
}

/// Decimal digits of `x` as token ids 0..10.
fn digits(x: u32) -> Vec<u32> {
    x.to_string().bytes().map(|b| u32::from(b - b'0')).collect()
}
