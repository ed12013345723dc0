//! Engine behaviour: determinism, prefix sharing, stop conditions,
//! preemption, bad requests.

use std::cell::Cell;

use grpo_rollout::{
    Detokenizer, Engine, EngineConfig, FinishReason, GenerateStats, Lm, PagedSeq, Request,
    SamplingParams,
};

/// A toy LM over a 12-token vocabulary: logits depend on a hash of the whole
/// prefix, read back through the block tables from a paged token store, so any
/// paging, sharing or copy-on-write bug changes the output. Token 11 is EOS.
pub struct Toy {
    pub prefill_calls: Cell<usize>,
}

const V: usize = 12;
const EOS: u32 = 11;
/// Positions per block of the toy's pool.
pub const BS: usize = 4;

pub fn logits_for(prefix: &[u32]) -> Vec<f32> {
    let mut h: u64 = 1469598103934665603;
    for &t in prefix {
        h = (h ^ t as u64).wrapping_mul(1099511628211);
    }
    (0..V)
        .map(|v| {
            let x = h
                .wrapping_add((v as u64).wrapping_mul(0x9E3779B97F4A7C15))
                .rotate_left(17);
            ((x % 1000) as f32 / 250.0) - 2.0 + if v as u32 == EOS { -1.5 } else { 0.0 }
        })
        .collect()
}

/// Slot `block * BS + i` holds the token at that position (`u32::MAX` when unwritten).
pub struct ToyPool(Vec<u32>);

impl Lm for Toy {
    type Pool = ToyPool;
    fn vocab_size(&self) -> usize {
        V
    }
    fn max_positions(&self) -> usize {
        40
    }
    fn eos_token_ids(&self) -> Vec<u32> {
        vec![EOS]
    }
    fn block_size(&self) -> usize {
        BS
    }
    fn new_pool(&self) -> ToyPool {
        ToyPool(Vec::new())
    }
    fn ensure_blocks(&self, pool: &mut ToyPool, blocks: usize) {
        if pool.0.len() < blocks * BS {
            pool.0.resize(blocks * BS, u32::MAX);
        }
    }
    fn copy_block(&self, pool: &mut ToyPool, src: u32, dst: u32, n: usize) -> Result<(), String> {
        let (s, d) = (src as usize * BS, dst as usize * BS);
        pool.0.copy_within(s..s + n, d);
        Ok(())
    }
    fn prefill(&self, pool: &mut ToyPool, seqs: &[PagedSeq<'_>]) -> Result<Vec<f32>, String> {
        self.prefill_calls.set(self.prefill_calls.get() + 1);
        let mut out = Vec::new();
        for s in seqs {
            for (i, &t) in s.tokens.iter().enumerate() {
                let p = s.pos0 + i;
                pool.0[s.blocks[p / BS] as usize * BS + p % BS] = t;
            }
            let prefix: Vec<u32> = (0..s.pos0 + s.tokens.len())
                .map(|p| pool.0[s.blocks[p / BS] as usize * BS + p % BS])
                .collect();
            if prefix.contains(&u32::MAX) {
                return Err(format!("unwritten slot in {prefix:?}"));
            }
            out.extend(logits_for(&prefix));
        }
        Ok(out)
    }
}

/// Digits as text: token t ↦ char ('a' + t).
pub struct Letters;
impl Detokenizer for Letters {
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&t| (b'a' + t as u8) as char).collect()
    }
}

pub fn toy() -> Toy {
    Toy {
        prefill_calls: Cell::new(0),
    }
}

fn run(
    model: &Toy,
    cfg: EngineConfig,
    reqs: &[Request],
) -> (Vec<grpo_rollout::engine::RequestResult>, GenerateStats) {
    let mut stats = GenerateStats::default();
    let out = Engine::new(model, cfg).generate(reqs, Some(&Letters), &mut stats);
    (out, stats)
}

