//! Checkpoint round trips and bad-input errors that name the file/tensor/input.

use std::path::Path;

use grpo_model::checkpoint::{SaveOptions, StoreDtype};
use grpo_model::{Error, ForwardOptions, Model, ModelConfig, SeqInput};

use crate::common::*;

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

fn qwen3() -> std::path::PathBuf {
    fixtures().join("models/qwen3")
}

#[test]
fn save_load_round_trip_f32_bf16_sharded() {
    for dir in model_dirs() {
        let m = Model::load(&dir).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        for (variant, opts) in [
            (
                "f32",
                SaveOptions {
                    copy_from: Some(dir.clone()),
                    ..Default::default()
                },
            ),
            (
                "sharded",
                SaveOptions {
                    max_shard_bytes: Some(4096),
                    ..Default::default()
                },
            ),
            (
                "bf16",
                SaveOptions {
                    dtype: StoreDtype::Bf16,
                    ..Default::default()
                },
            ),
            (
                "f16",
                SaveOptions {
                    dtype: StoreDtype::F16,
                    ..Default::default()
                },
            ),
        ] {
            let out = tmp.path().join(variant);
            m.save(&out, &opts).unwrap();
            let back = Model::load(&out).unwrap();
            assert_eq!(back.config, m.config);
            if variant == "f16" {
                for (a, b) in back.weights.iter().zip(&m.weights) {
                    assert!((a - b).abs() <= b.abs() / 1024.0 + 1e-7);
                }
            } else if variant == "bf16" {
                for (a, b) in back.weights.iter().zip(&m.weights) {
                    assert!((a - b).abs() <= b.abs() / 128.0 + 1e-30);
                }
            } else {
                assert_eq!(back.weights, m.weights, "{variant}");
            }
            assert!(out.join("generation_config.json").exists());
            assert_eq!(
                variant == "sharded",
                out.join("model.safetensors.index.json").exists()
            );
        }
        // Re-saving unsharded over a sharded directory removes the stale shards and index.
        let out = tmp.path().join("sharded");
        m.save(&out, &SaveOptions::default()).unwrap();
        assert!(!out.join("model.safetensors.index.json").exists());
        assert_eq!(Model::load(&out).unwrap().weights, m.weights);
    }
}

#[test]
fn random_init_is_seeded_and_saves() {
    let cfg = Model::load(&qwen3()).unwrap().config;
    let a = Model::new_random(cfg.clone(), 7).unwrap();
    let b = Model::new_random(cfg.clone(), 7).unwrap();
    assert_eq!(a.weights, b.weights);
    let tmp = tempfile::tempdir().unwrap();
    a.save(tmp.path(), &SaveOptions::default()).unwrap();
    assert_eq!(Model::load(tmp.path()).unwrap().weights, a.weights);
    let (out, _) = a
        .forward(
            &[SeqInput {
                prompt: &[1, 2],
                completion: &[3, 4],
            }],
            ForwardOptions::default(),
        )
        .unwrap();
    // Near-uniform predictions for a fresh model.
    assert!((out.logprobs[0][0] + (cfg.vocab_size as f32).ln()).abs() < 0.5);
}

#[test]
fn truncated_and_corrupt_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&qwen3(), tmp.path());
    let f = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(matches!(e, Error::CorruptSafetensors { .. }), "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    std::fs::write(&f, b"not a safetensors file").unwrap();
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(matches!(e, Error::CorruptSafetensors { .. }), "{e}");
    std::fs::remove_file(&f).unwrap();
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

/// Rewrites the fixture's weights with `edit` applied to the tensor list.
fn rewrite(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let f = dir.join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut ts: Vec<_> = st
        .iter()
        .map(|(n, v)| {
            (
                n.to_owned(),
                v.dtype(),
                v.shape().to_vec(),
                v.data().to_vec(),
            )
        })
        .collect();
    edit(&mut ts);
    let views: Vec<_> = ts
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(&f, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn wrong_shape_dtype_missing_and_extra_tensors_are_named() {
    let name = "model.layers.1.self_attn.q_proj.weight";
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&qwen3(), tmp.path());
    rewrite(tmp.path(), |ts| {
        let t = ts.iter_mut().find(|t| t.0 == name).unwrap();
        t.2 = vec![t.2[1], t.2[0]];
    });
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(
        matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains(name),
        "{e}"
    );

    copy_dir(&qwen3(), tmp.path());
    rewrite(tmp.path(), |ts| {
        let t = ts.iter_mut().find(|t| t.0 == name).unwrap();
        t.1 = safetensors::Dtype::I32;
    });
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedDtype { .. }) && e.to_string().contains(name),
        "{e}"
    );

    copy_dir(&qwen3(), tmp.path());
    rewrite(tmp.path(), |ts| ts.retain(|t| t.0 != name));
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(
        matches!(e, Error::MissingTensor { .. }) && e.to_string().contains(name),
        "{e}"
    );

    copy_dir(&qwen3(), tmp.path());
    rewrite(tmp.path(), |ts| {
        let mut t = ts[0].clone();
        t.0 = "model.layers.9.mlp.up_proj.weight".into();
        ts.push(t);
    });
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(
        e.to_string().contains("model.layers.9.mlp.up_proj.weight"),
        "{e}"
    );
}

#[test]
fn config_that_disagrees_with_weights_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&qwen3(), tmp.path());
    let p = tmp.path().join("config.json");
    let mut v = read_json(&p);
    v["intermediate_size"] = 40.into();
    std::fs::write(&p, v.to_string()).unwrap();
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(
        matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("mlp"),
        "{e}"
    );
    v["intermediate_size"] = 32.into();
    v["rope_parameters"]["rope_type"] = "yarn".into();
    std::fs::write(&p, v.to_string()).unwrap();
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedFeature { .. }) && e.to_string().contains("yarn"),
        "{e}"
    );
    std::fs::write(&p, "{").unwrap();
    let e = Model::load(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn bad_tokens_and_lengths_are_named() {
    let m = Model::load(&qwen3()).unwrap();
    let ModelConfig {
        vocab_size,
        max_position_embeddings,
        ..
    } = m.config;
    let e = m
        .score(&[
            SeqInput {
                prompt: &[1],
                completion: &[2],
            },
            SeqInput {
                prompt: &[1],
                completion: &[3, vocab_size as u32],
            },
        ])
        .unwrap_err();
    assert!(matches!(e, Error::TokenOutOfVocab { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("sequence 1 completion"), "{e}");
    let long = vec![1u32; max_position_embeddings];
    let e = m
        .score(&[SeqInput {
            prompt: &long,
            completion: &[2],
        }])
        .unwrap_err();
    assert!(matches!(e, Error::SequenceTooLong { .. }), "{e}");
    let e = m
        .score(&[SeqInput {
            prompt: &[],
            completion: &[2],
        }])
        .unwrap_err();
    assert!(e.to_string().contains("empty prompt"), "{e}");
    let (_, acts) = m
        .forward(
            &[SeqInput {
                prompt: &[1],
                completion: &[2, 3],
            }],
            ForwardOptions::default(),
        )
        .unwrap();
    let mut g = m.zero_grads();
    let e = m.backward(&acts, &[vec![1.0]], None, &mut g).unwrap_err();
    assert!(e.to_string().contains("dlogp"), "{e}");
    let mut cache = grpo_model::KvCache::new(&m.config);
    let e = m
        .forward_step(&mut cache, &[vocab_size as u32])
        .unwrap_err();
    assert!(matches!(e, Error::TokenOutOfVocab { .. }), "{e}");
}
