//! Hugging Face checkpoint directories: safetensors load (memory-mapped) and save (atomic).
//!
//! A checkpoint directory holds `config.json`, the weights as `model.safetensors` or as shards
//! `model-0000i-of-0000n.safetensors` listed in `model.safetensors.index.json`, and optionally
//! `generation_config.json` and tokenizer files. Weights may be stored as F32, BF16 or F16; they
//! are converted to the flat f32 buffer of [`Layout`]. Every error names the file and tensor.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::weights::Layout;

/// File names we copy next to saved weights when present in the source directory.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
];

const INDEX_FILE: &str = "model.safetensors.index.json";
const SINGLE_FILE: &str = "model.safetensors";

/// Tensor names some checkpoints carry that are recomputed, not learned.
fn ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

/// Reads `dir/config.json` and all weights into a flat buffer laid out by [`Layout::new`].
pub fn load(dir: &Path) -> Result<(ModelConfig, Vec<f32>)> {
    let config = ModelConfig::from_file(&dir.join("config.json"))?;
    let weights = load_weights(dir, &config)?;
    Ok((config, weights))
}

/// The weight files of `dir`: the shards named by the index, or `model.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(INDEX_FILE);
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: index.clone(),
            source,
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                Error::InvalidInput(format!("{}: no `weight_map` object", index.display()))
            })?;
        let mut files: Vec<String> = map
            .values()
            .map(|f| {
                f.as_str().map(str::to_owned).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "{}: weight_map value {f} is not a file name",
                        index.display()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        files.sort();
        files.dedup();
        for f in &files {
            if f.contains('/') || f.contains("..") {
                return Err(Error::InvalidInput(format!(
                    "{}: shard name {f:?} must be a plain file name",
                    index.display()
                )));
            }
        }
        Ok(files.into_iter().map(|f| dir.join(f)).collect())
    } else {
        let single = dir.join(SINGLE_FILE);
        if !single.exists() {
            return Err(Error::io(
                &single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no {SINGLE_FILE} and no {INDEX_FILE}"),
                ),
            ));
        }
        Ok(vec![single])
    }
}

