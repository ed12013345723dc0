//! Parameters as one flat f32 buffer with named views (llm.c's `ParameterTensors`).
//!
//! [`Layout`] lists every tensor of a config with its HF name, shape and offset into the flat
//! buffer; load, save, the optimizer and the gradient buffer all share it, so names round-trip
//! by construction ([`hf_name`] is the only place names are spelled). With tied embeddings
//! `lm_head` is a second view of `model.embed_tokens.weight` (one tensor, gradients add up).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{Arch, ModelConfig};

/// Which parameter of the model a tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorKind {
    /// `model.embed_tokens.weight` [V, H].
    Embed,
    /// `model.layers.{l}.input_layernorm.weight` [H].
    InputNorm,
    /// `...self_attn.q_proj.weight` [Hq·D, H].
    Q,
    /// `...self_attn.k_proj.weight` [Hkv·D, H].
    K,
    /// `...self_attn.v_proj.weight` [Hkv·D, H].
    V,
    /// `...self_attn.q_proj.bias` [Hq·D] (Qwen2).
    QBias,
    /// `...self_attn.k_proj.bias` [Hkv·D] (Qwen2).
    KBias,
    /// `...self_attn.v_proj.bias` [Hkv·D] (Qwen2).
    VBias,
    /// `...self_attn.q_norm.weight` [D] (Qwen3).
    QNorm,
    /// `...self_attn.k_norm.weight` [D] (Qwen3).
    KNorm,
    /// `...self_attn.o_proj.weight` [H, Hq·D].
    O,
    /// `...post_attention_layernorm.weight` [H].
    PostNorm,
    /// `...mlp.gate_proj.weight` [I, H].
    Gate,
    /// `...mlp.up_proj.weight` [I, H].
    Up,
    /// `...mlp.down_proj.weight` [H, I].
    Down,
    /// `model.norm.weight` [H].
    FinalNorm,
    /// `lm_head.weight` [V, H] (absent when tied).
    LmHead,
}

/// The HF tensor name of `kind` (in `layer` for per-layer tensors). The only naming function:
/// load and save both use it.
pub fn hf_name(kind: TensorKind, layer: usize) -> String {
    use TensorKind::*;
    let p = format!("model.layers.{layer}");
    match kind {
        Embed => "model.embed_tokens.weight".into(),
        FinalNorm => "model.norm.weight".into(),
        LmHead => "lm_head.weight".into(),
        InputNorm => format!("{p}.input_layernorm.weight"),
        Q => format!("{p}.self_attn.q_proj.weight"),
        K => format!("{p}.self_attn.k_proj.weight"),
        V => format!("{p}.self_attn.v_proj.weight"),
        QBias => format!("{p}.self_attn.q_proj.bias"),
        KBias => format!("{p}.self_attn.k_proj.bias"),
        VBias => format!("{p}.self_attn.v_proj.bias"),
        QNorm => format!("{p}.self_attn.q_norm.weight"),
        KNorm => format!("{p}.self_attn.k_norm.weight"),
        O => format!("{p}.self_attn.o_proj.weight"),
        PostNorm => format!("{p}.post_attention_layernorm.weight"),
        Gate => format!("{p}.mlp.gate_proj.weight"),
        Up => format!("{p}.mlp.up_proj.weight"),
        Down => format!("{p}.mlp.down_proj.weight"),
    }
}

/// One tensor of the flat buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// HF name.
    pub name: String,
    /// Which parameter.
    pub kind: TensorKind,
    /// Layer index (0 for global tensors).
    pub layer: usize,
    /// Row-major shape, as stored by HF.
    pub shape: Vec<usize>,
    /// Offset into the flat buffer, in f32 elements.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