fn req(prompt: Vec<u32>, n: usize, seed: u64) -> Request {
    Request {
        prompt_ids: prompt,
        params: SamplingParams::sampled(n, 1.0, 10, seed),
    }
}

#[test]
fn output_depends_only_on_seed_not_on_batch() {
    let m = toy();
    let alone = run(&m, EngineConfig::default(), &[req(vec![1, 2, 3], 4, 7)]).0;
    let crowd = run(
        &m,
        EngineConfig {
            max_batch: 5,
            ..Default::default()
        },
        &[
            req(vec![5, 5], 3, 1),
            req(vec![1, 2, 3], 4, 7),
            req(vec![9], 2, 2),
        ],
    )
    .0;
    assert_eq!(alone[0].as_ref().unwrap(), crowd[1].as_ref().unwrap());
    // Different seeds give different samples (with overwhelming probability).
    let other = run(&m, EngineConfig::default(), &[req(vec![1, 2, 3], 4, 8)]).0;
    assert_ne!(alone[0].as_ref().unwrap(), other[0].as_ref().unwrap());
}

#[test]
fn prompt_is_prefilled_once_per_request() {
    let m = toy();
    let (out, stats) = run(&m, EngineConfig::default(), &[req(vec![1, 2, 3, 4], 8, 0)]);
    assert_eq!(out[0].as_ref().unwrap().len(), 8);
    assert_eq!(stats.prefill_tokens, 4);
}

#[test]
fn samples_within_a_group_differ_and_logprobs_are_raw_model_logprobs() {
    let m = toy();
    let (out, _) = run(&m, EngineConfig::default(), &[req(vec![3], 8, 5)]);
    let comps = out[0].as_ref().unwrap();
    let distinct: std::collections::HashSet<_> = comps.iter().map(|c| c.ids.clone()).collect();
    assert!(distinct.len() > 1);
    for c in comps {
        let mut prefix = vec![3u32];
        for (i, &t) in c.ids.iter().enumerate() {
            let l = logits_for(&prefix);
            let expect = grpo_rollout::sampling::raw_logprob(&l, t);
            assert!((c.logprobs_raw[i] - expect).abs() < 1e-6);
            // Temperature 1 and no truncation: processed equals raw.
            assert!(
                (c.logprobs_processed[i] - expect).abs() < 1e-4,
                "{} vs {expect}",
                c.logprobs_processed[i]
            );
            prefix.push(t);
        }
        assert_eq!(c.logprobs, c.logprobs_raw);
    }
}

#[test]
fn top_logprobs_are_the_most_likely_tokens_of_each_position() {
    let m = toy();
    let k = 4;
    let mut r = req(vec![2, 7], 3, 11);
    r.params.top_logprobs = k;
    r.params.top_k = 6; // truncation does not change what is reported (the raw model's)
    let plain = req(vec![2, 7], 3, 11);
    let (out, _) = run(&m, EngineConfig::default(), &[r, plain]);
    let comps = out[0].as_ref().unwrap();
    let mut among = 0;
    for c in comps {
        assert_eq!(c.top_logprobs.len(), c.ids.len());
        let mut prefix = vec![2u32, 7];
        for (i, (&t, top)) in c.ids.iter().zip(&c.top_logprobs).enumerate() {
            let l = logits_for(&prefix);
            assert_eq!(top.len(), k);
            assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{top:?}");
            // The k largest logits, each with its raw log-prob.
            let mut order: Vec<u32> = (0..l.len() as u32).collect();
            order.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]).then(a.cmp(&b)));
            let ids: Vec<u32> = top.iter().map(|e| e.0).collect();
            assert_eq!(ids, order[..k].to_vec());
            for &(id, lp) in top {
                let want = grpo_rollout::sampling::raw_logprob(&l, id);
                assert!((lp - want).abs() < 1e-5, "{id}: {lp} vs {want}");
            }
            if let Some(&(_, lp)) = top.iter().find(|e| e.0 == t) {
                among += 1;
                assert_eq!(lp, c.logprobs_raw[i]);
            }
            prefix.push(t);
        }
    }
    assert!(among > 0);
    // Asking for none reports none, and the samples do not depend on it.
    let other = out[1].as_ref().unwrap();
    assert!(other.iter().all(|c| c.top_logprobs.is_empty()));
    let ids =
        |cs: &[grpo_rollout::Completion]| cs.iter().map(|c| c.ids.clone()).collect::<Vec<_>>();
    let mut no_trunc = req(vec![2, 7], 3, 11);
    no_trunc.params.top_logprobs = k;
    let again = run(&m, EngineConfig::default(), &[no_trunc]).0;
    assert_eq!(ids(again[0].as_ref().unwrap()), ids(other));
}

