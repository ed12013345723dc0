//! `tokenizers::Tokenizer` wrapper: loads `tokenizer.json` (+ `tokenizer_config.json` for the
//! special tokens and the chat template), encodes/decodes with errors naming the file, and
//! builds small character-level tokenizers for toy tasks that transformers'
//! `PreTrainedTokenizerFast` loads unchanged.

use std::path::{Path, PathBuf};

use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::chat::ChatTemplate;
use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};

/// Special tokens and chat template from `tokenizer_config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerConfig {
    /// `bos_token`, if any.
    pub bos_token: Option<String>,
    /// `eos_token`, if any.
    pub eos_token: Option<String>,
    /// `pad_token`, if any.
    pub pad_token: Option<String>,
    /// `unk_token`, if any.
    pub unk_token: Option<String>,
    /// The Jinja chat template (the `default` one when the file lists several).
    pub chat_template: Option<String>,
}

/// A loaded tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it came from (for errors); `"<built>"` for built ones.
    origin: String,
    /// Special tokens and template.
    pub config: TokenizerConfig,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("origin", &self.origin)
            .field("vocab_size", &self.vocab_size())
            .field("config", &self.config)
            .finish()
    }
}

fn token_str(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

impl TokenizerConfig {
    /// Parses `tokenizer_config.json` (and `chat_template.jinja` beside it, which wins when
    /// present, as in transformers).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let chat_template = match v.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_owned)),
            _ => None,
        };
        let mut cfg = TokenizerConfig {
            bos_token: token_str(v.get("bos_token")),
            eos_token: token_str(v.get("eos_token")),
            pad_token: token_str(v.get("pad_token")),
            unk_token: token_str(v.get("unk_token")),
            chat_template,
        };
        if let Some(dir) = path.parent() {
            let jinja = dir.join("chat_template.jinja");
            if jinja.exists() {
                cfg.chat_template =
                    Some(std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?);
            }
        }
        Ok(cfg)
    }

    /// The `tokenizer_config.json` transformers needs to load a fast tokenizer with these
    /// special tokens and template.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": false,
            "model_max_length": 1_000_000_000_000_000_000u64,
        });
        if let Some(obj) = v.as_object_mut() {
            for (k, t) in [
                ("bos_token", &self.bos_token),
                ("eos_token", &self.eos_token),
                ("pad_token", &self.pad_token),
                ("unk_token", &self.unk_token),
                ("chat_template", &self.chat_template),
            ] {
                if let Some(t) = t {
                    obj.insert(k.into(), t.clone().into());
                }
            }
        }
        v
    }
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut t = Self::from_file(&dir.join("tokenizer.json"))?;
        let cfg = dir.join("tokenizer_config.json");
        if cfg.exists() {
            t.config = TokenizerConfig::from_file(&cfg)?;
        }
        Ok(t)
    }

    /// Loads a `tokenizer.json` (no special-token config).
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Ok(Tokenizer {
            inner,
            origin: path.display().to_string(),
            config: TokenizerConfig::default(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Tokenizer {
            path: self.origin.clone(),
            msg: e.to_string(),
        }
    }

    /// Token ids of `text` (`add_special_tokens` runs the post-processor, e.g. adds BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| self.err(e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.err(e))
    }

    /// Id of a token string (special tokens included).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of `eos_token`, if the config names one that exists.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.config
            .eos_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// The chat template of this tokenizer, if it has one.
    pub fn chat_template(&self) -> Result<Option<ChatTemplate>> {
        match &self.config.chat_template {
            None => Ok(None),
            Some(src) => Ok(Some(ChatTemplate::new(
                src.clone(),
                self.config.bos_token.as_deref().unwrap_or(""),
                self.config.eos_token.as_deref().unwrap_or(""),
            )?)),
        }
    }

    /// Renders `messages` with the chat template and encodes the result without adding
    /// special tokens (as `apply_chat_template(..., tokenize=True)` does).
    pub fn apply_chat_template(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        let t = self
            .chat_template()?
            .ok_or_else(|| Error::Template(format!("{}: no chat_template", self.origin)))?;
        let text = t.render(messages, None, add_generation_prompt)?;
        self.encode(&text, false)
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = self.inner.to_string(true).map_err(|e| self.err(e))?;
        write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
        let mut cfg = serde_json::to_string_pretty(&self.config.to_json()).unwrap_or_default();
        cfg.push('\n');
        write_atomic(&dir.join("tokenizer_config.json"), cfg.as_bytes())
    }

    /// The underlying `tokenizers` object.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// Builds a character-level tokenizer: ids `0..specials.len()` are the special tokens (in
/// order), then `<unk>`, then one id per distinct character of `alphabet` (in first-seen
/// order). Every character is its own token; unknown characters map to `<unk>`; decoding
/// concatenates. `eos` / `bos` / `pad` name special tokens for tokenizer_config.json, and
/// `chat_template` is stored there too. transformers loads the saved files with
/// `PreTrainedTokenizerFast` / `AutoTokenizer`.
pub fn build_char_tokenizer(
    alphabet: &str,
    specials: &[&str],
    eos: Option<&str>,
    bos: Option<&str>,
    pad: Option<&str>,
    chat_template: Option<&str>,
) -> Result<Tokenizer> {
    let built = |msg: String| Error::Tokenizer {
        path: "<built>".into(),
        msg,
    };
    for t in [eos, bos, pad].into_iter().flatten() {
        if !specials.contains(&t) {
            return Err(built(format!("{t:?} is not among the special tokens")));
        }
    }
    let mut vocab: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    vocab.push("<unk>".into());
    for c in alphabet.chars() {
        let s = c.to_string();
        if !vocab.contains(&s) {
            vocab.push(s);
        }
    }
    let map = vocab
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i as u32))
        .collect();
    let model = WordLevel::builder()
        .vocab(map)
        .unk_token("<unk>".into())
        .build()
        .map_err(|e| built(e.to_string()))?;
    let mut inner = tokenizers::Tokenizer::new(model);
    let split = Split::new(
        SplitPattern::Regex(r"[\s\S]".into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| built(e.to_string()))?;
    inner.with_pre_tokenizer(Some(split));
    inner.with_decoder(Some(Fuse::new()));
    let added: Vec<AddedToken> = specials
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .chain(std::iter::once(AddedToken::from("<unk>".to_string(), true)))
        .collect();
    inner
        .add_special_tokens(added)
        .map_err(|e| built(e.to_string()))?;
    if let Some(t) = chat_template {
        ChatTemplate::new(t, bos.unwrap_or(""), eos.unwrap_or(""))?;
    }
    Ok(Tokenizer {
        inner,
        origin: "<built>".into(),
        config: TokenizerConfig {
            bos_token: bos.map(str::to_owned),
            eos_token: eos.map(str::to_owned),
            pad_token: pad.map(str::to_owned),
            unk_token: Some("<unk>".into()),
            chat_template: chat_template.map(str::to_owned),
        },
    })
}

