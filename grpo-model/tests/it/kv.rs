//! Paged KV cache: prefill, continuation and decode over block tables (with a shared,
//! copied-on-write prompt block) agree with the contiguous [`KvCache`] path on every
//! fixture architecture; bad block tables are named errors.

use grpo_model::kv::{KvPool, PagedSeq};
use grpo_model::{KvCache, Model};

use crate::common::model_dirs;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn paged_matches_contiguous_with_shared_prompt_blocks() {
    for dir in model_dirs() {
        let m = Model::load(&dir).unwrap();
        let vocab = m.config.vocab_size as u32;
        let prompt: Vec<u32> = (0..7).map(|i| (3 + 5 * i) % vocab).collect();
        // Contiguous reference: prefill, then two samples continue from clones.
        let mut root = KvCache::new(&m.config);
        let want0 = m.forward_step(&mut root, &prompt).unwrap();
        let mut refs = [root.clone(), root];

        // Paged: block size 4, prompt in blocks [5, 2] (block 2 holds 3 positions).
        let mut pool = KvPool::new(&m.config, 4);
        pool.ensure_blocks(8);
        let got0 = m
            .prefill_paged(
                &mut pool,
                &[PagedSeq {
                    blocks: &[5, 2],
                    pos0: 0,
                    tokens: &prompt,
                }],
            )
            .unwrap();
        assert!(max_diff(&want0, &got0) < 1e-4, "{}", dir.display());
        // Sample 0 keeps block 2; sample 1 copies it to block 7 before writing.
        pool.copy_block(2, 7, 3).unwrap();
        let mut tables = [vec![5u32, 2], vec![5u32, 7]];
        let mut len = prompt.len();
        for step in 0..6u32 {
            if len.is_multiple_of(4) {
                // Fresh, distinct blocks out of order.
                tables[0].push(if step < 4 { 4 } else { 3 });
                tables[1].push(if step < 4 { 6 } else { 0 });
            }
            let toks = [(11 + step) % vocab, (17 + 3 * step) % vocab];
            let mut rr: Vec<&mut KvCache> = refs.iter_mut().collect();
            let want = m.decode_step(&mut rr, &toks).unwrap();
            let seqs: Vec<PagedSeq<'_>> = (0..2)
                .map(|i| PagedSeq {
                    blocks: &tables[i],
                    pos0: len,
                    tokens: &toks[i..i + 1],
                })
                .collect();
            let got = m.decode_paged(&mut pool, &seqs).unwrap();
            assert!(
                max_diff(&want, &got) < 1e-4,
                "{} step {step}: {}",
                dir.display(),
                max_diff(&want, &got)
            );
            len += 1;
        }
        // A multi-token continuation of sample 1 (environment tokens) over its blocks.
        let env = [(2 % vocab), (9 % vocab), (4 % vocab)];
        tables[1].push(1);
        let want = m.forward_step(&mut refs[1], &env).unwrap();
        let got = m
            .prefill_paged(
                &mut pool,
                &[PagedSeq {
                    blocks: &tables[1],
                    pos0: len,
                    tokens: &env,
                }],
            )
            .unwrap();
        assert!(max_diff(&want, &got) < 1e-4, "{}", dir.display());
        // Batched prefill of two independent sequences equals each alone.
        let other: Vec<u32> = (0..5).map(|i| (7 * i + 1) % vocab).collect();
        let both = m
            .prefill_paged(
                &mut pool,
                &[
                    PagedSeq {
                        blocks: &[3, 4],
                        pos0: 0,
                        tokens: &prompt,
                    },
                    PagedSeq {
                        blocks: &[6, 0],
                        pos0: 0,
                        tokens: &other,
                    },
                ],
            )
            .unwrap();
        let v = m.config.vocab_size;
        assert!(max_diff(&both[..v], &want0) < 1e-4);
        let mut c = KvCache::new(&m.config);
        let alone = m.forward_step(&mut c, &other).unwrap();
        assert!(max_diff(&both[v..], &alone) < 1e-4);
    }
}

#[test]
fn bad_block_tables_are_named_errors() {
    let m = Model::load(&model_dirs()[0]).unwrap();
    let mut pool = KvPool::new(&m.config, 4);
    pool.ensure_blocks(2);
    let short = m
        .prefill_paged(
            &mut pool,
            &[PagedSeq {
                blocks: &[0],
                pos0: 0,
                tokens: &[1, 2, 3, 4, 5],
            }],
        )
        .unwrap_err()
        .to_string();
    assert!(short.contains("cannot hold 5"), "{short}");
    let outside = m
        .decode_paged(
            &mut pool,
            &[PagedSeq {
                blocks: &[9],
                pos0: 0,
                tokens: &[1],
            }],
        )
        .unwrap_err()
        .to_string();
    assert!(outside.contains("block 9"), "{outside}");
    let two = m
        .decode_paged(
            &mut pool,
            &[PagedSeq {
                blocks: &[0],
                pos0: 0,
                tokens: &[1, 2],
            }],
        )
        .unwrap_err()
        .to_string();
    assert!(two.contains("takes one"), "{two}");
    assert_eq!(KvPool::new(&m.config, 0).block_size(), 1);
    assert!(pool.copy_block(0, 5, 1).is_err());
}