#[test]
fn greedy_is_argmax_and_stops_at_eos_or_length() {
    let m = toy();
    let mut p = SamplingParams::greedy(6);
    p.ignore_eos = false;
    let (out, _) = run(
        &m,
        EngineConfig::default(),
        &[Request {
            prompt_ids: vec![2, 7],
            params: p,
        }],
    );
    let c = &out[0].as_ref().unwrap()[0];
    let mut prefix = vec![2u32, 7];
    for &t in &c.ids {
        let l = logits_for(&prefix);
        let arg = (0..V)
            .max_by(|&a, &b| l[a].partial_cmp(&l[b]).unwrap().then(b.cmp(&a)))
            .unwrap();
        assert_eq!(t as usize, arg);
        prefix.push(t);
    }
    match c.finish_reason {
        FinishReason::Eos => assert_eq!(*c.ids.last().unwrap(), EOS),
        FinishReason::Length => assert_eq!(c.ids.len(), 6),
        FinishReason::Stop => panic!("no stop configured"),
    }
}

#[test]
fn stop_strings_cut_text_at_the_match_and_stop_ids_stop() {
    let m = toy();
    // Find what greedy produces, then use a substring of it as the stop string.
    let mut p = SamplingParams::greedy(10);
    p.ignore_eos = true;
    let (out, _) = run(
        &m,
        EngineConfig::default(),
        &[Request {
            prompt_ids: vec![4],
            params: p.clone(),
        }],
    );
    let full = out[0].as_ref().unwrap()[0].clone();
    assert_eq!(full.ids.len(), 10);
    let stop: String = full.text[3..5].to_string();
    let first = full.text.find(&stop).unwrap();
    p.stop = vec![stop.clone()];
    let (out, _) = run(
        &m,
        EngineConfig::default(),
        &[Request {
            prompt_ids: vec![4],
            params: p.clone(),
        }],
    );
    let c = &out[0].as_ref().unwrap()[0];
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert_eq!(c.text, full.text[..first]);
    assert_eq!(c.ids, full.ids[..first + stop.len()]);
    // A stop string matching the very first output characters leaves an empty text (not
    // the decoded output with the stop string).
    p.stop = vec![full.text[..1].to_string()];
    let (out, _) = run(
        &m,
        EngineConfig::default(),
        &[Request {
            prompt_ids: vec![4],
            params: p.clone(),
        }],
    );
    let c = &out[0].as_ref().unwrap()[0];
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert_eq!(c.text, "");
    assert_eq!(c.ids, full.ids[..1]);
    // A stop token id.
    p.stop.clear();
    p.stop_token_ids = vec![full.ids[2]];
    let (out, _) = run(
        &m,
        EngineConfig::default(),
        &[Request {
            prompt_ids: vec![4],
            params: p,
        }],
    );
    let c = &out[0].as_ref().unwrap()[0];
    let k = full.ids.iter().position(|&t| t == full.ids[2]).unwrap();
    assert_eq!(c.ids, full.ids[..=k]);
    assert_eq!(c.finish_reason, FinishReason::Stop);
}