/// Loads the weights of `dir` for `config`, checking every tensor's shape and dtype.
pub fn load_weights(dir: &Path, config: &ModelConfig) -> Result<Vec<f32>> {
    let layout = Layout::new(config);
    let mut data = vec![0.0f32; layout.total];
    let mut filled: HashSet<String> = HashSet::new();
    for file in weight_files(dir)? {
        let f = File::open(&file).map_err(|e| Error::io(&file, e))?;
        // SAFETY: the checkpoint file is opened read-only and we do not write it while the map
        // lives (the map is dropped at the end of this iteration); a concurrent writer from
        // another process could change the bytes, which at worst yields wrong values, and
        // `SafeTensors::deserialize` bounds-checks every offset against the mapped length.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(&file, e))?;
        let st = SafeTensors::deserialize(&map).map_err(|e| Error::CorruptSafetensors {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        for (name, view) in st.iter() {
            let Some(spec) = layout.find(name) else {
                if ignorable(name) {
                    continue;
                }
                if name == "lm_head.weight" && config.tie_word_embeddings {
                    tracing::warn!(file = %file.display(), "ignoring lm_head.weight: embeddings are tied");
                    continue;
                }
                return Err(Error::UnexpectedTensor {
                    file: file.clone(),
                    name: name.to_owned(),
                });
            };
            if view.shape() != spec.shape.as_slice() {
                return Err(Error::ShapeMismatch {
                    file: file.clone(),
                    name: name.to_owned(),
                    expected: spec.shape.clone(),
                    found: view.shape().to_vec(),
                });
            }
            let dst = &mut data[spec.range()];
            let bytes = view.data();
            match view.dtype() {
                Dtype::F32 => {
                    for (d, c) in dst.iter_mut().zip(bytes.chunks_exact(4)) {
                        *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
                Dtype::BF16 => {
                    for (d, c) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                        *d = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
                    }
                }
                Dtype::F16 => {
                    for (d, c) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                        *d = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                    }
                }
                other => {
                    return Err(Error::UnsupportedDtype {
                        file: file.clone(),
                        name: name.to_owned(),
                        dtype: format!("{other:?}"),
                    });
                }
            }
            if !filled.insert(name.to_owned()) {
                return Err(Error::InvalidInput(format!(
                    "{}: tensor `{name}` appears in more than one shard",
                    file.display()
                )));
            }
        }
    }
    for t in &layout.tensors {
        if !filled.contains(&t.name) {
            return Err(Error::MissingTensor {
                dir: dir.to_path_buf(),
                name: t.name.clone(),
            });
        }
    }
    Ok(data)
}

/// Storage dtype for saved weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreDtype {
    /// 32-bit floats (exact).
    #[default]
    F32,
    /// bfloat16 (round to nearest even), half the size.
    Bf16,
    /// IEEE half precision (round to nearest even), half the size.
    F16,
}

/// How to save a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// Weight dtype on disk.
    pub dtype: StoreDtype,
    /// Split into shards of at most this many bytes (plus an index); `None` = one file.
    pub max_shard_bytes: Option<usize>,
    /// Copy tokenizer files and generation_config.json from this directory, when present.
    pub copy_from: Option<PathBuf>,
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(|e| Error::io(parent, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v)
        .unwrap_or_default()
        .into_bytes();
    s.push(b'\n');
    s
}

/// Saves `weights` (laid out for `config`) as an HF checkpoint directory loadable by
/// transformers: config.json, generation_config.json, safetensors weights (sharded with an
/// index when asked), and tokenizer files copied from `opts.copy_from`. Each file is written
/// atomically; stale weight files of another layout in `dir` are removed.
pub fn save(dir: &Path, config: &ModelConfig, weights: &[f32], opts: &SaveOptions) -> Result<()> {
    let layout = Layout::new(config);
    if weights.len() != layout.total {
        return Err(Error::InvalidInput(format!(
            "weights have {} values, config needs {}",
            weights.len(),
            layout.total
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Encode every tensor.
    let (dtype, elt) = match opts.dtype {
        StoreDtype::F32 => (Dtype::F32, 4),
        StoreDtype::Bf16 => (Dtype::BF16, 2),
        StoreDtype::F16 => (Dtype::F16, 2),
    };
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = layout
        .tensors
        .iter()
        .map(|t| {
            let src = &weights[t.range()];
            let mut b = Vec::with_capacity(src.len() * elt);
            match opts.dtype {
                StoreDtype::F32 => src
                    .iter()
                    .for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
                StoreDtype::Bf16 => src
                    .iter()
                    .for_each(|x| b.extend_from_slice(&half::bf16::from_f32(*x).to_le_bytes())),
                StoreDtype::F16 => src
                    .iter()
                    .for_each(|x| b.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes())),
            }
            (t.name.clone(), t.shape.clone(), b)
        })
        .collect();
    // Group into shards.
    let mut shards: Vec<Vec<usize>> = vec![vec![]];
    let mut cur = 0usize;
    for (i, (_, _, b)) in encoded.iter().enumerate() {
        if let Some(max) = opts.max_shard_bytes
            && cur > 0
            && cur + b.len() > max
        {
            shards.push(vec![]);
            cur = 0;
        }
        cur += b.len();
        if let Some(last) = shards.last_mut() {
            last.push(i);
        }
    }
    let n = shards.len();
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    let mut weight_map = BTreeMap::new();
    let mut total_bytes = 0usize;
    let mut written = vec![];
    for (si, idxs) in shards.iter().enumerate() {
        let fname = if opts.max_shard_bytes.is_none() {
            SINGLE_FILE.to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", si + 1, n)
        };
        let mut views = Vec::with_capacity(idxs.len());
        for &i in idxs {
            let (name, shape, b) = &encoded[i];
            let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), b)
                .map_err(|e| Error::InvalidInput(format!("tensor `{name}`: {e}")))?;
            views.push((name.clone(), view));
            weight_map.insert(name.clone(), fname.clone());
            total_bytes += b.len();
        }
        let bytes = safetensors::serialize(views, Some(metadata.clone()))
            .map_err(|e| Error::InvalidInput(format!("serializing {fname}: {e}")))?;
        write_atomic(&dir.join(&fname), &bytes)?;
        written.push(fname);
    }
    let index_path = dir.join(INDEX_FILE);
    if opts.max_shard_bytes.is_some() {
        let index = serde_json::json!({
            "metadata": {"total_size": total_bytes, "total_parameters": layout.total},
            "weight_map": weight_map,
        });
        write_atomic(&index_path, &json_bytes(&index))?;
    }
    // Remove weight files from a previous save with another layout.
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_weights = name.ends_with(".safetensors")
                && (name == SINGLE_FILE || name.starts_with("model-"));
            let stale_index = name == INDEX_FILE && opts.max_shard_bytes.is_none();
            if (is_weights && !written.contains(&name)) || stale_index {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
    }
    write_atomic(&dir.join("config.json"), &json_bytes(&config.to_hf_json()))?;
    let mut copied_gen = false;
    if let Some(src) = &opts.copy_from
        && src != dir
    {
        for f in TOKENIZER_FILES.iter().chain(&["generation_config.json"]) {
            let p = src.join(f);
            if p.exists() {
                let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                write_atomic(&dir.join(f), &bytes)?;
                copied_gen |= *f == "generation_config.json";
            }
        }
    }
    let keep_existing =
        opts.copy_from.as_deref() == Some(dir) && dir.join("generation_config.json").exists();
    if !(copied_gen || keep_existing) {
        let mut g = serde_json::json!({});
        if let Some(obj) = g.as_object_mut() {
            if let Some(b) = config.bos_token_id {
                obj.insert("bos_token_id".into(), b.into());
            }
            match config.eos_token_ids.as_slice() {
                [] => {}
                [one] => {
                    obj.insert("eos_token_id".into(), (*one).into());
                }
                many => {
                    obj.insert("eos_token_id".into(), many.to_vec().into());
                }
            }
            if let Some(p) = config.pad_token_id {
                obj.insert("pad_token_id".into(), p.into());
            }
        }
        write_atomic(&dir.join("generation_config.json"), &json_bytes(&g))?;
    }
    tracing::debug!(dir = %dir.display(), shards = n, "saved checkpoint");
    Ok(())
}