/// Path of the tokenizer.json in a checkpoint directory.
pub fn tokenizer_path(dir: &Path) -> PathBuf {
    dir.join("tokenizer.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_tokenizer_round_trips() {
        let t = build_char_tokenizer(
            "0123456789+= \n",
            &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            Some("<|im_end|>"),
            None,
            Some("<|endoftext|>"),
            None,
        )
        .unwrap();
        let ids = t.encode("<|im_start|>12+3=15\n<|im_end|>", false).unwrap();
        assert_eq!(ids[0], 1);
        assert_eq!(*ids.last().unwrap(), 2);
        assert_eq!(ids.len(), 1 + 8 + 1);
        assert_eq!(
            t.decode(&ids, false).unwrap(),
            "<|im_start|>12+3=15\n<|im_end|>"
        );
        assert_eq!(t.decode(&ids, true).unwrap(), "12+3=15\n");
        assert_eq!(t.encode("a", false).unwrap(), vec![3]); // <unk>
        assert_eq!(t.eos_token_id(), Some(2));
        let dir = tempfile::tempdir().unwrap();
        t.save(dir.path()).unwrap();
        let back = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(
            back.encode("1+1=2", false).unwrap(),
            t.encode("1+1=2", false).unwrap()
        );
        assert_eq!(back.config, t.config);
    }
}
