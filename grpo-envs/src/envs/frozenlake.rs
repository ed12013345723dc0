//! FrozenLake (Gymnasium, RAGEN): reach the goal `G` from the start without
//! stepping into a hole. On slippery ice the move goes the intended way with
//! probability `success_rate`, else to one of the two perpendicular directions.
//! Maps are sampled like Gymnasium's (`p_frozen`, accepted when a path exists);
//! slips draw from the task's noise stream.
//!
//! Anchor reward (Gymnasium): 1 on reaching the goal, else 0; RAGEN adds −0.1 per
//! invalid turn. Ours: the same, as `success` (outcome) and `invalid_action` (step).

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::Message;
use crate::parse::{Dir, parse_directions, truncation_note};
use crate::seed::{derive_seed, rng};

/// FrozenLake config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrozenLakeConfig {
    /// Side length.
    pub size: usize,
    /// Probability a cell is frozen (not a hole).
    pub p_frozen: f64,
    /// Slippery ice.
    pub slippery: bool,
    /// Probability the intended move happens when slippery.
    pub success_rate: f64,
    /// Maximum turns.
    pub max_turns: usize,
    /// Actions allowed per turn (`A || B`).
    pub actions_per_turn: usize,
    /// Penalty for an invalid turn.
    pub invalid_penalty: f64,
}

impl Default for FrozenLakeConfig {
    fn default() -> Self {
        FrozenLakeConfig {
            size: 4,
            p_frozen: 0.8,
            slippery: true,
            success_rate: 1.0 / 3.0,
            max_turns: 10,
            actions_per_turn: 1,
            invalid_penalty: -0.1,
        }
    }
}

/// The FrozenLake env.
#[derive(Debug, Clone)]
pub struct FrozenLakeEnv {
    cfg: FrozenLakeConfig,
    holes: Vec<bool>,
    pos: (usize, usize),
    noise: Option<ChaCha8Rng>,
    status: Option<bool>,
}

impl FrozenLakeEnv {
    /// A new env.
    pub fn new(cfg: FrozenLakeConfig) -> Result<Self> {
        if !(2..=12).contains(&cfg.size) {
            return Err(EnvError::param("frozenlake.size", "must be in 2..=12"));
        }
        if !(0.0..=1.0).contains(&cfg.p_frozen) || !(0.0..=1.0).contains(&cfg.success_rate) {
            return Err(EnvError::param(
                "frozenlake.p_frozen/success_rate",
                "must be probabilities",
            ));
        }
        Ok(FrozenLakeEnv {
            cfg,
            holes: Vec::new(),
            pos: (0, 0),
            noise: None,
            status: None,
        })
    }
    fn n(&self) -> usize {
        self.cfg.size
    }
    fn goal(&self) -> (usize, usize) {
        (self.n() - 1, self.n() - 1)
    }
    fn hole(&self, p: (usize, usize)) -> bool {
        self.holes[p.0 * self.n() + p.1]
    }
    fn moved(&self, p: (usize, usize), d: Dir) -> (usize, usize) {
        let (dr, dc) = d.delta();
        let r = p.0 as i32 + dr;
        let c = p.1 as i32 + dc;
        let n = self.n() as i32;
        if r < 0 || c < 0 || r >= n || c >= n {
            p
        } else {
            (r as usize, c as usize)
        }
    }
    /// Shortest safe path from `from` to the goal (directions), if any.
    pub fn shortest_path(&self, from: (usize, usize)) -> Option<Vec<Dir>> {
        let n = self.n();
        let mut prev: Vec<Option<((usize, usize), Dir)>> = vec![None; n * n];
        let mut seen = vec![false; n * n];
        let mut q = VecDeque::new();
        seen[from.0 * n + from.1] = true;
        q.push_back(from);
        while let Some(p) = q.pop_front() {
            if p == self.goal() {
                let mut path = Vec::new();
                let mut cur = p;
                while let Some((pp, d)) = prev[cur.0 * n + cur.1] {
                    path.push(d);
                    cur = pp;
                }
                path.reverse();
                return Some(path);
            }
            for d in Dir::ALL {
                let m = self.moved(p, d);
                if !seen[m.0 * n + m.1] && !self.hole(m) {
                    seen[m.0 * n + m.1] = true;
                    prev[m.0 * n + m.1] = Some((p, d));
                    q.push_back(m);
                }
            }
        }
        None
    }
    /// The grid in RAGEN symbols.
    pub fn grid(&self) -> String {
        let n = self.n();
        let mut s = String::new();
        for r in 0..n {
            for c in 0..n {
                let p = (r, c);
                let ch = if p == self.pos {
                    if self.hole(p) {
                        'X'
                    } else if p == self.goal() {
                        '√'
                    } else {
                        'P'
                    }
                } else if self.hole(p) {
                    'O'
                } else if p == self.goal() {
                    'G'
                } else {
                    '_'
                };
                s.push(ch);
            }
            s.push('\n');
        }
        s
    }
    fn apply(&mut self, d: Dir) {
        let actual = if self.cfg.slippery {
            let noise = self.noise.get_or_insert_with(|| rng(0));
            let u: f64 = noise.random();
            let (l, r) = match d {
                Dir::Up | Dir::Down => (Dir::Left, Dir::Right),
                Dir::Left | Dir::Right => (Dir::Up, Dir::Down),
            };
            let rest = (1.0 - self.cfg.success_rate) / 2.0;
            if u < self.cfg.success_rate {
                d
            } else if u < self.cfg.success_rate + rest {
                l
            } else {
                r
            }
        } else {
            d
        };
        self.pos = self.moved(self.pos, actual);
        if self.hole(self.pos) {
            self.status = Some(false);
        } else if self.pos == self.goal() {
            self.status = Some(true);
        }
    }
}

