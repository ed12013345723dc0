//! Reward components (`[[reward]]`): each a verifier or a shaper with a weight. The scalar
//! reward GRPO optimises is their weighted sum; every component also reaches the scored batch
//! by name (GDPO normalises each separately) and the metrics (`reward/<name>`).
//!
//! A component that fails on one sample (a verifier error, a non-finite value) gives that
//! sample 0 and is counted in the metrics with its reason (`reward/<name>/errors`,
//! `reward/<name>/last_error`); the run goes on.

use std::collections::BTreeSet;

use grpo_envs::task::TaskInstance;
use grpo_rewards::shaping::{
    CosineParams, OverlongMode, cosine_length_reward, dapo_overlong_penalty, prorl_stop_penalty,
    rapo_absolute, rapo_relative, tag_pattern,
};
use regex::Regex;

use crate::config::{RewardComponentSection, RewardSource};
use crate::error::{Result, TrainError};
use crate::task::{Score, TaskSource};

/// The component every run has when `[[reward]]` is absent: the task's verifier, weight 1.
pub const DEFAULT_COMPONENT: &str = "correct";

/// The compiled reward components of a run.
#[derive(Debug)]
pub struct RewardFns {
    comps: Vec<Component>,
}

#[derive(Debug)]
struct Component {
    name: String,
    weight: f64,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Task,
    Math(grpo_rewards::math::MathConfig),
    Format(Regex),
    Overlong {
        max_len: usize,
        buffer: usize,
        factor: f64,
        mode: OverlongMode,
    },
    Cosine(CosineParams),
    ProrlStop(f64),
    RapoAbsolute,
    RapoRelative,
    /// A grpo-rewards verifier on the dataset row (code, toolcall, gui).
    Verifier(grpo_rewards::verifier::VerifierConfig),
}

/// What the components see of one completion.
#[derive(Debug, Clone, Copy)]
pub struct SampleView<'a> {
    /// The task instance the completion answers.
    pub inst: &'a TaskInstance,
    /// Index of the instance's prompt in the batch (RAPO's relative reward compares prompts).
    pub prompt: usize,
    /// The completion text.
    pub text: &'a str,
    /// Its length in tokens.
    pub len_tokens: usize,
    /// Cut at the length limit.
    pub truncated: bool,
    /// The task verifier's verdict.
    pub task: Score,
}

/// Component values of a batch of completions.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardTable {
    /// Component names, in config order.
    pub names: Vec<String>,
    /// Their weights.
    pub weights: Vec<f64>,
    /// `values[c][row]`.
    pub values: Vec<Vec<f64>>,
    /// Weighted sum per row.
    pub scalar: Vec<f64>,
    /// Per component: samples that failed and the last reason.
    pub errors: Vec<(usize, Option<String>)>,
}

fn config_err(key: String, message: String) -> TrainError {
    TrainError::Config {
        location: Some(key),
        message,
    }
}