impl TensorSpec {
    /// The range of this tensor in the flat buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// Offsets of one decoder layer's tensors in the flat buffer (see [`TensorKind`] for shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOffsets {
    /// input_layernorm [H].
    pub input_norm: usize,
    /// q_proj [Hq·D, H].
    pub q: usize,
    /// k_proj [Hkv·D, H].
    pub k: usize,
    /// v_proj [Hkv·D, H].
    pub v: usize,
    /// q/k/v biases (Qwen2).
    pub qkv_bias: Option<(usize, usize, usize)>,
    /// q_norm, k_norm [D] (Qwen3).
    pub qk_norm: Option<(usize, usize)>,
    /// o_proj [H, Hq·D].
    pub o: usize,
    /// post_attention_layernorm [H].
    pub post_norm: usize,
    /// gate_proj [I, H].
    pub gate: usize,
    /// up_proj [I, H].
    pub up: usize,
    /// down_proj [H, I].
    pub down: usize,
}

/// Every tensor of a config, in a fixed order, with offsets into one flat f32 buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// All tensors (tied `lm_head` is not listed: it is `embed`).
    pub tensors: Vec<TensorSpec>,
    /// Offset of the embedding [V, H].
    pub embed: usize,
    /// Per-layer offsets.
    pub layers: Vec<LayerOffsets>,
    /// Offset of the final norm [H].
    pub final_norm: usize,
    /// Offset of the lm_head [V, H] (equals `embed` when tied).
    pub lm_head: usize,
    /// Total number of f32 parameters.
    pub total: usize,
}

/// The tensors of one decoder layer in storage order, with their shapes.
fn layer_tensors(cfg: &ModelConfig) -> Vec<(TensorKind, Vec<usize>)> {
    use TensorKind::*;
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let (qd, kvd, d) = (cfg.q_dim(), cfg.kv_dim(), cfg.head_dim);
    let mut t = vec![
        (InputNorm, vec![h]),
        (Q, vec![qd, h]),
        (K, vec![kvd, h]),
        (V, vec![kvd, h]),
    ];
    if cfg.arch == Arch::Qwen2 {
        t.extend([(QBias, vec![qd]), (KBias, vec![kvd]), (VBias, vec![kvd])]);
    }
    if cfg.arch == Arch::Qwen3 {
        t.extend([(QNorm, vec![d]), (KNorm, vec![d])]);
    }
    t.extend([
        (O, vec![h, qd]),
        (PostNorm, vec![h]),
        (Gate, vec![i, h]),
        (Up, vec![i, h]),
        (Down, vec![h, i]),
    ]);
    t
}

impl Layout {
    /// The number of parameters of `cfg`, computed without allocating anything; `None` when
    /// it does not fit in a `u128` (a config far too large to build, checked before
    /// [`Layout::new`] or a model allocation is attempted).
    pub fn parameter_count(cfg: &ModelConfig) -> Option<u128> {
        let size = |shape: &[usize]| {
            shape
                .iter()
                .try_fold(1u128, |a, &b| a.checked_mul(b as u128))
        };
        let embed = size(&[cfg.vocab_size, cfg.hidden_size])?;
        let layer = layer_tensors(cfg)
            .iter()
            .try_fold(0u128, |a, (_, shape)| a.checked_add(size(shape)?))?;
        let lm_head = if cfg.tie_word_embeddings { 0 } else { embed };
        embed
            .checked_add(layer.checked_mul(cfg.num_layers as u128)?)?
            .checked_add(cfg.hidden_size as u128)?
            .checked_add(lm_head)
    }

