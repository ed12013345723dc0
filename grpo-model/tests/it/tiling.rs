//! The row-tiled MLP backward (large batches) against the whole-batch path.

use grpo_model::{Arch, ForwardOptions, Model, ModelConfig, SeqInput};

fn grads_in_pool(model: &Model, batch: &[SeqInput<'_>], threads: usize) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        let (out, acts) = model.forward(batch, ForwardOptions::default()).unwrap();
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
fn row_tiled_mlp_backward_matches_the_whole_batch() {
    let config = ModelConfig {
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
    };
    let model = Model::new_random(config, 11).unwrap();
    // 12 sequences of 20 + 40 tokens: 708 rows. Tiles need 2 · 128 rows per pool thread,
    // so 1 and 2 threads run the tiled backward (one and two shares of rows, a last tile
    // shorter than the others), 4 threads the whole-batch one.
    let seqs: Vec<(Vec<u32>, Vec<u32>)> = (0..12u32)
        .map(|s| {
            let p = (0..20).map(|i| (s * 7 + i * 3) % 61 + 2).collect();
            let c = (0..40).map(|i| (s * 5 + i * 11) % 59 + 3).collect();
            (p, c)
        })
        .collect();
    let batch: Vec<SeqInput<'_>> = seqs
        .iter()
        .map(|(p, c)| SeqInput {
            prompt: p,
            completion: c,
        })
        .collect();
    let whole = grads_in_pool(&model, &batch, 4);
    let scale = whole.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    assert!(scale > 0.0);
    for threads in [1, 2] {
        let tiled = grads_in_pool(&model, &batch, threads);
        let worst = tiled
            .iter()
            .zip(&whole)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "{threads} threads: max gradient difference {worst} (scale {scale})"
        );
        assert_ne!(tiled, whole, "expected a different summation order");
    }
}