impl RewardFns {
    /// Compiles `sections` (the run's `[[reward]]` entries; empty = the task's verifier as
    /// `correct`). Unknown or unusable components are errors naming the entry.
    pub fn new(sections: &[RewardComponentSection], task: &TaskSource) -> Result<Self> {
        if sections.is_empty() {
            return Ok(Self {
                comps: vec![Component {
                    name: DEFAULT_COMPONENT.into(),
                    weight: 1.0,
                    kind: Kind::Task,
                }],
            });
        }
        let mut seen = BTreeSet::new();
        let mut comps = Vec::with_capacity(sections.len());
        for (i, s) in sections.iter().enumerate() {
            let name = s.name();
            let key = format!("reward[{i}] (`{name}`)");
            if name.is_empty() || name.contains(['/', ' ']) {
                return Err(config_err(
                    key,
                    "a component name must be non-empty, without '/' or spaces".into(),
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(config_err(
                    key,
                    format!("two components are named `{name}`; set `name` on one of them"),
                ));
            }
            if !s.weight.is_finite() {
                return Err(config_err(
                    format!("{key}.weight"),
                    format!("must be finite, got {}", s.weight),
                ));
            }
            let kind = match &s.source {
                RewardSource::Task {} => Kind::Task,
                RewardSource::Math(c) => Kind::Math(c.clone()),
                RewardSource::Format { pattern, tags } => {
                    let re = match pattern {
                        Some(p) => Regex::new(&format!("(?s){p}")).map_err(|e| {
                            config_err(format!("{key}.source.pattern"), e.to_string())
                        })?,
                        None => {
                            let t: Vec<&str> = match tags {
                                Some(t) => t.iter().map(String::as_str).collect(),
                                None => vec!["think", "answer"],
                            };
                            tag_pattern(&t).map_err(|e| {
                                config_err(format!("{key}.source.tags"), e.to_string())
                            })?
                        }
                    };
                    Kind::Format(re)
                }
                RewardSource::DapoOverlong {
                    max_len,
                    buffer,
                    factor,
                    mode,
                } => {
                    if *buffer == 0 || buffer > max_len {
                        return Err(config_err(
                            format!("{key}.source.buffer"),
                            format!("need 0 < buffer <= max_len, got {buffer} and {max_len}"),
                        ));
                    }
                    Kind::Overlong {
                        max_len: *max_len,
                        buffer: *buffer,
                        factor: *factor,
                        mode: *mode,
                    }
                }
                RewardSource::CosineLength(p) => Kind::Cosine(*p),
                RewardSource::ProrlStop { coef } => {
                    if !coef.is_finite() {
                        return Err(config_err(
                            format!("{key}.source.coef"),
                            "must be finite".into(),
                        ));
                    }
                    Kind::ProrlStop(*coef)
                }
                RewardSource::RapoAbsolute {} => Kind::RapoAbsolute,
                RewardSource::RapoRelative {} => Kind::RapoRelative,
                RewardSource::Otc { .. } => {
                    return Err(config_err(
                        key,
                        "`otc` needs the number of tool calls of each completion, which only \
                         environment tasks record; single-turn tasks make no tool calls"
                            .into(),
                    ));
                }
                RewardSource::Code {} | RewardSource::Toolcall(_) | RewardSource::Gui { .. } => {
                    use grpo_rewards::verifier::VerifierConfig;
                    let (cfg, need): (VerifierConfig, &[&[&str]]) = match &s.source {
                        RewardSource::Code {} => (
                            VerifierConfig::Code,
                            &[&["test", "entry_point"], &["tests"]],
                        ),
                        RewardSource::Toolcall(c) => (
                            VerifierConfig::Toolcall(c.clone()),
                            &[&["functions", "possible_answer"]],
                        ),
                        RewardSource::Gui { profile, options } => (
                            VerifierConfig::Gui {
                                profile: *profile,
                                options: options.clone(),
                            },
                            &[],
                        ),
                        _ => unreachable!("matched above"),
                    };
                    let has = |set: &&[&str]| set.iter().all(|c| task.has_column(c));
                    if !task.is_dataset() || !(need.is_empty() || need.iter().any(has)) {
                        return Err(config_err(
                            key,
                            format!(
                                "`{}` reads dataset columns ({}); list them in task.columns of a \
                                 dataset task",
                                s.source.type_name(),
                                if need.is_empty() {
                                    "the gold action".to_string()
                                } else {
                                    need.iter()
                                        .map(|set| set.join(" + "))
                                        .collect::<Vec<_>>()
                                        .join(" or ")
                                }
                            ),
                        ));
                    }
                    Kind::Verifier(cfg)
                }
            };
            comps.push(Component {
                name,
                weight: s.weight,
                kind,
            });
        }
        Ok(Self { comps })
    }

    /// Component names, in order.
    pub fn names(&self) -> Vec<String> {
        self.comps.iter().map(|c| c.name.clone()).collect()
    }

    /// Scores `samples` with every component.
    pub fn score(&self, task: &TaskSource, samples: &[SampleView<'_>]) -> RewardTable {
        let n = samples.len();
        let mut values = Vec::with_capacity(self.comps.len());
        let mut errors = Vec::with_capacity(self.comps.len());
        for c in &self.comps {
            let mut v = vec![0.0; n];
            let mut errs = 0usize;
            let mut last = None;
            let mut fail = |i: usize, why: String, v: &mut Vec<f64>| {
                v[i] = 0.0;
                errs += 1;
                last = Some(format!("sample {i}: {why}"));
            };
            match &c.kind {
                Kind::RapoRelative => {
                    for (i, r) in rapo_relative_rows(task, samples).into_iter().enumerate() {
                        match r {
                            Ok(x) => v[i] = x,
                            Err(why) => fail(i, why, &mut v),
                        }
                    }
                }
                kind => {
                    for (i, s) in samples.iter().enumerate() {
                        match one(kind, task, s) {
                            Ok(x) if x.is_finite() => v[i] = x,
                            Ok(x) => fail(i, format!("non-finite value {x}"), &mut v),
                            Err(why) => fail(i, why, &mut v),
                        }
                    }
                }
            }
            values.push(v);
            errors.push((errs, last));
        }
        let scalar = (0..n)
            .map(|i| {
                self.comps
                    .iter()
                    .zip(&values)
                    .map(|(c, v)| c.weight * v[i])
                    .sum()
            })
            .collect();
        RewardTable {
            names: self.names(),
            weights: self.comps.iter().map(|c| c.weight).collect(),
            values,
            scalar,
            errors,
        }
    }
}

fn one(kind: &Kind, task: &TaskSource, s: &SampleView<'_>) -> std::result::Result<f64, String> {
    Ok(match kind {
        Kind::Task => s.task.reward(),
        Kind::Math(cfg) => {
            grpo_rewards::math::verify(&s.inst.answer, s.text, cfg)
                .map_err(|e| e.to_string())?
                .reward
        }
        Kind::Format(re) => grpo_rewards::shaping::format_reward(re, s.text),
        Kind::Overlong {
            max_len,
            buffer,
            factor,
            mode,
        } => dapo_overlong_penalty(s.len_tokens, *max_len, *buffer, *factor, *mode),
        Kind::Cosine(p) => cosine_length_reward(s.text.chars().count(), s.task.correct > 0.0, p),
        Kind::ProrlStop(coef) => prorl_stop_penalty(s.task.correct, s.truncated, *coef),
        Kind::RapoAbsolute => {
            let gold = gold_number(task, s.inst)?;
            match task.answer_number(s.text) {
                Some(pred) => rapo_absolute(pred, gold),
                None => 0.0,
            }
        }
        Kind::RapoRelative => unreachable!("scored per batch"),
        Kind::Verifier(v) => task.verify(v, s.inst, s.text)?.0,
    })
}

fn gold_number(task: &TaskSource, inst: &TaskInstance) -> std::result::Result<f64, String> {
    task.gold_number(inst)
        .ok_or_else(|| format!("gold answer {:?} is not a number", inst.answer))
}

/// RAPO's relative reward over the prompts of the batch: completions of prompt `i` are
/// ranked against the other prompts' golds. A completion without a number gets 0; a
/// prompt whose gold is not a number is an error for its completions.
fn rapo_relative_rows(
    task: &TaskSource,
    samples: &[SampleView<'_>],
) -> Vec<std::result::Result<f64, String>> {
    let n_prompts = samples.iter().map(|s| s.prompt + 1).max().unwrap_or(0);
    let mut gold: Vec<Option<f64>> = vec![None; n_prompts];
    let mut preds: Vec<Vec<f64>> = vec![Vec::new(); n_prompts];
    for s in samples {
        gold[s.prompt] = task.gold_number(s.inst);
        if let Some(p) = task.answer_number(s.text) {
            preds[s.prompt].push(p);
        }
    }
    // Prompts with a numeric gold and at least one numeric answer take part.
    let live: Vec<usize> = (0..n_prompts)
        .filter(|&k| gold[k].is_some() && !preds[k].is_empty())
        .collect();
    let golds: Vec<f64> = live.iter().filter_map(|&k| gold[k]).collect();
    let lists: Vec<Vec<f64>> = live.iter().map(|&k| preds[k].clone()).collect();
    let scored = rapo_relative(&lists, &golds);
    let mut next = vec![0usize; n_prompts];
    samples
        .iter()
        .map(|s| {
            if gold[s.prompt].is_none() {
                return Err(format!("gold answer {:?} is not a number", s.inst.answer));
            }
            if task.answer_number(s.text).is_none() {
                return Ok(0.0);
            }
            let pos = live.iter().position(|&k| k == s.prompt).unwrap_or(0);
            let j = next[s.prompt];
            next[s.prompt] += 1;
            Ok(scored
                .get(pos)
                .and_then(|r| r.get(j))
                .copied()
                .unwrap_or(0.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TaskSection;

    fn dataset_task(dir: &std::path::Path, answer: &str) -> TaskSource {
        let f = dir.join("d.jsonl");
        std::fs::write(
            &f,
            format!("{{\"question\": \"q1\", \"gold\": {answer:?}}}\n{{\"question\": \"q2\", \"gold\": \"7\"}}\n"),
        )
        .unwrap();
        TaskSource::new(
            &TaskSection::Dataset {
                train: f.clone(),
                test: f,
                prompt_column: "question".into(),
                answer_column: "gold".into(),
                verifier: "math".into(),
                verifier_options: None,
                columns: Vec::new(),
                stop: None,
                chat_template: false,
            },
            1,
        )
        .unwrap()
    }

    fn section(toml_text: &str) -> Vec<RewardComponentSection> {
        #[derive(serde::Deserialize)]
        struct W {
            reward: Vec<RewardComponentSection>,
        }
        toml::from_str::<W>(toml_text).unwrap().reward
    }

    #[test]
    fn a_failing_sample_scores_zero_with_its_reason_and_the_others_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let task = dataset_task(dir.path(), "seventeen");
        let fns = RewardFns::new(
            &section(
            "[[reward]]\nsource = { type = \"rapo_absolute\" }\n[[reward]]\nname = \"fmt\"\nweight = 2.0\nsource = { type = \"format\", pattern = \"[0-9]+\" }",
            ),
            &task,
        )
        .unwrap();
        let bad = TaskInstance {
            prompt: "q1".into(),
            answer: "seventeen".into(),
            gold_completion: String::new(),
        };
        let good = TaskInstance {
            prompt: "q2".into(),
            answer: "7".into(),
            gold_completion: String::new(),
        };
        let score = Score {
            correct: 0.0,
            format: 0.0,
            partial: 0.0,
        };
        let view = |inst, prompt, text| SampleView {
            inst,
            prompt,
            text,
            len_tokens: 1,
            truncated: false,
            task: score,
        };
        let t = fns.score(&task, &[view(&bad, 0, "17"), view(&good, 1, "7")]);
        assert_eq!(
            t.names,
            vec!["rapo_absolute".to_string(), "fmt".to_string()]
        );
        assert_eq!(t.values[0][0], 0.0);
        assert!(t.values[0][1] > 0.99);
        assert_eq!(t.errors[0].0, 1);
        assert!(t.errors[0].1.as_deref().unwrap().contains("not a number"));
        assert_eq!(t.values[1], vec![1.0, 1.0]);
        assert!((t.scalar[1] - (t.values[0][1] + 2.0)).abs() < 1e-12);
    }

    #[test]
    fn bad_components_are_refused_naming_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let task = dataset_task(dir.path(), "1");
        let e = RewardFns::new(&section(
            "[[reward]]\nsource = { type = \"task\" }\n[[reward]]\nname = \"task\"\nsource = { type = \"format\" }",
        ), &task)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("reward[1]") && e.contains("two components"),
            "{e}"
        );
        let e = RewardFns::new(
            &section("[[reward]]\nsource = { type = \"format\", pattern = \"(\" }"),
            &task,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("reward[0]") && e.contains("pattern"), "{e}");
        let e = RewardFns::new(&section("[[reward]]\nsource = { type = \"otc\" }"), &task)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tool calls"), "{e}");
        let e = RewardFns::new(&section("[[reward]]\nsource = { type = \"code\" }"), &task)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tests"), "{e}");
    }
}