    /// The layout of `cfg`.
    pub fn new(cfg: &ModelConfig) -> Self {
        let (h, v) = (cfg.hidden_size, cfg.vocab_size);
        let mut tensors = Vec::new();
        let mut total = 0usize;
        let mut push = |kind: TensorKind, layer: usize, shape: Vec<usize>| -> usize {
            let len = shape.iter().product();
            let offset = total;
            tensors.push(TensorSpec {
                name: hf_name(kind, layer),
                kind,
                layer,
                shape,
                offset,
                len,
            });
            total += len;
            offset
        };
        use TensorKind::*;
        let embed = push(Embed, 0, vec![v, h]);
        let mut layers = Vec::with_capacity(cfg.num_layers);
        let shapes = layer_tensors(cfg);
        for l in 0..cfg.num_layers {
            let mut at = std::collections::HashMap::new();
            for (kind, shape) in &shapes {
                at.insert(*kind, push(*kind, l, shape.clone()));
            }
            let get = |k: TensorKind| at.get(&k).copied();
            let off = |k: TensorKind| get(k).unwrap_or_default();
            layers.push(LayerOffsets {
                input_norm: off(InputNorm),
                q: off(Q),
                k: off(K),
                v: off(V),
                qkv_bias: get(QBias)
                    .zip(get(KBias))
                    .zip(get(VBias))
                    .map(|((a, b), c)| (a, b, c)),
                qk_norm: get(QNorm).zip(get(KNorm)),
                o: off(O),
                post_norm: off(PostNorm),
                gate: off(Gate),
                up: off(Up),
                down: off(Down),
            });
        }
        let final_norm = push(FinalNorm, 0, vec![h]);
        let lm_head = if cfg.tie_word_embeddings {
            embed
        } else {
            push(LmHead, 0, vec![v, h])
        };
        Layout {
            tensors,
            embed,
            layers,
            final_norm,
            lm_head,
            total,
        }
    }

    /// The tensor called `name`, if this layout has one.
    pub fn find(&self, name: &str) -> Option<&TensorSpec> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Seeded initialisation (HF's scheme: normal(0, 0.02) matrices, ones for norms, zero biases).
pub fn init_random(layout: &Layout, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0.0f32; layout.total];
    for t in &layout.tensors {
        let dst = &mut data[t.range()];
        use TensorKind::*;
        match t.kind {
            InputNorm | PostNorm | FinalNorm | QNorm | KNorm => dst.fill(1.0),
            QBias | KBias | VBias => dst.fill(0.0),
            _ => {
                for x in dst.iter_mut() {
                    *x = 0.02 * standard_normal(&mut rng);
                }
            }
        }
    }
    data
}

/// One standard-normal draw (Box-Muller), portable across platforms.
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    use rand::Rng;
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(arch: Arch, tied: bool) -> ModelConfig {
        ModelConfig {
            arch,
            vocab_size: 11,
            hidden_size: 8,
            intermediate_size: 12,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 2,
            max_position_embeddings: 16,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            tie_word_embeddings: tied,
            bos_token_id: None,
            eos_token_ids: vec![],
            pad_token_id: None,
        }
    }

    #[test]
    fn parameter_count_matches_the_layout_and_overflow_is_none() {
        for arch in [Arch::Qwen2, Arch::Qwen3, Arch::Llama] {
            for tied in [true, false] {
                let c = cfg(arch, tied);
                assert_eq!(
                    Layout::parameter_count(&c),
                    Some(Layout::new(&c).total as u128),
                    "{arch:?} tied={tied}"
                );
            }
        }
        let mut c = cfg(Arch::Qwen2, true);
        c.hidden_size = usize::MAX;
        c.intermediate_size = usize::MAX;
        c.num_layers = usize::MAX;
        assert_eq!(Layout::parameter_count(&c), None);
    }

    #[test]
    fn layout_is_contiguous_and_named_uniquely() {
        for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3] {
            for tied in [false, true] {
                let l = Layout::new(&cfg(arch, tied));
                let mut off = 0;
                let mut names = std::collections::HashSet::new();
                for t in &l.tensors {
                    assert_eq!(t.offset, off);
                    off += t.len;
                    assert!(names.insert(t.name.clone()));
                }
                assert_eq!(off, l.total);
                assert_eq!(tied, l.lm_head == l.embed);
                assert_eq!(
                    arch == Arch::Qwen2,
                    l.find("model.layers.1.self_attn.k_proj.bias").is_some()
                );
                assert_eq!(
                    arch == Arch::Qwen3,
                    l.find("model.layers.0.self_attn.q_norm.weight").is_some()
                );
            }
        }
    }

    #[test]
    fn init_is_seeded() {
        let l = Layout::new(&cfg(Arch::Qwen2, false));
        assert_eq!(init_random(&l, 3), init_random(&l, 3));
        assert_ne!(init_random(&l, 3), init_random(&l, 4));
        let w = init_random(&l, 3);
        assert_eq!(w[l.final_norm], 1.0);
    }
}