#[test]
fn min_new_tokens_suppresses_eos() {
    let m = toy();
    for seed in 0..20 {
        let mut p = SamplingParams::sampled(4, 1.5, 12, seed);
        p.min_new_tokens = 5;
        let (out, _) = run(
            &m,
            EngineConfig::default(),
            &[Request {
                prompt_ids: vec![1],
                params: p,
            }],
        );
        for c in out[0].as_ref().unwrap() {
            assert!(c.ids.len() >= 5, "{:?}", c.ids);
            assert!(!c.ids[..5].contains(&EOS));
        }
    }
}

#[test]
fn preemption_recomputes_and_gives_the_same_tokens() {
    let m = toy();
    // Prompts of 1..=6 tokens (some end mid-block, so their shared block is copied on
    // write), 3 samples each, long completions.
    let reqs: Vec<Request> = (0..6u32)
        .map(|i| {
            let mut r = req(
                (0..=i).map(|t| (t * 5 + i) % 11).collect(),
                3,
                40 + i as u64,
            );
            r.params.max_new_tokens = 14;
            r.params.ignore_eos = i % 2 == 0;
            r
        })
        .collect();
    let (a, sa) = run(&m, EngineConfig::default(), &reqs);
    assert_eq!(sa.preemptions, 0);
    let mut preempted = false;
    for budget in [4, 12, 24, 40] {
        for max_batch in [1, 4, 64] {
            let cfg = EngineConfig {
                max_batch,
                max_cached_tokens: budget,
            };
            let (b, sb) = run(&m, cfg, &reqs);
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.as_ref().unwrap(), y.as_ref().unwrap(), "{cfg:?}");
            }
            if sb.preemptions > 0 {
                assert!(sb.recomputed_tokens > 0);
                preempted = true;
            }
        }
    }
    assert!(preempted, "the small budgets must preempt");
}

#[test]
fn finished_samples_free_their_blocks_and_waiting_requests_start() {
    let m = toy();
    // 8 requests of 2 samples; at most 4 live sequences: later requests start as earlier
    // ones finish, and the result equals running each request alone.
    let reqs: Vec<Request> = (0..8u32)
        .map(|i| req(vec![i % 11, 3], 2, i as u64))
        .collect();
    let cfg = EngineConfig {
        max_batch: 4,
        ..Default::default()
    };
    let (all, stats) = run(&m, cfg, &reqs);
    assert_eq!(stats.prefill_tokens, 16, "each prompt once");
    for (i, r) in reqs.iter().enumerate() {
        let (alone, _) = run(&m, EngineConfig::default(), std::slice::from_ref(r));
        assert_eq!(all[i].as_ref().unwrap(), alone[0].as_ref().unwrap());
    }
}

#[test]
fn bad_requests_fail_alone() {
    let m = toy();
    let mut bad_p = SamplingParams::sampled(2, 1.0, 5, 0);
    bad_p.top_p = 1.5;
    let mut neg_t = SamplingParams::sampled(2, 1.0, 5, 0);
    neg_t.temperature = -1.0;
    let reqs = [
        req(vec![], 2, 0),
        Request {
            prompt_ids: vec![1],
            params: bad_p,
        },
        req(vec![1, 2], 3, 4),
        Request {
            prompt_ids: vec![1],
            params: neg_t,
        },
        req(vec![1, 99], 2, 0),
        req(vec![1; 45], 2, 0),
        req(vec![1], 0, 0),
    ];
    let (out, _) = run(&m, EngineConfig::default(), &reqs);
    let msg = |i: usize| out[i].as_ref().unwrap_err().to_string();
    assert!(
        msg(0).contains("prompt") && msg(0).contains("empty"),
        "{}",
        msg(0)
    );
    assert!(msg(1).contains("top_p"), "{}", msg(1));
    assert_eq!(out[2].as_ref().unwrap().len(), 3);
    assert!(msg(3).contains("temperature"), "{}", msg(3));
    assert!(msg(4).contains("99"), "{}", msg(4));
    assert!(msg(5).contains("context"), "{}", msg(5));
    assert!(msg(6).contains("n"), "{}", msg(6));
}
