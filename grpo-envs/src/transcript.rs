//! Episode transcripts: ordered segments of token ids with an owner. Concatenating
//! the segments gives exactly the sequence the engine processed; the loss mask is
//! 1 exactly on `Policy` ids, which are stored as sampled and never re-tokenised.
//! Three training views: one interleaved row, one row per policy turn, or one row
//! per context (merged).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::env::FinishReason;
use crate::error::{EnvError, Result};

/// Who produced a segment's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Owner {
    /// The initial rendered prompt.
    Prompt,
    /// Ids sampled by the engine for the policy (the only trained ids).
    Policy,
    /// Environment observation content.
    Env,
    /// Tool result content.
    Tool,
    /// Template tokens the runner inserted (role headers, a turn close the model
    /// did not emit, the next generation prompt, forced prefixes).
    Scaffold,
    /// Another seat's tokens in multi-agent episodes.
    Agent(usize),
}

/// A run of ids with one owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Owner.
    pub owner: Owner,
    /// Policy turn index this segment belongs to (observations after turn t carry t).
    pub turn: usize,
    /// Context index (a new context starts when history is re-rendered).
    pub context: usize,
    /// Token ids.
    pub ids: Vec<u32>,
    /// Behaviour log-probs, one per id, for `Policy` segments (empty otherwise).
    pub logprobs: Vec<f32>,
    /// Finish reason of a `Policy` segment.
    pub finish: Option<FinishReason>,
    /// For `Policy`: byte offset in the turn text where each id starts, plus the
    /// end (`ids.len() + 1` entries). Empty otherwise.
    pub byte_offsets: Vec<usize>,
    /// Debug text copy.
    pub text: String,
}

impl Segment {
    /// A non-policy segment.
    pub fn new(owner: Owner, turn: usize, ids: Vec<u32>, text: impl Into<String>) -> Self {
        Segment {
            owner,
            turn,
            context: 0,
            ids,
            logprobs: Vec::new(),
            finish: None,
            byte_offsets: Vec::new(),
            text: text.into(),
        }
    }
}

/// An ordered list of segments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// Segments in sequence order.
    pub segments: Vec<Segment>,
    /// Renderer (template) name and version used.
    pub renderer: String,
}

/// Which training view to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    /// One row per episode: prompt + [policy, env, policy, …]. Needs a single context.
    Interleaved,
    /// One row per policy turn: prompt = everything before the turn in its context.
    StepWise,
    /// One row per context (interleaved within each context).
    Merged,
}

/// One training row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRow {
    /// Prompt ids (mask 0, not part of the response arrays).
    pub prompt_ids: Vec<u32>,
    /// Response ids.
    pub response_ids: Vec<u32>,
    /// Loss mask over `response_ids`: 1 exactly on policy-sampled ids.
    pub mask: Vec<u8>,
    /// Behaviour log-probs over `response_ids` (0 where `mask` is 0).
    pub logprobs: Vec<f32>,
    /// Policy turns covered (`start..end`).
    pub turn_range: Range<usize>,
    /// Context index.
    pub context: usize,
    /// Position of `response_ids[0]` in the whole transcript sequence.
    pub response_offset: usize,
    /// GRPO group index (set by the episode).
    pub group: usize,
    /// Sample index within the group (set by the episode).
    pub sample: usize,
    /// Seat (multi-agent; 0 otherwise).
    pub seat: usize,
    /// Whether the last policy turn in the row was cut by the per-turn length cap.
    pub truncated: bool,
}

