//! Decode attention over a paged cache, C1 and Qwen2.5-0.5B head shapes: microseconds per
//! query row. Run: `cargo run --release -p grpo-kernels --example bench_paged`.

use std::time::Instant;

use grpo_kernels::ops::paged::{Heads, paged_attention_row};

fn main() {
    for (name, heads, pos) in [
        (
            "C1 (8q/2kv, d32)",
            Heads {
                q: 8,
                kv: 2,
                dim: 32,
            },
            64usize,
        ),
        (
            "0.5B (14q/2kv, d64)",
            Heads {
                q: 14,
                kv: 2,
                dim: 64,
            },
            64,
        ),
        (
            "0.5B long",
            Heads {
                q: 14,
                kv: 2,
                dim: 64,
            },
            1024,
        ),
    ] {
        let bs = 16;
        let kvd = heads.kv * heads.dim;
        let nb = (pos + 1).div_ceil(bs);
        let kc: Vec<f32> = (0..nb * bs * kvd).map(|i| (i % 7) as f32 * 0.1).collect();
        let vc: Vec<f32> = (0..nb * bs * kvd).map(|i| (i % 5) as f32 * 0.1).collect();
        let blocks: Vec<u32> = (0..nb as u32).rev().collect();
        let q: Vec<f32> = (0..heads.q * heads.dim)
            .map(|i| (i % 3) as f32 * 0.1)
            .collect();
        let mut out = vec![0.0f32; q.len()];
        let mut scratch = Vec::new();
        let iters = 200_000 / (pos + 1) * 16;
        let t = Instant::now();
        for _ in 0..iters {
            paged_attention_row(
                &kc,
                &vc,
                bs,
                &blocks,
                pos,
                &q,
                &mut out,
                heads,
                0.1,
                &mut scratch,
            )
            .unwrap();
        }
        let us = t.elapsed().as_secs_f64() / iters as f64 * 1e6;
        println!("{name:>22} pos {pos:5}: {us:8.2} us/row");
    }
}
