//! Model-free implementations of the runner's traits: a byte-level chat renderer
//! and a scripted sampler. Used by this crate's tests, the CLI and any user who
//! wants to exercise an env without a model.

use std::collections::HashMap;

use crate::env::FinishReason;
use crate::error::{EnvError, Result};
use crate::message::{Message, Role, ToolSpec};
use crate::runner::{ChatRenderer, Piece, SampleRequest, SampledTurn, TurnSampler};
use crate::transcript::Owner;

/// Byte-level renderer: ids 0–255 are bytes, [`ByteRenderer::EOS`] (256) ends a turn.
/// Template: `<|role|>\n{content}\n` per message, `<|assistant|>\n` as the
/// generation prompt, `<|end|>\n` as the assistant-turn close the model did not emit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteRenderer;

impl ByteRenderer {
    /// The end-of-turn id.
    pub const EOS: u32 = 256;
    /// Ids of a string.
    pub fn ids(s: &str) -> Vec<u32> {
        s.bytes().map(u32::from).collect()
    }
    /// Decodes ids (EOS is dropped).
    pub fn text(ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().filter_map(|&i| u8::try_from(i).ok()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn role(r: Role) -> &'static str {
        match r {
            Role::Env => "user",
            other => other.as_str(),
        }
    }
}

impl ChatRenderer for ByteRenderer {
    fn name(&self) -> String {
        "byte-chat-v1".into()
    }
    fn render_prompt(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Vec<u32>> {
        let mut s = String::new();
        if !tools.is_empty() {
            let t: Vec<String> = tools.iter().map(|t| t.to_openai().to_string()).collect();
            s.push_str(&format!("<|tools|>\n{}\n", t.join("\n")));
        }
        for m in messages {
            s.push_str(&format!("<|{}|>\n{}\n", Self::role(m.role), m.content));
        }
        s.push_str("<|assistant|>\n");
        Ok(Self::ids(&s))
    }
    fn render_continuation(
        &self,
        finish: &FinishReason,
        observation: &[Message],
    ) -> Result<Vec<Piece>> {
        let mut out = Vec::new();
        let scaffold = |s: &str| Piece {
            owner: Owner::Scaffold,
            ids: Self::ids(s),
            text: s.to_string(),
        };
        if *finish != FinishReason::Eos {
            out.push(scaffold("<|end|>\n"));
        }
        for m in observation {
            out.push(scaffold(&format!("<|{}|>\n", Self::role(m.role))));
            out.push(Piece {
                owner: if m.role == Role::Tool {
                    Owner::Tool
                } else {
                    Owner::Env
                },
                ids: Self::ids(&m.content),
                text: m.content.clone(),
            });
            out.push(scaffold("\n"));
        }
        out.push(scaffold("<|assistant|>\n"));
        Ok(out)
    }
    fn render_inline(&self, text: &str) -> Result<Vec<u32>> {
        Ok(Self::ids(&format!("\n{text}\n")))
    }
    fn decode_piece(&self, id: u32) -> Vec<u8> {
        u8::try_from(id).map(|b| vec![b]).unwrap_or_default()
    }
}

/// What a scripted policy sees when asked for a turn.
#[derive(Debug, Clone)]
pub struct ScriptCtx<'a> {
    /// Session id.
    pub session: u64,
    /// Turn index within the session.
    pub turn: usize,
    /// The decoded context so far (prompt + everything appended).
    pub context: &'a str,
}

/// A sampler that asks a closure for each turn's text and emits its bytes as ids,
/// honouring stop strings (cut right after the first completed stop string),
/// `max_new_tokens` (finish `Length`) and appending [`ByteRenderer::EOS`] otherwise.
/// It checks the exact-prefix invariant on every call.
pub struct ScriptedSampler<F> {
    policy: F,
    sessions: HashMap<u64, (Vec<u32>, usize)>,
    /// Every request received, in order.
    pub requests: Vec<SampleRequest>,
}

impl<F> std::fmt::Debug for ScriptedSampler<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedSampler")
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl<F: FnMut(&ScriptCtx<'_>) -> String> ScriptedSampler<F> {
    /// A sampler over a policy closure.
    pub fn new(policy: F) -> Self {
        ScriptedSampler {
            policy,
            sessions: HashMap::new(),
            requests: Vec::new(),
        }
    }
    /// The full id sequence of a live session.
    pub fn session_ids(&self, session: u64) -> Option<&[u32]> {
        self.sessions.get(&session).map(|(ids, _)| ids.as_slice())
    }
}

/// The deterministic fake log-prob the scripted sampler reports for an id.
pub fn scripted_logprob(id: u32) -> f32 {
    -0.1 * ((id % 7) as f32 + 1.0)
}

impl<F: FnMut(&ScriptCtx<'_>) -> String> TurnSampler for ScriptedSampler<F> {
    fn sample(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampledTurn>> {
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            self.requests.push(r.clone());
            let (ids, turn) = self.sessions.entry(r.session).or_default();
            if ids.len() != r.prefix_len {
                return Err(EnvError::Runner {
                    episode: r.session,
                    reason: format!(
                        "exact-prefix check failed: sampler holds {} ids, request says {}",
                        ids.len(),
                        r.prefix_len
                    ),
                });
            }
            ids.extend_from_slice(&r.append);
            let context = ByteRenderer::text(ids);
            let text = (self.policy)(&ScriptCtx {
                session: r.session,
                turn: *turn,
                context: &context,
            });
            *turn += 1;
            let mut bytes = text.into_bytes();
            let mut finish = None;
            let mut best: Option<(usize, &String)> = None;
            for s in &r.stop {
                if let Some(p) = find_bytes(&bytes, s.as_bytes()) {
                    let e = p + s.len();
                    if best.is_none_or(|(b, _)| e < b) {
                        best = Some((e, s));
                    }
                }
            }
            if let Some((e, s)) = best {
                bytes.truncate(e);
                finish = Some(FinishReason::Stop(s.clone()));
            }
            let mut sampled: Vec<u32> = bytes.iter().map(|&b| u32::from(b)).collect();
            if sampled.len() >= r.max_new_tokens && finish.is_none()
                || sampled.len() > r.max_new_tokens
            {
                sampled.truncate(r.max_new_tokens);
                finish = Some(FinishReason::Length);
            }
            let finish = match finish {
                Some(f) => f,
                None => {
                    sampled.push(ByteRenderer::EOS);
                    FinishReason::Eos
                }
            };
            ids.extend_from_slice(&sampled);
            out.push(SampledTurn {
                logprobs: sampled.iter().map(|&i| scripted_logprob(i)).collect(),
                ids: sampled,
                finish,
            });
        }
        Ok(out)
    }
    fn release(&mut self, session: u64) {
        self.sessions.remove(&session);
    }
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