impl Transcript {
    /// An empty transcript for a renderer.
    pub fn new(renderer: impl Into<String>) -> Self {
        Transcript {
            segments: Vec::new(),
            renderer: renderer.into(),
        }
    }
    /// Appends a segment (empty segments are dropped).
    pub fn push(&mut self, seg: Segment) {
        if !seg.ids.is_empty() {
            self.segments.push(seg);
        }
    }
    /// Total number of ids.
    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.ids.len()).sum()
    }
    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// All ids in order.
    pub fn ids(&self) -> Vec<u32> {
        self.segments
            .iter()
            .flat_map(|s| s.ids.iter().copied())
            .collect()
    }
    /// Loss mask over all ids.
    pub fn loss_mask(&self) -> Vec<u8> {
        self.segments
            .iter()
            .flat_map(|s| std::iter::repeat_n(u8::from(s.owner == Owner::Policy), s.ids.len()))
            .collect()
    }
    /// Owner of every id.
    pub fn owners(&self) -> Vec<Owner> {
        self.segments
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.owner, s.ids.len()))
            .collect()
    }
    /// Behaviour log-probs over all ids (0 on non-policy ids).
    pub fn logprobs(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len());
        for s in &self.segments {
            if s.owner == Owner::Policy && s.logprobs.len() == s.ids.len() {
                out.extend_from_slice(&s.logprobs);
            } else {
                out.extend(std::iter::repeat_n(0.0, s.ids.len()));
            }
        }
        out
    }
    /// Start position of each segment.
    pub fn segment_starts(&self) -> Vec<usize> {
        let mut pos = 0;
        self.segments
            .iter()
            .map(|s| {
                let p = pos;
                pos += s.ids.len();
                p
            })
            .collect()
    }
    /// Number of policy ids.
    pub fn policy_tokens(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| s.owner == Owner::Policy)
            .map(|s| s.ids.len())
            .sum()
    }
    /// Range of the policy ids of `turn` in the whole sequence.
    pub fn policy_span(&self, turn: usize) -> Option<Range<usize>> {
        let starts = self.segment_starts();
        self.segments
            .iter()
            .zip(starts)
            .find(|(s, _)| s.owner == Owner::Policy && s.turn == turn)
            .map(|(s, st)| st..st + s.ids.len())
    }
    /// Maps a byte range of `turn`'s policy text to the token range (in the whole
    /// sequence) of the ids that overlap it.
    pub fn byte_span_to_tokens(&self, turn: usize, bytes: Range<usize>) -> Option<Range<usize>> {
        let starts = self.segment_starts();
        let (seg, st) = self
            .segments
            .iter()
            .zip(starts)
            .find(|(s, _)| s.owner == Owner::Policy && s.turn == turn)?;
        let off = &seg.byte_offsets;
        if off.len() != seg.ids.len() + 1 {
            return None;
        }
        let n = seg.ids.len();
        let first = (0..n).find(|&i| off[i + 1] > bytes.start)?;
        let last = (0..n)
            .rev()
            .find(|&i| off[i] < bytes.end.max(bytes.start + 1))?;
        (first <= last).then_some(st + first..st + last + 1)
    }
    /// Index of the last policy id at or before position `pos`.
    pub fn last_policy_at_or_before(&self, pos: usize) -> Option<usize> {
        let mask = self.loss_mask();
        (0..=pos.min(mask.len().checked_sub(1)?))
            .rev()
            .find(|&i| mask[i] == 1)
    }
    /// Number of contexts.
    pub fn contexts(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.context + 1)
            .max()
            .unwrap_or(0)
    }

    fn context_row(&self, ctx: usize) -> Option<TrainingRow> {
        let starts = self.segment_starts();
        let segs: Vec<(usize, &Segment)> = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.context == ctx)
            .collect();
        let first_non_prompt = segs.iter().position(|(_, s)| s.owner != Owner::Prompt)?;
        let mut row = TrainingRow {
            prompt_ids: Vec::new(),
            response_ids: Vec::new(),
            mask: Vec::new(),
            logprobs: Vec::new(),
            turn_range: 0..0,
            context: ctx,
            response_offset: starts[segs[first_non_prompt].0],
            group: 0,
            sample: 0,
            seat: 0,
            truncated: false,
        };
        let mut turns: Vec<usize> = Vec::new();
        for (k, (_, s)) in segs.iter().enumerate() {
            if k < first_non_prompt {
                row.prompt_ids.extend_from_slice(&s.ids);
                continue;
            }
            push_seg(&mut row, s);
            if s.owner == Owner::Policy {
                turns.push(s.turn);
                row.truncated = s.finish == Some(FinishReason::Length);
            }
        }
        row.turn_range = match (turns.first(), turns.last()) {
            (Some(a), Some(b)) => *a..*b + 1,
            _ => 0..0,
        };
        Some(row)
    }

    /// One interleaved row. Errors when the transcript has several contexts
    /// (history was re-rendered, so the row would not be what the model saw).
    pub fn interleaved(&self) -> Result<TrainingRow> {
        if self.contexts() > 1 {
            return Err(EnvError::View {
                view: "interleaved".into(),
                reason: format!(
                    "transcript has {} contexts (history was re-rendered); use the step-wise or merged view",
                    self.contexts()
                ),
            });
        }
        self.context_row(0).ok_or_else(|| EnvError::View {
            view: "interleaved".into(),
            reason: "transcript has no response ids".into(),
        })
    }

    /// One row per context.
    pub fn merged(&self) -> Vec<TrainingRow> {
        (0..self.contexts())
            .filter_map(|c| self.context_row(c))
            .collect()
    }

    /// One row per policy turn: prompt = every id before the turn in its context,
    /// response = the turn's policy ids only.
    pub fn step_wise(&self) -> Vec<TrainingRow> {
        let starts = self.segment_starts();
        let mut rows = Vec::new();
        for (i, s) in self.segments.iter().enumerate() {
            if s.owner != Owner::Policy {
                continue;
            }
            let prompt_ids: Vec<u32> = self.segments[..i]
                .iter()
                .filter(|p| p.context == s.context)
                .flat_map(|p| p.ids.iter().copied())
                .collect();
            let mut row = TrainingRow {
                prompt_ids,
                response_ids: Vec::new(),
                mask: Vec::new(),
                logprobs: Vec::new(),
                turn_range: s.turn..s.turn + 1,
                context: s.context,
                response_offset: starts[i],
                group: 0,
                sample: 0,
                seat: 0,
                truncated: s.finish == Some(FinishReason::Length),
            };
            push_seg(&mut row, s);
            rows.push(row);
        }
        rows
    }

    /// The rows of a view.
    pub fn view(&self, kind: ViewKind) -> Result<Vec<TrainingRow>> {
        Ok(match kind {
            ViewKind::Interleaved => vec![self.interleaved()?],
            ViewKind::StepWise => self.step_wise(),
            ViewKind::Merged => self.merged(),
        })
    }
}

fn push_seg(row: &mut TrainingRow, s: &Segment) {
    let policy = s.owner == Owner::Policy;
    row.response_ids.extend_from_slice(&s.ids);
    row.mask
        .extend(std::iter::repeat_n(u8::from(policy), s.ids.len()));
    if policy && s.logprobs.len() == s.ids.len() {
        row.logprobs.extend_from_slice(&s.logprobs);
    } else {
        row.logprobs.extend(std::iter::repeat_n(0.0, s.ids.len()));
    }
}
