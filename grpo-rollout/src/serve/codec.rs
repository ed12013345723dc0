//! [`Codec`]: what the server needs from a tokenizer (encode prompts, render chat messages,
//! decode completions), and [`TokenizerCodec`], its implementation over a `grpo-model`
//! [`Tokenizer`] and the checkpoint's chat template.

use grpo_model::chat::ChatTemplate;
use grpo_model::tokenizer::Tokenizer;

/// Text ↔ token ids for the server. Errors are messages shown to the client.
pub trait Codec: Send + Sync {
    /// Token ids of a completion prompt (special tokens added as the checkpoint does).
    fn encode(&self, text: &str) -> Result<Vec<u32>, String>;
    /// Text of `ids`; `skip_special` drops special tokens (used for completion text).
    fn decode(&self, ids: &[u32], skip_special: bool) -> String;
    /// Token ids of `messages` (a JSON array) rendered with the chat template and the
    /// generation prompt; `tools` (a JSON array) is passed to the template.
    fn chat(
        &self,
        messages: &serde_json::Value,
        tools: Option<&serde_json::Value>,
    ) -> Result<Vec<u32>, String>;
    /// Extra token ids that end a completion (e.g. the tokenizer's end-of-turn token).
    fn stop_token_ids(&self) -> Vec<u32> {
        Vec::new()
    }
    /// Number of ids the tokenizer knows, if it says.
    fn vocab_size(&self) -> Option<usize> {
        None
    }
}

/// A [`Codec`] over a loaded tokenizer and its chat template (if any).
#[derive(Debug, Clone)]
pub struct TokenizerCodec {
    tok: Tokenizer,
    template: Option<ChatTemplate>,
}

impl TokenizerCodec {
    /// Wraps `tok`; fails when its chat template does not parse.
    pub fn new(tok: Tokenizer) -> grpo_model::Result<Self> {
        let template = tok.chat_template()?;
        Ok(Self { tok, template })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }
}

impl Codec for TokenizerCodec {
    fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tok.encode(text, true).map_err(|e| e.to_string())
    }

    fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        self.tok.decode(ids, skip_special).unwrap_or_default()
    }

    fn chat(
        &self,
        messages: &serde_json::Value,
        tools: Option<&serde_json::Value>,
    ) -> Result<Vec<u32>, String> {
        let t = self
            .template
            .as_ref()
            .ok_or("this model's tokenizer has no chat template")?;
        let text = t.render(messages, tools, true).map_err(|e| e.to_string())?;
        self.tok.encode(&text, false).map_err(|e| e.to_string())
    }

    fn stop_token_ids(&self) -> Vec<u32> {
        self.tok.eos_token_id().into_iter().collect()
    }

    fn vocab_size(&self) -> Option<usize> {
        Some(self.tok.vocab_size())
    }
}
