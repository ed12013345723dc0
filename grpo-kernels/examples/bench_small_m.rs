//! Decode-shaped matmuls (`m` rows × Qwen2.5-0.5B weights, linear layout `a·bᵀ`): time per
//! call and the weight bytes streamed per second. Run:
//! `cargo run --release -p grpo-kernels --example bench_small_m [-- M [tiny]]` (`tiny`: the
//! C1 model's shapes, d=256, I=704, V=512).

use std::time::Instant;

fn main() {
    let m: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let tiny = std::env::args().nth(2).as_deref() == Some("tiny");
    let tiny_shapes = [
        ("q_proj", 256usize, 256usize),
        ("k_proj", 256, 64),
        ("gate_proj", 256, 704),
        ("down_proj", 704, 256),
        ("lm_head", 256, 512),
    ];
    let big_shapes = [
        ("q_proj", 896usize, 896usize),
        ("k_proj", 896, 128),
        ("o_proj", 896, 896),
        ("gate_proj", 896, 4864),
        ("down_proj", 4864, 896),
        ("lm_head", 896, 151_936),
    ];
    let shapes: &[(&str, usize, usize)] = if tiny { &tiny_shapes } else { &big_shapes };
    println!("m = {m}, {} rayon threads", rayon::current_num_threads());
    for &(name, k, n) in shapes {
        // Enough distinct weight copies that they do not all sit in the last-level cache.
        let copies = (600_000_000 / (n * k * 4)).clamp(1, 64);
        let bs: Vec<Vec<f32>> = (0..copies)
            .map(|c| (0..n * k).map(|i| ((i + c) % 17) as f32 * 0.01).collect())
            .collect();
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; m * n];
        let iters = (copies * 4).max(8).max(200_000_000 / (m * n * k));
        for b in &bs {
            grpo_kernels::ops::gemm::matmul(&mut out, &a, b, m, k, n, false, true, false).unwrap();
        }
        let t = Instant::now();
        for it in 0..iters {
            let b = &bs[it % copies];
            grpo_kernels::ops::gemm::matmul(&mut out, &a, b, m, k, n, false, true, false).unwrap();
        }
        let dt = t.elapsed().as_secs_f64() / iters as f64;
        let gbs = (n * k * 4) as f64 / dt / 1e9;
        let gflops = 2.0 * (m * n * k) as f64 / dt / 1e9;
        println!(
            "{name:>10} k={k:5} n={n:6}: {:8.3} ms  {gbs:6.1} GB/s  {gflops:6.1} GFLOP/s",
            dt * 1e3
        );
    }
}
