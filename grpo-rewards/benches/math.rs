//! Math verifier throughput on typical answers (issue 6 goal: >= 20k
//! verdicts/s on one core). Each iteration verifies a mix of GSM8K-style and
//! MATH-style (gold, response) pairs, whole responses included.
//!
//! Run: `cargo bench -p grpo-rewards --bench math`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use grpo_rewards::math::{MathConfig, verify};

const PAIRS: &[(&str, &str)] = &[
    (
        "18",
        "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day at the farmer's market.\n#### 18",
    ),
    (
        "3",
        "It takes 2/2=1 bolt of white fiber.\nSo the total amount of fabric is 2+1=3 bolts of fabric.\nThe answer is $\\boxed{3}$.",
    ),
    (
        "70000",
        "The cost of the house and repairs came out to 80,000+50,000=$130,000\nHe increased the value of the house by 80,000*1.5=120,000\nSo the new value of the house is 120,000+80,000=$200,000\nSo he made a profit of 200,000-130,000=$70,000\n#### 70000",
    ),
    (
        "\\frac{14}{3}",
        "$f(-2)+f(-1)+f(0)=\\frac{-8}{-4}+\\frac{-5}{-3}+\\frac{-2}{-2}=2+\\frac{5}{3}+1=\\boxed{\\frac{14}{3}}$",
    ),
    (
        "3\\sqrt{13}",
        "We use the distance formula: $\\sqrt{6^2 + (-9)^2} = \\sqrt{117} = \\boxed{3\\sqrt{13}}$.",
    ),
    (
        "(3, \\frac{\\pi}{2})",
        "Therefore, the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
    ),
    ("x^2+2x+1", "Expanding, we get $\\boxed{(x+1)^2}$."),
    ("[-2, 7]", "So the solution set is $\\boxed{[-2,7]}$."),
    ("0.25", "The probability is $\\boxed{\\frac{1}{4}}$."),
    ("28\\%", "making for a total loss of $\\boxed{28\\%}$."),
];

fn bench(c: &mut Criterion) {
    let cfg = MathConfig::default();
    for (g, p) in PAIRS {
        assert!(verify(g, p, &cfg).unwrap().correct, "{g} / {p}");
    }
    let mut group = c.benchmark_group("math");
    group.throughput(Throughput::Elements(PAIRS.len() as u64));
    group.bench_function("verify_mix", |b| {
        b.iter(|| {
            for (g, p) in PAIRS {
                black_box(verify(black_box(g), black_box(p), &cfg).ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
