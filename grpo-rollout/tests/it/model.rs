//! The engine over real `grpo-model` transformers: greedy decoding matches
//! transformers' `generate` token for token on the committed parity fixtures,
//! sampled log-probs agree with the teacher-forced scoring pass, and a
//! request's samples do not depend on what else is in the batch.

use std::path::PathBuf;

use grpo_model::{Model, SeqInput};
use grpo_rollout::model::ModelLm;
use grpo_rollout::{Engine, EngineConfig, GenerateStats, Request, SamplingParams};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models")
}

fn models() -> Vec<(String, Model, serde_json::Value)> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        let parity: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("parity.json")).unwrap()).unwrap();
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, Model::load(&d).unwrap(), parity));
    }
    assert!(out.len() >= 4, "expected the committed parity fixtures");
    out
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_matches_transformers_generate() {
    for (name, model, parity) in models() {
        let lm = ModelLm::new(&model);
        let engine = Engine::new(&lm, EngineConfig::default());
        let cases = parity["generate"].as_array().unwrap();
        assert!(!cases.is_empty());
        let requests: Vec<Request> = cases
            .iter()
            .map(|c| Request {
                prompt_ids: ids(&c["prompt_ids"]),
                params: SamplingParams::greedy(c["greedy_ids"].as_array().unwrap().len()),
            })
            .collect();
        let mut stats = GenerateStats::default();
        let out = engine.generate(&requests, None, &mut stats);
        for (c, r) in cases.iter().zip(out) {
            let comp = &r.unwrap()[0];
            let want = ids(&c["greedy_ids"]);
            // transformers stops at EOS too; the fixture's ids are the full continuation.
            assert_eq!(
                comp.ids,
                want[..comp.ids.len()],
                "{name}: greedy ids differ"
            );
            assert_eq!(
                comp.ids.len(),
                want.len(),
                "{name}: stopped early ({:?})",
                comp.finish_reason
            );
            for (a, b) in comp
                .logprobs_raw
                .iter()
                .zip(c["greedy_logprobs"].as_array().unwrap())
            {
                let b = b.as_f64().unwrap() as f32;
                assert!(
                    (a - b).abs() <= 2e-4,
                    "{name}: logprob {a} vs transformers {b}"
                );
            }
        }
    }
}

#[test]
fn sampled_logprobs_agree_with_scoring_and_the_prompt_is_prefilled_once() {
    for (name, model, _) in models() {
        let lm = ModelLm::new(&model);
        let engine = Engine::new(&lm, EngineConfig::default());
        let prompt = vec![1u32, 5, 9, 13, 2];
        let mine = Request {
            prompt_ids: prompt.clone(),
            params: SamplingParams::sampled(4, 1.0, 12, 99),
        };
        let mut stats = GenerateStats::default();
        let alone = engine
            .generate(std::slice::from_ref(&mine), None, &mut stats)
            .remove(0)
            .unwrap();
        assert_eq!(
            stats.prefill_tokens,
            prompt.len(),
            "{name}: prompt prefilled once for 4 samples"
        );
        let batch: Vec<SeqInput<'_>> = alone
            .iter()
            .map(|c| SeqInput {
                prompt: &prompt,
                completion: &c.ids,
            })
            .collect();
        let scored = model.score(&batch).unwrap();
        for (c, s) in alone.iter().zip(&scored.logprobs) {
            for (a, b) in c.logprobs_raw.iter().zip(s) {
                assert!(
                    (a - b).abs() <= 1e-4,
                    "{name}: engine logprob {a} vs score {b}"
                );
            }
        }
    }
}

