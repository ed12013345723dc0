//! Parity with transformers on the committed fixtures (`scripts/make_fixtures.py`): per-token
//! log-probs and entropies within 2e-4 absolute, every parameter gradient within 1e-3
//! relative (max |diff| over max |ref| per tensor), for every architecture, with and without
//! activation recomputation, unshared and with the shared-prefix (Prefix Grouper) forward.

use grpo_model::{ForwardOptions, GroupInput, Model, SeqInput};

use crate::common::*;

struct Case {
    name: String,
    model: Model,
    prompts: Vec<Vec<u32>>,
    completions: Vec<Vec<u32>>,
    parity: serde_json::Value,
}

fn cases() -> Vec<Case> {
    model_dirs()
        .into_iter()
        .map(|dir| {
            let parity = read_json(&dir.join("parity.json"));
            let seqs = parity["sequences"].as_array().unwrap();
            Case {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                model: Model::load(&dir).unwrap(),
                prompts: seqs.iter().map(|s| ids(&s["prompt_ids"])).collect(),
                completions: seqs.iter().map(|s| ids(&s["completion_ids"])).collect(),
                parity,
            }
        })
        .collect()
}

fn check_outputs(
    name: &str,
    lp: &[Vec<f32>],
    ent: &[Vec<f32>],
    parity: &serde_json::Value,
    order: &[usize],
) {
    let want_lp = floats2(&parity["logprobs"]);
    let want_ent = floats2(&parity["entropy"]);
    for (k, &i) in order.iter().enumerate() {
        let d = max_abs_diff(&lp[k], &want_lp[i]);
        assert!(d <= 2e-4, "{name}: sequence {i} log-probs differ by {d}");
        let d = max_abs_diff(&ent[k], &want_ent[i]);
        assert!(d <= 2e-4, "{name}: sequence {i} entropies differ by {d}");
    }
}

fn check_grads(name: &str, model: &Model, grads: &[f32]) {
    let dir = fixtures().join("models").join(name);
    let want = read_tensors(&dir.join("grads.safetensors"));
    assert_eq!(
        want.len(),
        model.layout.tensors.len(),
        "{name}: gradient tensor count"
    );
    let mut worst = 0.0f32;
    for (tname, w) in &want {
        let got = model
            .tensor(grads, tname)
            .unwrap_or_else(|| panic!("{name}: no tensor {tname}"));
        let scale = w.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12);
        let rel = max_abs_diff(got, w) / scale;
        worst = worst.max(rel);
        assert!(
            rel <= 1e-3,
            "{name}: gradient of {tname} differs by {rel} (relative)"
        );
    }
    eprintln!("{name}: worst relative gradient error {worst:.2e}");
}

#[test]
fn logprobs_entropies_and_gradients_match_transformers() {
    for case in cases() {
        let batch: Vec<SeqInput<'_>> = case
            .prompts
            .iter()
            .zip(&case.completions)
            .map(|(p, c)| SeqInput {
                prompt: p,
                completion: c,
            })
            .collect();
        let order: Vec<usize> = (0..batch.len()).collect();
        let dlogp = floats2(&case.parity["dlogp"]);
        let dent = floats2(&case.parity["dentropy"]);
        for recompute in [false, true] {
            let opts = ForwardOptions {
                recompute,
                vocab_chunk: 24,
            };
            let (out, acts) = case.model.forward(&batch, opts).unwrap();
            check_outputs(
                &case.name,
                &out.logprobs,
                &out.entropy,
                &case.parity,
                &order,
            );
            let mut grads = case.model.zero_grads();
            case.model
                .backward(&acts, &dlogp, Some(&dent), &mut grads)
                .unwrap();
            check_grads(&case.name, &case.model, &grads);
        }
        let scored = case.model.score(&batch).unwrap();
        check_outputs(
            &case.name,
            &scored.logprobs,
            &scored.entropy,
            &case.parity,
            &order,
        );
    }
}

#[test]
fn prefix_grouper_matches_unshared_and_transformers() {
    for case in cases() {
        // Sequences 0 and 3 share a prompt; 1 and 2 are groups of one.
        assert_eq!(case.prompts[0], case.prompts[3]);
        let groups = vec![
            GroupInput {
                prompt: &case.prompts[0],
                completions: vec![&case.completions[0], &case.completions[3]],
            },
            GroupInput {
                prompt: &case.prompts[1],
                completions: vec![&case.completions[1]],
            },
            GroupInput {
                prompt: &case.prompts[2],
                completions: vec![&case.completions[2]],
            },
        ];
        let order = [0, 3, 1, 2];
        let dlogp_all = floats2(&case.parity["dlogp"]);
        let dent_all = floats2(&case.parity["dentropy"]);
        let dlogp: Vec<Vec<f32>> = order.iter().map(|&i| dlogp_all[i].clone()).collect();
        let dent: Vec<Vec<f32>> = order.iter().map(|&i| dent_all[i].clone()).collect();
        for recompute in [false, true] {
            let (out, acts) = case
                .model
                .forward_grouped(
                    &groups,
                    ForwardOptions {
                        recompute,
                        vocab_chunk: 4096,
                    },
                )
                .unwrap();
            check_outputs(
                &case.name,
                &out.logprobs,
                &out.entropy,
                &case.parity,
                &order,
            );
            let mut grads = case.model.zero_grads();
            case.model
                .backward(&acts, &dlogp, Some(&dent), &mut grads)
                .unwrap();
            check_grads(&case.name, &case.model, &grads);
            // Against our own unshared path: equal to f32 rounding.
            let batch: Vec<SeqInput<'_>> = order
                .iter()
                .map(|&i| SeqInput {
                    prompt: &case.prompts[i],
                    completion: &case.completions[i],
                })
                .collect();
            let (ref_out, ref_acts) = case
                .model
                .forward(&batch, ForwardOptions::default())
                .unwrap();
            let mut ref_grads = case.model.zero_grads();
            case.model
                .backward(&ref_acts, &dlogp, Some(&dent), &mut ref_grads)
                .unwrap();
            for (a, b) in out.logprobs.iter().zip(&ref_out.logprobs) {
                assert!(
                    max_abs_diff(a, b) <= 1e-5,
                    "{}: grouped vs unshared log-probs",
                    case.name
                );
            }
            let scale = ref_grads.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(
                max_abs_diff(&grads, &ref_grads) <= 1e-5 * scale,
                "{}: grouped vs unshared gradients",
                case.name
            );
            assert!(acts.positions_computed() < ref_acts.positions_computed());
        }
        let scored = case.model.score_grouped(&groups).unwrap();
        check_outputs(
            &case.name,
            &scored.logprobs,
            &scored.entropy,
            &case.parity,
            &order,
        );
    }
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}

