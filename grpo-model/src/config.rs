//! `config.json` → validated [`ModelConfig`].
//!
//! [`HfConfig`] mirrors the Hugging Face file with serde (unknown keys are ignored, since
//! checkpoints carry many training-only fields); [`ModelConfig::from_hf`] validates it into the
//! internal form the model uses. Supported architectures and their traits:
//!
//! | architecture | traits |
//! |---|---|
//! | `LlamaForCausalLM` | GQA, RMSNorm, RoPE (`rope_theta`), SwiGLU MLP, tied or untied embeddings |
//! | `Qwen2ForCausalLM` | as Llama, plus biases on the q/k/v projections |
//! | `Qwen3ForCausalLM` | as Llama, plus per-head RMSNorm on q and k (QK-norm) and an explicit `head_dim` |
//!
//! Features we do not implement are rejected by name (sliding-window attention in use, rope
//! scaling other than `default`, attention/MLP biases on Llama, activations other than SiLU).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The decoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// `LlamaForCausalLM` (Llama 2/3, TinyLlama, SmolLM, ...).
    Llama,
    /// `Qwen2ForCausalLM` (Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen): q/k/v biases.
    Qwen2,
    /// `Qwen3ForCausalLM`: QK-norm, explicit head_dim.
    Qwen3,
}

impl Arch {
    /// The HF `architectures[0]` string.
    pub fn hf_name(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Qwen3 => "Qwen3ForCausalLM",
        }
    }

    /// The HF `model_type` string.
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }
}

/// `rope_parameters` / `rope_scaling` object of config.json.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HfRopeParameters {
    /// `rope_type` (newer files) — only `default` is implemented.
    #[serde(default)]
    pub rope_type: Option<String>,
    /// `type` (older spelling of `rope_type`).
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// `rope_theta` inside the object (transformers >= 5).
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

/// `eos_token_id` is an int or a list of ints.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HfTokenIds {
    /// One id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

/// Serde mirror of the config.json keys we read.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    /// e.g. `["Qwen2ForCausalLM"]`.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// e.g. `"qwen2"`.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: Option<usize>,
    /// Model width.
    pub hidden_size: Option<usize>,
    /// MLP width.
    pub intermediate_size: Option<usize>,
    /// Number of decoder layers.
    pub num_hidden_layers: Option<usize>,
    /// Query heads.
    pub num_attention_heads: Option<usize>,
    /// Key/value heads (GQA); defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Longest sequence the model supports.
    pub max_position_embeddings: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default)]
    pub rms_norm_eps: Option<f64>,
    /// RoPE base (older files keep it here).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE parameters (transformers >= 5).
    #[serde(default)]
    pub rope_parameters: Option<HfRopeParameters>,
    /// RoPE scaling (older files); `null` or absent means none.
    #[serde(default)]
    pub rope_scaling: Option<HfRopeParameters>,
    /// Whether `lm_head` shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// Llama/Qwen3: biases on all attention projections (unsupported when true).
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Llama: biases on the MLP (unsupported when true).
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    /// Qwen2/Qwen3 sliding window switch.
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    /// MLP activation; only `silu` is implemented.
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<HfTokenIds>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

/// Validated model configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Decoder family.
    pub arch: Arch,
    /// V: vocabulary size.
    pub vocab_size: usize,
    /// H: model width.
    pub hidden_size: usize,
    /// I: MLP width.
    pub intermediate_size: usize,
    /// L: number of layers.
    pub num_layers: usize,
    /// Hq: query heads.
    pub num_heads: usize,
    /// Hkv: key/value heads (divides Hq).
    pub num_kv_heads: usize,
    /// D: per-head width (even, for RoPE).
    pub head_dim: usize,
    /// Longest sequence (positions 0..max).
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base.
    pub rope_theta: f32,
    /// `lm_head` is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence id, if any.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids (may be empty).
    pub eos_token_ids: Vec<u32>,
    /// Padding id, if any.
    pub pad_token_id: Option<u32>,
}