/// Bit-level batch invariance: a request's samples, log-probs included, are the same bits
/// whether it runs alone or beside other requests: 63 decode rows and 86 prefill rows
/// instead of 3 and 6 (sizes where matrix products could switch kernels or split rows).
#[test]
fn samples_are_bitwise_identical_alone_and_in_a_large_batch() {
    // The fixtures, plus a model with the default run's shapes (its weights are large enough
    // for the tiled few-row matmul path, which the fixtures' are not).
    let config = crate::qwen2_config(512, 256, 704, 64, 256);
    let mut all: Vec<(String, Model)> = models().into_iter().map(|(n, m, _)| (n, m)).collect();
    all.push(("random-d256".into(), Model::new_random(config, 5).unwrap()));
    for (name, model) in all {
        let lm = ModelLm::new(&model);
        let engine = Engine::new(&lm, EngineConfig::default());
        let mut p = SamplingParams::sampled(3, 1.0, 10, 7);
        p.ignore_eos = true;
        let mine = Request {
            prompt_ids: vec![1u32, 5, 9, 13, 2, 8],
            params: p,
        };
        let mut q = SamplingParams::sampled(30, 1.0, 14, 3);
        q.ignore_eos = true;
        let crowd_req = Request {
            prompt_ids: (0..40u32).map(|i| (i * 7) % 30 + 3).collect(),
            params: q,
        };
        let alone = engine
            .generate(
                std::slice::from_ref(&mine),
                None,
                &mut GenerateStats::default(),
            )
            .remove(0)
            .unwrap();
        let crowd = engine
            .generate(
                &[crowd_req.clone(), mine.clone(), crowd_req],
                None,
                &mut GenerateStats::default(),
            )
            .remove(1)
            .unwrap();
        for (a, b) in alone.iter().zip(&crowd) {
            assert_eq!(a.ids, b.ids, "{name}: tokens depend on the batch");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&a.logprobs_raw),
                bits(&b.logprobs_raw),
                "{name}: raw log-probs depend on the batch"
            );
            assert_eq!(
                bits(&a.logprobs),
                bits(&b.logprobs),
                "{name}: log-probs depend on the batch"
            );
        }
    }
}

#[test]
fn preemption_under_a_tiny_budget_gives_the_same_samples() {
    for (name, model, _) in models() {
        let lm = ModelLm::new(&model);
        let reqs: Vec<Request> = (0..3u32)
            .map(|i| {
                let mut p = SamplingParams::sampled(3, 1.0, 20, 5 + i as u64);
                p.ignore_eos = true;
                Request {
                    prompt_ids: (0..5 + 7 * i).map(|t| (t * 3 + i) % 40 + 2).collect(),
                    params: p,
                }
            })
            .collect();
        let mut sa = GenerateStats::default();
        let a = Engine::new(&lm, EngineConfig::default()).generate(&reqs, None, &mut sa);
        let tight = EngineConfig {
            max_batch: 64,
            max_cached_tokens: 64,
        };
        let mut sb = GenerateStats::default();
        let b = Engine::new(&lm, tight).generate(&reqs, None, &mut sb);
        assert_eq!(sa.preemptions, 0);
        assert!(sb.preemptions > 0, "{name}: 4 blocks must preempt");
        for (x, y) in a.iter().zip(&b) {
            for (x, y) in x.as_ref().unwrap().iter().zip(y.as_ref().unwrap()) {
                assert_eq!(x.ids, y.ids, "{name}: preemption changed the tokens");
                // Recomputation runs prefill instead of decode: equal to rounding.
                for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
                    assert!((p - q).abs() <= 1e-5, "{name}: {p} vs {q}");
                }
            }
        }
    }
}

#[test]
fn session_continuation_matches_a_fresh_prefill_of_the_transcript() {
    for (name, model, _) in models() {
        let lm = ModelLm::new(&model);
        let engine = Engine::new(&lm, EngineConfig::default());
        let mut sessions = engine.sessions();
        let mut p = SamplingParams::greedy(6);
        p.ignore_eos = true;
        let s = sessions.open(vec![1, 5, 9, 13, 2], p.clone()).unwrap();
        let t1 = sessions.generate(&[s], None).remove(0).unwrap();
        assert_eq!(t1.ids.len(), 6);
        let before = sessions.stats().prefill_tokens;
        sessions.append(s, &[7, 3, 3, 8, 21]).unwrap();
        let transcript = sessions.transcript(s).unwrap().to_vec();
        let t2 = sessions.generate(&[s], None).remove(0).unwrap();
        assert_eq!(sessions.stats().prefill_tokens - before, 6, "{name}");
        let fresh = engine
            .generate(
                &[Request {
                    prompt_ids: transcript.clone(),
                    params: p,
                }],
                None,
                &mut GenerateStats::default(),
            )
            .remove(0)
            .unwrap()
            .remove(0);
        assert_eq!(t2.ids, fresh.ids, "{name}: continuation differs");
        for (a, b) in t2.logprobs.iter().zip(&fresh.logprobs) {
            assert!((a - b).abs() <= 1e-4, "{name}: {a} vs {b}");
        }
        // And both agree with the teacher-forced scoring pass.
        let scored = model
            .score(&[SeqInput {
                prompt: &transcript,
                completion: &t2.ids,
            }])
            .unwrap();
        for (a, b) in t2.logprobs.iter().zip(&scored.logprobs[0]) {
            assert!((a - b).abs() <= 1e-4, "{name}: session {a} vs score {b}");
        }
        sessions.close(s).unwrap();
        assert_eq!(sessions.blocks_in_use(), 0);
    }
}
