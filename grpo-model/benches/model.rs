//! Criterion benches for the model: teacher-forced forward + backward of a GRPO group of
//! G = 8 completions sharing one prompt, unshared vs shared-prefix (Prefix Grouper), and the
//! KV-cache decode step. Prints the saved-activation memory of both layouts once.

use criterion::{Criterion, criterion_group, criterion_main};
use grpo_model::{Arch, ForwardOptions, GroupInput, KvCache, Model, ModelConfig, SeqInput};

fn model() -> Model {
    let config = ModelConfig {
        arch: Arch::Qwen2,
        vocab_size: 4096,
        hidden_size: 256,
        intermediate_size: 704,
        num_layers: 4,
        num_heads: 8,
        num_kv_heads: 2,
        head_dim: 32,
        max_position_embeddings: 1024,
        rms_norm_eps: 1e-6,
        rope_theta: 1e6,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: vec![],
        pad_token_id: None,
    };
    Model::new_random(config, 0).expect("model")
}

fn group_bench(c: &mut Criterion) {
    let m = model();
    let g = 8;
    let prompt: Vec<u32> = (0..256).map(|i| (i * 7 % 4000) as u32).collect();
    let comps: Vec<Vec<u32>> = (0..g)
        .map(|j| {
            (0..64)
                .map(|i| ((i * 13 + j * 101) % 4000) as u32)
                .collect()
        })
        .collect();
    let batch: Vec<SeqInput<'_>> = comps
        .iter()
        .map(|c| SeqInput {
            prompt: &prompt,
            completion: c,
        })
        .collect();
    let group = [GroupInput {
        prompt: &prompt,
        completions: comps.iter().map(|c| c.as_slice()).collect(),
    }];
    let dlogp: Vec<Vec<f32>> = comps.iter().map(|c| vec![0.01; c.len()]).collect();
    let opts = ForwardOptions::default();
    let (_, a) = m.forward(&batch, opts).expect("forward");
    let (_, b) = m.forward_grouped(&group, opts).expect("forward");
    println!(
        "G = {g}, prompt 256, completions 64: saved activations unshared {:.1} MiB, shared-prefix {:.1} MiB ({:.2}x less); positions {} vs {}",
        a.saved_bytes() as f64 / 1048576.0,
        b.saved_bytes() as f64 / 1048576.0,
        a.saved_bytes() as f64 / b.saved_bytes() as f64,
        a.positions_computed(),
        b.positions_computed()
    );
    let mut grads = m.zero_grads();
    let mut grp = c.benchmark_group("fwd_bwd_G8");
    grp.sample_size(10);
    grp.bench_function("unshared", |bch| {
        bch.iter(|| {
            let (_, acts) = m.forward(&batch, opts).expect("forward");
            m.backward(&acts, &dlogp, None, &mut grads)
                .expect("backward");
        })
    });
    grp.bench_function("prefix_grouper", |bch| {
        bch.iter(|| {
            let (_, acts) = m.forward_grouped(&group, opts).expect("forward");
            m.backward(&acts, &dlogp, None, &mut grads)
                .expect("backward");
        })
    });
    grp.finish();

    let mut caches: Vec<KvCache> = (0..g)
        .map(|_| {
            let mut c = KvCache::new(&m.config);
            m.forward_step(&mut c, &prompt).expect("prefill");
            c
        })
        .collect();
    c.bench_function("decode_step_B8_ctx256", |bch| {
        bch.iter(|| {
            let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
            m.decode_step(&mut refs, &[5; 8]).expect("decode");
            for r in refs {
                r.truncate(prompt.len());
            }
        })
    });
}

/// The default training run's GRPO step shape: 64 groups x 8 completions of ~7 tokens after
/// ~6-token prompts on a tiny model (hidden 128, 4 layers, 4 heads, 2 KV heads, I = 384,
/// vocab 17): many short segments, so per-segment overhead dominates.
fn default_run_step(c: &mut Criterion) {
    let config = ModelConfig {
        arch: Arch::Qwen2,
        vocab_size: 17,
        hidden_size: 128,
        intermediate_size: 384,
        num_layers: 4,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 32,
        max_position_embeddings: 64,
        rms_norm_eps: 1e-6,
        rope_theta: 1e4,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: vec![],
        pad_token_id: None,
    };
    let m = Model::new_random(config, 0).expect("model");
    let prompts: Vec<Vec<u32>> = (0..64)
        .map(|g| {
            (0..5 + g % 3)
                .map(|i| ((g * 5 + i * 3) % 17) as u32)
                .collect()
        })
        .collect();
    let comps: Vec<Vec<Vec<u32>>> = (0..64)
        .map(|g| {
            (0..8)
                .map(|j| {
                    (0..5 + (g + j) % 5)
                        .map(|i| ((g + j * 7 + i * 11) % 17) as u32)
                        .collect()
                })
                .collect()
        })
        .collect();
    let groups: Vec<GroupInput<'_>> = prompts
        .iter()
        .zip(&comps)
        .map(|(p, cs)| GroupInput {
            prompt: p,
            completions: cs.iter().map(|c| c.as_slice()).collect(),
        })
        .collect();
    let dlogp: Vec<Vec<f32>> = comps
        .iter()
        .flatten()
        .map(|c| vec![0.01; c.len()])
        .collect();
    let opts = ForwardOptions::default();
    let mut grads = m.zero_grads();
    let mut grp = c.benchmark_group("default_run_step");
    grp.sample_size(20);
    grp.bench_function("G64x8_fwd_bwd", |bch| {
        bch.iter(|| {
            let (_, acts) = m.forward_grouped(&groups, opts).expect("forward");
            m.backward(&acts, &dlogp, None, &mut grads)
                .expect("backward");
        })
    });
    grp.finish();
}

criterion_group!(benches, group_bench, default_run_step);
criterion_main!(benches);