fn need(v: Option<usize>, field: &str) -> Result<usize> {
    match v {
        Some(0) => Err(Error::InvalidConfig {
            field: field.into(),
            reason: "must be > 0".into(),
        }),
        Some(x) => Ok(x),
        None => Err(Error::InvalidConfig {
            field: field.into(),
            reason: "missing".into(),
        }),
    }
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let hf: HfConfig = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hf(&hf)
    }

    /// Validates a parsed config.json.
    pub fn from_hf(hf: &HfConfig) -> Result<Self> {
        let arch_name = match (hf.architectures.first(), hf.model_type.as_deref()) {
            (Some(a), _) => a.clone(),
            (None, Some("llama")) => "LlamaForCausalLM".into(),
            (None, Some("qwen2")) => "Qwen2ForCausalLM".into(),
            (None, Some("qwen3")) => "Qwen3ForCausalLM".into(),
            (None, other) => {
                return Err(Error::UnsupportedArchitecture {
                    arch: format!("(no architectures; model_type {other:?})"),
                });
            }
        };
        let arch = match arch_name.as_str() {
            "LlamaForCausalLM" => Arch::Llama,
            "Qwen2ForCausalLM" => Arch::Qwen2,
            "Qwen3ForCausalLM" => Arch::Qwen3,
            _ => return Err(Error::UnsupportedArchitecture { arch: arch_name }),
        };
        if hf.use_sliding_window == Some(true) {
            return Err(Error::UnsupportedFeature {
                feature: "use_sliding_window = true (sliding-window attention)".into(),
            });
        }
        if hf.attention_bias == Some(true) {
            return Err(Error::UnsupportedFeature {
                feature: format!("attention_bias = true on {}", arch.hf_name()),
            });
        }
        if hf.mlp_bias == Some(true) {
            return Err(Error::UnsupportedFeature {
                feature: "mlp_bias = true".into(),
            });
        }
        if let Some(act) = &hf.hidden_act
            && act != "silu"
        {
            return Err(Error::UnsupportedFeature {
                feature: format!("hidden_act = {act:?} (only \"silu\")"),
            });
        }
        for (key, rp) in [
            ("rope_parameters", &hf.rope_parameters),
            ("rope_scaling", &hf.rope_scaling),
        ] {
            if let Some(rp) = rp {
                let ty = rp.rope_type.as_deref().or(rp.type_.as_deref());
                if let Some(ty) = ty
                    && ty != "default"
                {
                    return Err(Error::UnsupportedFeature {
                        feature: format!("{key}.rope_type = {ty:?} (only \"default\" RoPE)"),
                    });
                }
            }
        }
        let rope_theta = hf
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .or(hf.rope_theta)
            .unwrap_or(10000.0);
        let vocab_size = need(hf.vocab_size, "vocab_size")?;
        let hidden_size = need(hf.hidden_size, "hidden_size")?;
        let intermediate_size = need(hf.intermediate_size, "intermediate_size")?;
        let num_layers = need(hf.num_hidden_layers, "num_hidden_layers")?;
        let num_heads = need(hf.num_attention_heads, "num_attention_heads")?;
        let num_kv_heads = need(
            hf.num_key_value_heads.or(Some(num_heads)),
            "num_key_value_heads",
        )?;
        let head_dim = match hf.head_dim {
            Some(d) => need(Some(d), "head_dim")?,
            None => {
                if !hidden_size.is_multiple_of(num_heads) {
                    return Err(Error::InvalidConfig {
                        field: "num_attention_heads".into(),
                        reason: format!(
                            "hidden_size {hidden_size} is not divisible by {num_heads} heads and head_dim is not given"
                        ),
                    });
                }
                hidden_size / num_heads
            }
        };
        let cfg = ModelConfig {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            max_position_embeddings: need(hf.max_position_embeddings, "max_position_embeddings")?,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6) as f32,
            rope_theta: rope_theta as f32,
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(false),
            bos_token_id: hf.bos_token_id,
            eos_token_ids: match &hf.eos_token_id {
                None => vec![],
                Some(HfTokenIds::One(x)) => vec![*x],
                Some(HfTokenIds::Many(v)) => v.clone(),
            },
            pad_token_id: hf.pad_token_id,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the internal invariants (used by `from_hf` and by hand-built configs).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(Error::InvalidConfig {
                field: field.into(),
                reason,
            })
        };
        for (f, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return bad(f, "must be > 0".into());
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_kv_heads, self.num_heads
                ),
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(
                "head_dim",
                format!("{} must be even for RoPE", self.head_dim),
            );
        }
        if self.arch != Arch::Qwen3 && self.head_dim * self.num_heads != self.hidden_size {
            // Llama/Qwen2 allow an explicit head_dim in newer transformers, and the model code
            // handles q_dim != hidden_size, so this is accepted; nothing to check.
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return bad("rms_norm_eps", format!("{} must be > 0", self.rms_norm_eps));
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) {
            return bad("rope_theta", format!("{} must be > 0", self.rope_theta));
        }
        for id in self
            .bos_token_id
            .iter()
            .chain(&self.eos_token_ids)
            .chain(&self.pad_token_id)
        {
            if *id as usize >= self.vocab_size {
                return bad(
                    "bos/eos/pad_token_id",
                    format!("{id} >= vocab_size {}", self.vocab_size),
                );
            }
        }
        Ok(())
    }

    /// Query width Hq·D.
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Key/value width Hkv·D.
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// The config.json transformers writes for this model (both the new `rope_parameters` and
    /// the old top-level `rope_theta`, so older readers such as vLLM also find the base).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "architectures": [self.arch.hf_name()],
            "model_type": self.arch.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps as f64,
            "rope_theta": self.rope_theta as f64,
            "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta as f64},
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "use_cache": true,
            "dtype": "float32",
        });
        let obj = v.as_object_mut();
        if let Some(obj) = obj {
            if self.arch != Arch::Qwen2 {
                obj.insert("attention_bias".into(), false.into());
            }
            if self.arch == Arch::Llama {
                obj.insert("mlp_bias".into(), false.into());
            } else {
                obj.insert("use_sliding_window".into(), false.into());
                obj.insert("sliding_window".into(), serde_json::Value::Null);
            }
            if let Some(b) = self.bos_token_id {
                obj.insert("bos_token_id".into(), b.into());
            }
            match self.eos_token_ids.as_slice() {
                [] => {}
                [one] => {
                    obj.insert("eos_token_id".into(), (*one).into());
                }
                many => {
                    obj.insert("eos_token_id".into(), many.to_vec().into());
                }
            }
            if let Some(p) = self.pad_token_id {
                obj.insert("pad_token_id".into(), p.into());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ModelConfig> {
        ModelConfig::from_hf(&serde_json::from_str(s).unwrap())
    }

    const BASE: &str = r#""vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32"#;

    #[test]
    fn rope_theta_from_both_places() {
        let a = parse(&format!(
            r#"{{"architectures": ["LlamaForCausalLM"], {BASE}, "rope_theta": 500000.0}}"#
        ))
        .unwrap();
        assert_eq!(a.rope_theta, 500000.0);
        let b = parse(&format!(
            r#"{{"architectures": ["Qwen2ForCausalLM"], {BASE},
            "rope_parameters": {{"rope_type": "default", "rope_theta": 1000.0}}}}"#
        ))
        .unwrap();
        assert_eq!(b.rope_theta, 1000.0);
        assert_eq!(b.num_kv_heads, 2);
        assert_eq!(b.head_dim, 4);
    }

    #[test]
    fn rejects_unknown_and_unsupported() {
        let e = parse(&format!(
            r#"{{"architectures": ["GPT2LMHeadModel"], {BASE}}}"#
        ));
        assert!(matches!(e, Err(Error::UnsupportedArchitecture { .. })));
        let e = parse(&format!(
            r#"{{"architectures": ["Qwen2ForCausalLM"], {BASE}, "use_sliding_window": true}}"#
        ));
        assert!(e.unwrap_err().to_string().contains("sliding"));
        let e = parse(&format!(
            r#"{{"architectures": ["LlamaForCausalLM"], {BASE}, "rope_scaling": {{"rope_type": "llama3", "factor": 8.0}}}}"#
        ));
        assert!(e.unwrap_err().to_string().contains("llama3"));
        let e = parse(&format!(
            r#"{{"architectures": ["LlamaForCausalLM"], {BASE}, "num_key_value_heads": 3}}"#
        ));
        assert!(e.unwrap_err().to_string().contains("num_key_value_heads"));
        let e = parse(r#"{"architectures": ["LlamaForCausalLM"], "vocab_size": 10}"#);
        assert!(e.unwrap_err().to_string().contains("hidden_size"));
    }

    #[test]
    fn hf_json_round_trips() {
        let a = parse(&format!(
            r#"{{"architectures": ["Qwen3ForCausalLM"], {BASE}, "head_dim": 6, "eos_token_id": [1, 2], "tie_word_embeddings": true}}"#
        ))
        .unwrap();
        let b = ModelConfig::from_hf(&serde_json::from_value(a.to_hf_json()).unwrap()).unwrap();
        assert_eq!(a, b);
    }
}
