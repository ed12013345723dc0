//! AdamW against PyTorch semantics (hand-computed in f64 and golden values recorded from
//! `torch.optim.AdamW`), and global-norm clipping against PyTorch's formula.

use grpo_kernels::ops::adamw::{AdamW, adamw_step};
use grpo_kernels::ops::grad_norm::{clip_by_global_norm, global_norm};

const OPT: AdamW = AdamW {
    lr: 1e-2,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weight_decay: 0.1,
};
const P0: [f32; 5] = [0.5, -1.25, 2.0, 0.0, 3.0e-3];
const GRADS: [[f32; 5]; 3] = [
    [0.1, -0.2, 0.3, 1e-4, -5.0],
    [-0.3, 0.25, 0.0, 2.0, 4.0],
    [0.05, 0.05, -1.0, -2.0, 1e-3],
];

#[test]
fn adamw_matches_hand_computed_pytorch_step() {
    let (mut p, mut m, mut v) = (P0, [0.0f32; 5], [0.0f32; 5]);
    let (mut pr, mut mr, mut vr) = (P0.map(|x| x as f64), [0.0f64; 5], [0.0f64; 5]);
    for (s, g) in GRADS.iter().enumerate() {
        let step = s as u64 + 1;
        adamw_step(&mut p, g, &mut m, &mut v, step, &OPT).unwrap();
        // torch.optim.AdamW, single-tensor path, written out in f64.
        let bc1 = 1.0 - OPT.beta1.powi(step as i32);
        let bc2 = 1.0 - OPT.beta2.powi(step as i32);
        for i in 0..5 {
            let gi = g[i] as f64;
            pr[i] *= 1.0 - OPT.lr * OPT.weight_decay;
            mr[i] = OPT.beta1 * mr[i] + (1.0 - OPT.beta1) * gi;
            vr[i] = OPT.beta2 * vr[i] + (1.0 - OPT.beta2) * gi * gi;
            let denom = vr[i].sqrt() / bc2.sqrt() + OPT.eps;
            pr[i] -= OPT.lr / bc1 * mr[i] / denom;
        }
        for i in 0..5 {
            assert!(
                (p[i] as f64 - pr[i]).abs() < 1e-6,
                "step {step} param {i}: {} vs {}",
                p[i],
                pr[i]
            );
            assert!((m[i] as f64 - mr[i]).abs() < 1e-6, "step {step} m {i}");
            assert!(
                (v[i] as f64 - vr[i]).abs() < 1e-6 * (1.0 + vr[i]),
                "step {step} v {i}"
            );
        }
    }
}

#[test]
fn adamw_matches_recorded_torch_values() {
    // Recorded with torch 2.15 (CPU, float32):
    //   p = Parameter(tensor(P0)); opt = AdamW([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8,
    //   weight_decay=0.1); for g in GRADS: p.grad = tensor(g); opt.step()
    let want_params: [[f64; 5]; 3] = [
        [
            0.4895000159740448,
            -1.2387499809265137,
            1.9880000352859497,
            -0.009998999536037445,
            0.01299699954688549,
        ],
        [
            0.4939034581184387,
            -1.2391340732574463,
            1.9792256355285645,
            -0.017338931560516357,
            0.013566863723099232,
        ],
        [
            0.4961906671524048,
            -1.240144968032837,
            1.9817835092544556,
            -0.01687547378242016,
            0.014008661732077599,
        ],
    ];
    let want_m = [
        -0.013899999670684338f64,
        0.011300000362098217,
        -0.07569999247789383,
        -0.019991910085082054,
        -0.044899992644786835,
    ];
    let want_v = [
        0.004851249977946281f64,
        0.004898750223219395,
        0.054061248898506165,
        0.38999998569488525,
        1.888124942779541,
    ];
    let (mut p, mut m, mut v) = (P0, [0.0f32; 5], [0.0f32; 5]);
    for (s, g) in GRADS.iter().enumerate() {
        adamw_step(&mut p, g, &mut m, &mut v, s as u64 + 1, &OPT).unwrap();
        for i in 0..5 {
            let w = want_params[s][i];
            assert!(
                (p[i] as f64 - w).abs() <= 2e-7 * (1.0 + w.abs()),
                "step {} param {i}: {} vs torch {w}",
                s + 1,
                p[i]
            );
        }
    }
    for i in 0..5 {
        assert!(
            (m[i] as f64 - want_m[i]).abs() <= 1e-7 * (1.0 + want_m[i].abs()),
            "m {i}"
        );
        assert!(
            (v[i] as f64 - want_v[i]).abs() <= 1e-7 * (1.0 + want_v[i].abs()),
            "v {i}"
        );
    }
}

#[test]
fn adamw_rejects_bad_inputs_by_name() {
    let mut p = [0.0f32; 2];
    let (mut m, mut v) = ([0.0f32; 2], [0.0f32; 2]);
    let e = adamw_step(&mut p, &[0.0; 3], &mut m, &mut v, 1, &OPT).unwrap_err();
    assert!(e.to_string().contains("grads"), "{e}");
    let bad = AdamW { beta2: 1.0, ..OPT };
    let e = adamw_step(&mut p, &[0.0; 2], &mut m, &mut v, 1, &bad).unwrap_err();
    assert!(e.to_string().contains("beta2"), "{e}");
}

#[test]
fn clip_matches_pytorch_formula_across_buffers() {
    let mut a: Vec<f32> = (0..1000)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0)
        .collect();
    let mut b: Vec<f32> = (0..333).map(|i| (i as f32).sin()).collect();
    let want_norm = (a.iter().chain(&b).map(|&x| (x as f64).powi(2)).sum::<f64>()).sqrt();
    assert!((global_norm(&[&a, &b]) - want_norm).abs() < 1e-9 * want_norm);
    let (a0, b0) = (a.clone(), b.clone());
    let max_norm = 1.5;
    let norm = clip_by_global_norm(&mut [&mut a, &mut b], max_norm).unwrap();
    assert!((norm - want_norm).abs() < 1e-9 * want_norm);
    let coef = (max_norm / (want_norm + 1e-6)) as f32;
    for (x, y) in a.iter().chain(&b).zip(a0.iter().chain(&b0)) {
        assert!((x - y * coef).abs() < 1e-6);
    }
    let after = global_norm(&[&a, &b]);
    assert!((after - max_norm).abs() < 1e-4, "{after}");
    // A NaN gradient leaves the buffers untouched and reports the NaN norm.
    let mut c = vec![1.0f32, f32::NAN];
    assert!(clip_by_global_norm(&mut [&mut c], 1.0).unwrap().is_nan());
    assert_eq!(c[0], 1.0);
}
