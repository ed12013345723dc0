//! Criterion benches for grpo-core: advantage estimators and a policy loss on a
//! realistic batch of 1024 responses × 4096 tokens (64 prompts × 16 samples,
//! response lengths uniform in [512, 4096], binary rewards), all `f64`.
//!
//! Run: `cargo bench -p grpo-core --bench core` (add `-- --quick` for a fast pass).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use grpo_core::advantage::{self, AdvantageConfig};
use grpo_core::batch::ScoredBatch;
use grpo_core::loss::{LossConfig, LossInputs};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const B: usize = 1024;
const T: usize = 4096;
const G: usize = 16;

struct Data {
    batch: ScoredBatch,
    log_prob: Array2<f64>,
    old_log_prob: Array2<f64>,
}

fn data() -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut mask = Array2::zeros((B, T));
    for i in 0..B {
        let l = rng.random_range(512..=T);
        mask.row_mut(i).slice_mut(ndarray::s![..l]).fill(1.0);
    }
    let group: Vec<usize> = (0..B).map(|i| i / G).collect();
    let reward = Array1::from_shape_fn(B, |_| f64::from(rng.random_bool(0.4) as u8));
    let old_log_prob = Array2::from_shape_fn((B, T), |_| -3.0 * rng.random::<f64>());
    let log_prob =
        &old_log_prob + &Array2::from_shape_fn((B, T), |_| 0.05 * (rng.random::<f64>() - 0.5));
    let s2 = old_log_prob.mapv(|l| {
        let p = l.exp();
        p * p + 0.1 * (1.0 - p) * (1.0 - p)
    });
    let batch = ScoredBatch::new(mask, group, reward)
        .and_then(|b| b.with_old_log_prob(old_log_prob.clone()))
        .and_then(|b| b.with_sum_sq_prob(s2))
        .unwrap_or_else(|e| panic!("bench batch: {e}"));
    Data {
        batch,
        log_prob,
        old_log_prob,
    }
}

fn advantage_benches(c: &mut Criterion) {
    let d = data();
    let mut group = c.benchmark_group("advantage_1024x4096");
    group.sample_size(10);
    for cfg in [
        r#"{"type": "grpo"}"#,
        r#"{"type": "rloo"}"#,
        r#"{"type": "reinforce_plus_plus"}"#,
        r#"{"type": "optimal_token_baseline"}"#,
    ] {
        let config: AdvantageConfig =
            serde_json::from_str(cfg).unwrap_or_else(|e| panic!("{cfg}: {e}"));
        group.bench_function(config.name(), |b| {
            b.iter(|| {
                let mut rng = ChaCha8Rng::seed_from_u64(0);
                black_box(
                    advantage::compute(&config, black_box(&d.batch), &mut rng)
                        .map(|o| o.advantages.sum()),
                )
            })
        });
    }
    group.finish();
}

fn loss_benches(c: &mut Criterion) {
    let d = data();
    let grpo: AdvantageConfig =
        serde_json::from_str(r#"{"type": "grpo"}"#).unwrap_or_else(|e| panic!("{e}"));
    let adv = advantage::compute(&grpo, &d.batch, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap_or_else(|e| panic!("{e}"))
        .advantages;
    let loss: LossConfig = serde_json::from_str(
        r#"{"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "clip_ratio_c": 3.0, "agg": {"type": "token_mean"}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("loss_1024x4096");
    group.sample_size(10);
    group.bench_function("ppo_clip_token_mean", |b| {
        b.iter(|| {
            let inputs = LossInputs::new(
                d.log_prob.view(),
                d.old_log_prob.view(),
                d.batch.mask.view(),
                adv.view(),
            );
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            black_box(loss.compute(&inputs, &mut rng).map(|o| o.loss))
        })
    });
    group.bench_function("grpo_advantage_plus_ppo_clip", |b| {
        b.iter(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let a = advantage::compute(&grpo, &d.batch, &mut rng).map(|o| o.advantages);
            let a = a.unwrap_or_else(|e| panic!("{e}"));
            let inputs = LossInputs::new(
                d.log_prob.view(),
                d.old_log_prob.view(),
                d.batch.mask.view(),
                a.view(),
            );
            black_box(loss.compute(&inputs, &mut rng).map(|o| o.loss))
        })
    });
    group.finish();
}

criterion_group!(benches, advantage_benches, loss_benches);
criterion_main!(benches);