fn log_softmax_at(x: &[f32], i: u32) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f64 = x.iter().map(|v| ((v - m) as f64).exp()).sum();
    x[i as usize] - m - s.ln() as f32
}

#[test]
fn kv_cache_greedy_decode_matches_transformers_generate() {
    for case in cases() {
        let gens = case.parity["generate"].as_array().unwrap();
        let prompts: Vec<Vec<u32>> = gens.iter().map(|g| ids(&g["prompt_ids"])).collect();
        let want: Vec<Vec<u32>> = gens.iter().map(|g| ids(&g["greedy_ids"])).collect();
        let want_lp: Vec<Vec<f32>> = gens.iter().map(|g| floats(&g["greedy_logprobs"])).collect();
        // One sequence at a time through forward_step.
        let mut caches = Vec::new();
        let mut firsts = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let mut cache = grpo_model::KvCache::new(&case.model.config);
            let mut logits = case.model.forward_step(&mut cache, p).unwrap();
            let mut got = vec![];
            for _ in 0..want[i].len() {
                let tok = argmax(&logits);
                let lp = log_softmax_at(&logits, tok);
                assert!(
                    (lp - want_lp[i][got.len()]).abs() <= 2e-4,
                    "{}: greedy log-prob",
                    case.name
                );
                got.push(tok);
                logits = case.model.forward_step(&mut cache, &[tok]).unwrap();
            }
            assert_eq!(got, want[i], "{}: greedy tokens of prompt {i}", case.name);
            // Batched decode from a fresh prefill.
            let mut c2 = grpo_model::KvCache::new(&case.model.config);
            let l2 = case.model.forward_step(&mut c2, p).unwrap();
            firsts.push(argmax(&l2));
            caches.push(c2);
        }
        let mut toks = firsts;
        let mut got: Vec<Vec<u32>> = toks.iter().map(|t| vec![*t]).collect();
        for _ in 1..want[0].len() {
            let mut refs: Vec<&mut grpo_model::KvCache> = caches.iter_mut().collect();
            let logits = case.model.decode_step(&mut refs, &toks).unwrap();
            let v = case.model.config.vocab_size;
            toks = (0..toks.len())
                .map(|b| argmax(&logits[b * v..(b + 1) * v]))
                .collect();
            for (g, t) in got.iter_mut().zip(&toks) {
                g.push(*t);
            }
        }
        assert_eq!(got, want, "{}: batched greedy decode", case.name);
        // Truncate rolls back: re-running the last token gives the same logits.
        let mut cache = grpo_model::KvCache::new(&case.model.config);
        let a = case.model.forward_step(&mut cache, &prompts[0]).unwrap();
        cache.truncate(prompts[0].len() - 1);
        let b = case
            .model
            .forward_step(&mut cache, &prompts[0][prompts[0].len() - 1..])
            .unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-5);
    }
}

#[test]
fn edge_cases_empty_batch_and_short_completions() {
    let case = cases().remove(0);
    let m = &case.model;
    let (out, acts) = m.forward(&[], ForwardOptions::default()).unwrap();
    assert!(out.logprobs.is_empty());
    let mut g = m.zero_grads();
    m.backward(&acts, &[], None, &mut g).unwrap();
    assert!(g.iter().all(|x| *x == 0.0));
    // Completions of length 0 and 1, shared and unshared, agree.
    let p: &[u32] = &[1, 5, 9];
    let batch = [
        SeqInput {
            prompt: p,
            completion: &[],
        },
        SeqInput {
            prompt: p,
            completion: &[7],
        },
        SeqInput {
            prompt: p,
            completion: &[7, 8],
        },
    ];
    let (a, acts_a) = m.forward(&batch, ForwardOptions::default()).unwrap();
    let groups = [GroupInput {
        prompt: p,
        completions: vec![&[], &[7], &[7, 8]],
    }];
    let (b, acts_b) = m
        .forward_grouped(&groups, ForwardOptions::default())
        .unwrap();
    assert_eq!(a.logprobs[0].len(), 0);
    assert!((a.logprobs[1][0] - a.logprobs[2][0]).abs() < 1e-6);
    for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
        assert!(max_abs_diff(x, y) < 1e-5);
    }
    let d = vec![vec![], vec![1.0], vec![0.5, -0.5]];
    let (mut ga, mut gb) = (m.zero_grads(), m.zero_grads());
    m.backward(&acts_a, &d, None, &mut ga).unwrap();
    m.backward(&acts_b, &d, None, &mut gb).unwrap();
    let scale = ga.iter().fold(0.0f32, |s, x| s.max(x.abs()));
    assert!(scale > 0.0 && max_abs_diff(&ga, &gb) <= 1e-5 * scale);
}