const LEGEND: &str =
    "Symbols: P you, _ frozen ice, O hole, G goal, X you in a hole, √ you on the goal.";

impl Env for FrozenLakeEnv {
    fn name(&self) -> &str {
        "frozenlake"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let n = self.n();
        let mut found = false;
        for attempt in 0..1000u64 {
            let mut r = rng(derive_seed(task.seed, "retry", &[attempt]));
            self.holes = (0..n * n)
                .map(|_| !r.random_bool(self.cfg.p_frozen))
                .collect();
            self.holes[0] = false;
            self.holes[n * n - 1] = false;
            self.pos = (0, 0);
            if self.shortest_path((0, 0)).is_some() {
                found = true;
                break;
            }
        }
        if !found {
            return Err(EnvError::Generation {
                env: "frozenlake".into(),
                seed: task.seed,
                reason: "no map with a path in 1000 tries".into(),
            });
        }
        self.noise = Some(rng(task.noise()));
        self.status = None;
        let slip = if self.cfg.slippery {
            " The ice is slippery: you may move perpendicular to the direction you chose."
        } else {
            ""
        };
        Ok(Reset {
            messages: vec![Message::user(format!(
                "You are on a frozen lake. Reach the goal G without falling into a hole.{slip} {LEGEND}\nAnswer with one move in <answer></answer>, e.g. <answer>Down</answer> (Up, Down, Left, Right).\n{}",
                self.grid()
            ))],
            tools: vec![],
            stop: vec!["</answer>".into()],
            state_key: self.state_key(),
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        if self.holes.is_empty() || self.status.is_some() {
            return Err(EnvError::Protocol {
                env: "frozenlake".into(),
                reason: "step before reset or after the episode ended".into(),
            });
        }
        let (dirs, span) = match parse_directions(turn.text, self.cfg.actions_per_turn) {
            Ok(x) => x,
            Err(e) => {
                let mut o = StepOutcome::invalid(
                    format!(
                        "Invalid action: {e}{}.\n{}",
                        truncation_note(turn.truncated()),
                        self.grid()
                    ),
                    self.cfg.invalid_penalty,
                );
                o.reward.anchor = self.cfg.invalid_penalty;
                o.state_key = self.state_key();
                return Ok(o);
            }
        };
        for d in &dirs {
            self.apply(*d);
            if self.status.is_some() {
                break;
            }
        }
        let key: Vec<&str> = dirs.iter().map(|d| d.name()).collect();
        let mut o = StepOutcome {
            action_valid: true,
            action_span: Some(span),
            action_key: Some(key.join(",")),
            state_key: self.state_key(),
            ..Default::default()
        };
        match self.status {
            Some(success) => o.end = Some(EndSignal::Terminated { success }),
            None => {
                o.observation = vec![Message::env(self.grid())];
                o.end = Some(EndSignal::Continue);
            }
        }
        Ok(o)
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        let s = f64::from(u8::from(self.status == Some(true)));
        RewardBreakdown::zero().with("success", s).anchor(s)
    }
    fn state_key(&self) -> Option<String> {
        Some(format!("{},{}", self.pos.0, self.pos.1))
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: self.cfg.max_turns,
            max_tokens_per_turn: 256,
            max_observation_tokens: 256,
        }
    }
    fn render_debug(&self) -> Option<String> {
        (!self.holes.is_empty()).then(|| self.grid())
    }
    fn oracle_action(&self) -> Option<String> {
        let path = self.shortest_path(self.pos)?;
        path.first()
            .map(|d| format!("<answer>{}</answer>", d.title()))
    }
}
