//! The row-tiled MLP backward (large batches) against the whole-batch path, and reused
//! activation buffers ([`Model::recycle`]) against fresh ones.

use grpo_model::{Arch, ForwardOptions, GroupInput, Model, ModelConfig, SeqInput};

fn tiny() -> ModelConfig {
    ModelConfig {
        arch: Arch::Qwen2,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 72,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        max_position_embeddings: 128,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: vec![1],
        pad_token_id: None,
    }
}

/// `n` sequences of `p + c` tokens, varied by `salt`.
fn seqs(n: u32, p: u32, c: u32, salt: u32) -> Vec<(Vec<u32>, Vec<u32>)> {
    (0..n)
        .map(|s| {
            let pr = (0..p).map(|i| (s * 7 + i * 3 + salt) % 61 + 2).collect();
            let co = (0..c).map(|i| (s * 5 + i * 11 + salt) % 59 + 3).collect();
            (pr, co)
        })
        .collect()
}

fn batch(seqs: &[(Vec<u32>, Vec<u32>)]) -> Vec<SeqInput<'_>> {
    seqs.iter()
        .map(|(p, c)| SeqInput {
            prompt: p,
            completion: c,
        })
        .collect()
}

/// Log-probs and gradients of one forward/backward, with the activations recycled after.
fn step(model: &Model, batch: &[SeqInput<'_>]) -> (Vec<Vec<f32>>, Vec<f32>) {
    let (out, acts) = model.forward(batch, ForwardOptions::default()).unwrap();
    let dlogp: Vec<Vec<f32>> = out.logprobs.iter().map(|lp| vec![0.5; lp.len()]).collect();
    let mut grads = model.zero_grads();
    model.backward(&acts, &dlogp, None, &mut grads).unwrap();
    model.recycle(acts);
    (out.logprobs, grads)
}

#[test]
fn recycled_buffers_give_the_same_bits_as_fresh_ones() {
    // Batch A leaves its buffers (stale values) in the pool; batch B, shaped differently,
    // must not see them: same log-probs and gradients as on a model with an empty pool.
    let model = Model::new_random(tiny(), 3).unwrap();
    let (a, b) = (seqs(9, 70, 30, 1), seqs(7, 50, 45, 2));
    let fresh = step(&model.clone(), &batch(&b));
    step(&model, &batch(&a));
    assert!(model.recycled_floats() > 0);
    assert_eq!(step(&model, &batch(&b)), fresh);
    assert_eq!(step(&model, &batch(&b)), fresh);
    model.release_buffers();
    assert_eq!(model.recycled_floats(), 0);
}

/// One forward/backward in a pool of `threads` threads: unshared sequences, or (when
/// `grouped`) Prefix Grouper groups of four completions per prompt.
fn grads_in_pool(
    model: &Model,
    seqs: &[(Vec<u32>, Vec<u32>)],
    grouped: bool,
    threads: usize,
) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        let (out, acts) = if grouped {
            let groups: Vec<GroupInput<'_>> = seqs
                .chunks(4)
                .map(|g| GroupInput {
                    prompt: &g[0].0,
                    completions: g.iter().map(|(_, c)| c.as_slice()).collect(),
                })
                .collect();
            model.forward_grouped(&groups, ForwardOptions::default())
        } else {
            model.forward(&batch(seqs), ForwardOptions::default())
        }
        .unwrap();
        let dlogp: Vec<Vec<f32>> = out
            .logprobs
            .iter()
            .enumerate()
            .map(|(i, lp)| lp.iter().map(|_| (i as f32 - 5.5) / 7.0).collect())
            .collect();
        let dent: Vec<Vec<f32>> = out.entropy.iter().map(|e| vec![0.01; e.len()]).collect();
        let mut grads = model.zero_grads();
        model
            .backward(&acts, &dlogp, Some(&dent), &mut grads)
            .unwrap();
        grads
    })
}

#[test]
fn row_tiled_backward_matches_the_whole_batch() {
    // Tiles need 2 · 128 rows per pool thread (and two tiles of whole spans per thread for
    // the attention half), so 1 and 2 threads run the tiled backward — one and two runs of
    // tiles, a last tile shorter than the others — and 16 threads the whole-batch one.
    // Qwen2 (q/k/v biases) and Qwen3 (QK-norm), unshared and Prefix Grouper batches.
    for arch in [Arch::Qwen2, Arch::Qwen3] {
        let model = Model::new_random(ModelConfig { arch, ..tiny() }, 11).unwrap();
        for grouped in [false, true] {
            // Unshared: 12 × (20 + 40) tokens, 708 rows; grouped: 6 prompts of 20 tokens,
            // 4 completions of 40 each, 6 × (20 + 4 · 39) = 1056 rows.
            let seqs = seqs(if grouped { 24 } else { 12 }, 20, 40, 0);
            let seqs: Vec<_> = if grouped {
                // Each group of four shares its first member's prompt.
                seqs.chunks(4)
                    .flat_map(|g| g.iter().map(|(_, c)| (g[0].0.clone(), c.clone())))
                    .collect()
            } else {
                seqs
            };
            let whole = grads_in_pool(&model, &seqs, grouped, 16);
            let scale = whole.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            assert!(scale > 0.0);
            for threads in [1, 2] {
                let tiled = grads_in_pool(&model, &seqs, grouped, threads);
                let worst = tiled
                    .iter()
                    .zip(&whole)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    worst <= 1e-5 * scale,
                    "{arch:?}, grouped {grouped}, {threads} threads: max gradient difference \
                     {worst} (scale {scale})"
                );
                assert_ne!(tiled, whole, "expected a different summation order");
            }
        }
    }
}
