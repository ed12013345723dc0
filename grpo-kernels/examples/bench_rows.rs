//! Row-invariant `linear_rows` against the fastest `matmul` for the same `x · wᵀ` product:
//! time per call for C1 (tiny) or Qwen2.5-0.5B shapes at a given row count. Run:
//! `cargo run --release -p grpo-kernels --example bench_rows [-- M [tiny]]`.

use grpo_kernels::ops::gemm::{linear_rows, matmul};
use std::time::Instant;

fn main() {
    // Run on a pool worker, as the engine does (a call from outside the pool would pay a
    // thread wake-up per product).
    rayon::ThreadPoolBuilder::new()
        .build()
        .expect("rayon pool")
        .install(run);
}

fn run() {
    let m: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(128);
    let tiny = std::env::args().nth(2).as_deref() == Some("tiny");
    let shapes: &[(&str, usize, usize)] = if tiny {
        &[
            ("q_proj", 256, 256),
            ("k_proj", 256, 64),
            ("gate_proj", 256, 704),
            ("down_proj", 704, 256),
            ("lm_head", 256, 512),
        ]
    } else {
        &[
            ("q_proj", 896, 896),
            ("k_proj", 896, 128),
            ("gate_proj", 896, 4864),
            ("down_proj", 4864, 896),
            ("lm_head", 896, 151_936),
        ]
    };
    println!("m = {m}, {} rayon threads", rayon::current_num_threads());
    for &(name, k, n) in shapes {
        let w: Vec<f32> = (0..n * k).map(|i| (i % 17) as f32 * 0.01).collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; m * n];
        let iters = (3_000_000_000 / (m * n * k)).max(3);
        let mut time = |f: &mut dyn FnMut(&mut [f32])| {
            f(&mut out);
            let t = Instant::now();
            for _ in 0..iters {
                f(&mut out);
            }
            t.elapsed().as_secs_f64() / iters as f64
        };
        let fast = time(&mut |o| matmul(o, &x, &w, m, k, n, false, true, false).unwrap());
        let rows = time(&mut |o| linear_rows(o, &x, &w, m, k, n, false).unwrap());
        let gf = |dt: f64| 2.0 * (m * n * k) as f64 / dt / 1e9;
        println!(
            "{name:>10} k={k:5} n={n:6}: matmul {:8.3} ms ({:6.1} GF/s)  linear_rows {:8.3} ms ({:6.1} GF/s)  rows/matmul {:.2}",
            fast * 1e3,
            gf(fast),
            rows * 1e3,
            gf(rows),
            rows / fast
        );
    }
}
