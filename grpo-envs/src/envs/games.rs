//! Multi-agent self-play games (TextArena, SPIRAL): tic-tac-toe and Kuhn poker
//! behind a [`MultiAgentEnv`] trait (per-seat observations with private
//! information, per-seat rewards), a [`VsBot`] adapter that turns a game into a
//! single-policy [`Env`] against a seeded scripted bot (minimax / Nash strategy /
//! random legal), and [`play_self`] to run both seats with one policy.
//!
//! Anchor reward (TextArena/SPIRAL): zero-sum +1/−1 (draw 0) at game end; invalid
//! moves count against an allowance and then lose the game. Ours: the same
//! terminal rewards as `outcome`, plus an `invalid_action` step component
//! (default 0, reported).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::Message;
use crate::parse::truncation_note;
use crate::seed::{derive_seed, rng};

/// Scripted opponent kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotKind {
    /// The game's strong strategy (minimax for tic-tac-toe, a Nash strategy for Kuhn poker).
    #[default]
    Optimal,
    /// Uniformly random legal move.
    Random,
}

/// A turn-based game for several seats.
pub trait MultiAgentEnv: Send {
    /// Stable name.
    fn name(&self) -> &str;
    /// Number of seats.
    fn seats(&self) -> usize;
    /// Starts a game from the seed; returns each seat's rules message.
    fn reset(&mut self, seed: u64) -> Vec<String>;
    /// The seat to act (`None` when the game is over).
    fn to_act(&self) -> Option<usize>;
    /// What `seat` sees now (its private information included).
    fn observation(&self, seat: usize) -> String;
    /// Legal moves for the seat to act, in the canonical text form (e.g. `[4]`).
    fn legal(&self) -> Vec<String>;
    /// Applies the acting seat's move given as policy text; `Err` explains an
    /// illegal or unparsable move (the state is unchanged).
    fn apply(&mut self, text: &str) -> std::result::Result<String, String>;
    /// Final per-seat rewards (zero-sum) once the game is over.
    fn returns(&self) -> Vec<f64>;
    /// A scripted move for the seat to act.
    fn bot_move(&self, kind: BotKind, rng: &mut ChaCha8Rng) -> String;
    /// Canonical state key as seen by `seat` (public state + its private information).
    fn state_key(&self, seat: usize) -> String;
}

/// Tic-tac-toe: seat 0 plays X and moves first. Moves `[k]`, k in 0..=8.
#[derive(Debug, Clone, Default)]
pub struct TicTacToe {
    board: [Option<usize>; 9],
    turn: usize,
    forfeit: Option<usize>,
}

const LINES: [[usize; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

impl TicTacToe {
    fn winner(b: &[Option<usize>; 9]) -> Option<usize> {
        LINES
            .iter()
            .find_map(|l| match (b[l[0]], b[l[1]], b[l[2]]) {
                (Some(a), Some(x), Some(y)) if a == x && x == y => Some(a),
                _ => None,
            })
    }
    fn full(b: &[Option<usize>; 9]) -> bool {
        b.iter().all(Option::is_some)
    }
    fn minimax(b: &mut [Option<usize>; 9], me: usize, turn: usize) -> i32 {
        if let Some(w) = Self::winner(b) {
            return if w == me { 10 } else { -10 };
        }
        if Self::full(b) {
            return 0;
        }
        let free: Vec<usize> = (0..9).filter(|&k| b[k].is_none()).collect();
        let mut scores = Vec::with_capacity(free.len());
        for k in free {
            b[k] = Some(turn);
            let s = Self::minimax(b, me, 1 - turn);
            b[k] = None;
            scores.push(s - s.signum());
        }
        let it = scores.into_iter();
        if turn == me {
            it.max().unwrap_or(0)
        } else {
            it.min().unwrap_or(0)
        }
    }
    fn render(&self) -> String {
        let c = |k: usize| match self.board[k] {
            Some(0) => "X".to_string(),
            Some(_) => "O".to_string(),
            None => k.to_string(),
        };
        format!(
            "{} | {} | {}\n{} | {} | {}\n{} | {} | {}",
            c(0),
            c(1),
            c(2),
            c(3),
            c(4),
            c(5),
            c(6),
            c(7),
            c(8)
        )
    }
}

fn bracket(text: &str) -> Option<String> {
    let s = text.rfind('[')?;
    let e = text[s..].find(']')? + s;
    Some(text[s + 1..e].trim().to_lowercase())
}

impl MultiAgentEnv for TicTacToe {
    fn name(&self) -> &str {
        "tictactoe"
    }
    fn seats(&self) -> usize {
        2
    }
    fn reset(&mut self, _seed: u64) -> Vec<String> {
        *self = TicTacToe::default();
        (0..2)
            .map(|s| format!("You are playing tic-tac-toe as {} ({}). Cells are numbered 0-8. On your turn reply with the cell in brackets, e.g. [4].", if s == 0 { "X" } else { "O" }, if s == 0 { "you move first" } else { "you move second" }))
            .collect()
    }
    fn to_act(&self) -> Option<usize> {
        (self.forfeit.is_none() && Self::winner(&self.board).is_none() && !Self::full(&self.board))
            .then_some(self.turn)
    }
    fn observation(&self, _seat: usize) -> String {
        format!("Board:\n{}", self.render())
    }
    fn legal(&self) -> Vec<String> {
        (0..9)
            .filter(|&k| self.board[k].is_none())
            .map(|k| format!("[{k}]"))
            .collect()
    }
    fn apply(&mut self, text: &str) -> std::result::Result<String, String> {
        let b = bracket(text).ok_or("no move in brackets found; reply like [4]")?;
        let k: usize = b
            .parse()
            .map_err(|_| format!("`[{b}]` is not a cell number 0-8"))?;
        if k > 8 || self.board[k].is_some() {
            return Err(format!(
                "cell {k} is not free; legal moves: {}",
                self.legal().join(" ")
            ));
        }
        self.board[k] = Some(self.turn);
        self.turn = 1 - self.turn;
        Ok(format!("[{k}]"))
    }
    fn returns(&self) -> Vec<f64> {
        if let Some(f) = self.forfeit {
            return (0..2).map(|s| if s == f { -1.0 } else { 1.0 }).collect();
        }
        match Self::winner(&self.board) {
            Some(w) => (0..2).map(|s| if s == w { 1.0 } else { -1.0 }).collect(),
            None => vec![0.0, 0.0],
        }
    }
    fn bot_move(&self, kind: BotKind, rng: &mut ChaCha8Rng) -> String {
        let free: Vec<usize> = (0..9).filter(|&k| self.board[k].is_none()).collect();
        if free.is_empty() {
            return "[0]".into();
        }
        let pick = match kind {
            BotKind::Random => free[rng.random_range(0..free.len())],
            BotKind::Optimal => {
                let mut b = self.board;
                let scored: Vec<(usize, i32)> = free
                    .iter()
                    .map(|&k| {
                        b[k] = Some(self.turn);
                        let s = Self::minimax(&mut b, self.turn, 1 - self.turn);
                        b[k] = None;
                        (k, s)
                    })
                    .collect();
                let best = scored.iter().map(|x| x.1).max().unwrap_or(0);
                let top: Vec<usize> = scored.iter().filter(|x| x.1 == best).map(|x| x.0).collect();
                top[rng.random_range(0..top.len())]
            }
        };
        format!("[{pick}]")
    }
    fn state_key(&self, _seat: usize) -> String {
        self.board
            .iter()
            .map(|c| match c {
                Some(0) => 'X',
                Some(_) => 'O',
                None => '.',
            })
            .collect()
    }
}

/// Kuhn poker (TextArena rules): J < Q < K, ante 1, moves `[check]`, `[bet]`,
/// `[call]`, `[fold]`; `rounds` hands with the first actor alternating; the seat
/// with more chips at the end wins (+1/−1, draw 0).
#[derive(Debug, Clone)]
pub struct KuhnPoker {
    /// Hands per game.
    pub rounds: usize,
    round: usize,
    cards: [u8; 2],
    history: Vec<&'static str>,
    chips: [i64; 2],
    deals: Vec<[u8; 2]>,
    log: Vec<String>,
}

impl Default for KuhnPoker {
    fn default() -> Self {
        KuhnPoker {
            rounds: 3,
            round: 0,
            cards: [0, 0],
            history: vec![],
            chips: [0, 0],
            deals: vec![],
            log: vec![],
        }
    }
}

fn card(c: u8) -> &'static str {
    ["J", "Q", "K"][c as usize % 3]
}

impl KuhnPoker {
    fn first(&self) -> usize {
        self.round % 2
    }
    fn actor(&self) -> usize {
        (self.first() + self.history.len()) % 2
    }
    fn settle(&mut self) {
        let f = self.first();
        let h: Vec<&str> = self.history.clone();
        let showdown = |stake: i64, s: &mut Self| {
            let w = if s.cards[0] > s.cards[1] { 0 } else { 1 };
            s.chips[w] += stake;
            s.chips[1 - w] -= stake;
            s.log.push(format!(
                "Hand {}: showdown, {} beats {}; seat {w} wins {stake}.",
                s.round + 1,
                card(s.cards[w]),
                card(s.cards[1 - w])
            ));
        };
        match h.as_slice() {
            ["check", "check"] => showdown(1, self),
            ["bet", "call"] | ["check", "bet", "call"] => showdown(2, self),
            ["bet", "fold"] | ["check", "bet", "fold"] => {
                let folder = (f + h.len() - 1) % 2;
                self.chips[folder] -= 1;
                self.chips[1 - folder] += 1;
                self.log.push(format!(
                    "Hand {}: seat {folder} folds; seat {} wins 1.",
                    self.round + 1,
                    1 - folder
                ));
            }
            _ => return,
        }
        self.round += 1;
        self.history.clear();
        if self.round < self.rounds {
            self.cards = self.deals[self.round];
        }
    }
    fn hand_over(h: &[&str]) -> bool {
        matches!(
            h,
            ["check", "check"]
                | ["bet", "call"]
                | ["bet", "fold"]
                | ["check", "bet", "call"]
                | ["check", "bet", "fold"]
        )
    }
}

impl MultiAgentEnv for KuhnPoker {
    fn name(&self) -> &str {
        "kuhn-poker"
    }
    fn seats(&self) -> usize {
        2
    }
    fn reset(&mut self, seed: u64) -> Vec<String> {
        let mut r = rng(seed);
        let rounds = self.rounds.max(1);
        *self = KuhnPoker {
            rounds,
            ..KuhnPoker::default()
        };
        self.deals = (0..rounds)
            .map(|_| {
                let a = r.random_range(0..3u8);
                let b = (a + r.random_range(1..3u8)) % 3;
                [a, b]
            })
            .collect();
        self.cards = self.deals[0];
        (0..2)
            .map(|s| format!("You are seat {s} in Kuhn poker: a deck of J, Q, K; each player antes 1 chip and gets one card; K beats Q beats J. Moves: [check], [bet], [call], [fold]. {rounds} hands; the first player alternates. Whoever has gained more chips at the end wins."))
            .collect()
    }
    fn to_act(&self) -> Option<usize> {
        (self.round < self.rounds).then(|| self.actor())
    }
    fn observation(&self, seat: usize) -> String {
        let mut s = String::new();
        if let Some(l) = self.log.last() {
            s.push_str(l);
            s.push('\n');
        }
        if self.round < self.rounds {
            s.push_str(&format!(
                "Hand {} of {}. Your card: {}. Betting so far: {}. Chips won so far: you {}, opponent {}.",
                self.round + 1,
                self.rounds,
                card(self.cards[seat]),
                if self.history.is_empty() { "none".into() } else { self.history.join(", ") },
                self.chips[seat],
                self.chips[1 - seat]
            ));
            if self.to_act() == Some(seat) {
                s.push_str(&format!(" Your move: {}", self.legal().join(" ")));
            }
        } else {
            s.push_str(&format!(
                "Game over. Chips: you {}, opponent {}.",
                self.chips[seat],
                self.chips[1 - seat]
            ));
        }
        s
    }
    fn legal(&self) -> Vec<String> {
        let v: &[&str] = match self.history.last() {
            Some(&"bet") => &["[call]", "[fold]"],
            _ => &["[check]", "[bet]"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
    fn apply(&mut self, text: &str) -> std::result::Result<String, String> {
        let m = bracket(text).ok_or("no move in brackets found; reply like [check]")?;
        let mv: &'static str = match m.as_str() {
            "check" => "check",
            "bet" => "bet",
            "call" => "call",
            "fold" => "fold",
            other => {
                return Err(format!(
                    "`[{other}]` is not a move; legal: {}",
                    self.legal().join(" ")
                ));
            }
        };
        if !self.legal().contains(&format!("[{mv}]")) {
            return Err(format!(
                "[{mv}] is not legal now; legal: {}",
                self.legal().join(" ")
            ));
        }
        self.history.push(mv);
        if Self::hand_over(&self.history) {
            self.settle();
        }
        Ok(format!("[{mv}]"))
    }
    fn returns(&self) -> Vec<f64> {
        let d = self.chips[0] - self.chips[1];
        vec![d.signum() as f64, -(d.signum() as f64)]
    }
    fn bot_move(&self, kind: BotKind, rng: &mut ChaCha8Rng) -> String {
        let legal = self.legal();
        match kind {
            BotKind::Random => legal[rng.random_range(0..legal.len())].clone(),
            BotKind::Optimal => {
                // A Nash strategy of the Kuhn poker family (alpha = 1/6): probability
                // of the aggressive move (bet or call) per card J, Q, K.
                let me = self.actor();
                let c = usize::from(self.cards[me] % 3);
                let first = me == self.first();
                let a = 1.0 / 6.0;
                let (aggr, passive, probs) = match (first, self.history.as_slice()) {
                    (true, []) => ("bet", "check", [a, 0.0, 3.0 * a]),
                    (true, ["check", "bet"]) => ("call", "fold", [0.0, a + 1.0 / 3.0, 1.0]),
                    (false, ["bet"]) => ("call", "fold", [0.0, 1.0 / 3.0, 1.0]),
                    (false, ["check"]) => ("bet", "check", [1.0 / 3.0, 0.0, 1.0]),
                    _ => ("check", "check", [0.0; 3]),
                };
                let pa: f64 = probs[c];
                let m = if pa >= 1.0 || (pa > 0.0 && rng.random_bool(pa)) {
                    aggr
                } else {
                    passive
                };
                format!("[{m}]")
            }
        }
    }

    fn state_key(&self, seat: usize) -> String {
        format!(
            "{}|{}|{}",
            self.round,
            card(self.cards[seat]),
            self.history.join(",")
        )
    }
}

/// Config of [`VsBot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VsBotConfig {
    /// The policy's seat; `None` draws it from the instance seed.
    pub seat: Option<usize>,
    /// Opponent.
    pub bot: BotKind,
    /// Invalid moves allowed before the policy forfeits.
    pub error_allowance: usize,
    /// Penalty per invalid move (ours; reported as `invalid_action`).
    pub invalid_penalty: f64,
    /// Maximum turns.
    pub max_turns: usize,
}

impl Default for VsBotConfig {
    fn default() -> Self {
        VsBotConfig {
            seat: None,
            bot: BotKind::Optimal,
            error_allowance: 1,
            invalid_penalty: 0.0,
            max_turns: 12,
        }
    }
}

/// A game played by the policy against a scripted bot, as an [`Env`].
pub struct VsBot<G: MultiAgentEnv> {
    game: G,
    cfg: VsBotConfig,
    seat: usize,
    noise: ChaCha8Rng,
    errors: usize,
    forfeited: bool,
    started: bool,
}

impl<G: MultiAgentEnv> std::fmt::Debug for VsBot<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VsBot")
            .field("game", &self.game.name())
            .field("seat", &self.seat)
            .finish()
    }
}

impl<G: MultiAgentEnv> VsBot<G> {
    /// Wraps a game.
    pub fn new(game: G, cfg: VsBotConfig) -> Self {
        VsBot {
            game,
            cfg,
            seat: 0,
            noise: rng(0),
            errors: 0,
            forfeited: false,
            started: false,
        }
    }
    fn bot_plays(&mut self) -> Vec<String> {
        let mut moves = Vec::new();
        while let Some(s) = self.game.to_act() {
            if s == self.seat {
                break;
            }
            let m = self.game.bot_move(self.cfg.bot, &mut self.noise);
            match self.game.apply(&m) {
                Ok(c) => moves.push(c),
                Err(_) => break,
            }
        }
        moves
    }
    fn returns(&self) -> f64 {
        if self.forfeited {
            -1.0
        } else if self.game.to_act().is_none() {
            self.game.returns().get(self.seat).copied().unwrap_or(0.0)
        } else {
            0.0
        }
    }
}

impl<G: MultiAgentEnv> Env for VsBot<G> {
    fn name(&self) -> &str {
        self.game.name()
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let rules = self.game.reset(task.seed);
        self.seat = match self.cfg.seat {
            Some(s) if s < self.game.seats() => s,
            Some(s) => {
                return Err(EnvError::param(
                    "seat",
                    format!("seat {s} does not exist (game has {})", self.game.seats()),
                ));
            }
            None => (derive_seed(task.seed, "seat", &[]) % self.game.seats() as u64) as usize,
        };
        self.noise = rng(task.noise());
        self.errors = 0;
        self.forfeited = false;
        self.started = true;
        let bot = self.bot_plays();
        let opening = if bot.is_empty() {
            String::new()
        } else {
            format!("Opponent played {}.\n", bot.join(" "))
        };
        Ok(Reset {
            messages: vec![Message::user(format!(
                "{}\n{opening}{}",
                rules[self.seat],
                self.game.observation(self.seat)
            ))],
            tools: vec![],
            stop: vec![],
            state_key: self.state_key(),
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        if !self.started || self.game.to_act() != Some(self.seat) || self.forfeited {
            return Err(EnvError::Protocol {
                env: self.game.name().into(),
                reason: "not this policy's turn (before reset or after the game ended)".into(),
            });
        }
        match self.game.apply(turn.text) {
            Err(e) => {
                self.errors += 1;
                if self.errors > self.cfg.error_allowance {
                    self.forfeited = true;
                    let mut o = StepOutcome::invalid(
                        format!(
                            "Invalid move: {e}{}. Too many invalid moves: you forfeit.",
                            truncation_note(turn.truncated())
                        ),
                        self.cfg.invalid_penalty,
                    );
                    o.end = Some(EndSignal::Terminated { success: false });
                    o.observation.clear();
                    return Ok(o);
                }
                let mut o = StepOutcome::invalid(
                    format!(
                        "Invalid move: {e}{}.\n{}",
                        truncation_note(turn.truncated()),
                        self.game.observation(self.seat)
                    ),
                    self.cfg.invalid_penalty,
                );
                o.state_key = self.state_key();
                Ok(o)
            }
            Ok(canon) => {
                let bot = self.bot_plays();
                let mut o = StepOutcome {
                    action_valid: true,
                    action_key: Some(canon),
                    ..Default::default()
                };
                o.state_key = self.state_key();
                if self.game.to_act().is_none() {
                    o.end = Some(EndSignal::Terminated {
                        success: self.returns() > 0.0,
                    });
                } else {
                    let opening = if bot.is_empty() {
                        String::new()
                    } else {
                        format!("Opponent played {}.\n", bot.join(" "))
                    };
                    o.observation = vec![Message::env(format!(
                        "{opening}{}",
                        self.game.observation(self.seat)
                    ))];
                    o.end = Some(EndSignal::Continue);
                }
                Ok(o)
            }
        }
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        let r = self.returns();
        RewardBreakdown::zero().with("outcome", r).anchor(r)
    }
    fn state_key(&self) -> Option<String> {
        Some(self.game.state_key(self.seat))
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: self.cfg.max_turns,
            max_tokens_per_turn: 256,
            max_observation_tokens: 256,
        }
    }
    fn render_debug(&self) -> Option<String> {
        Some(self.game.observation(self.seat))
    }
    fn oracle_action(&self) -> Option<String> {
        let mut r = self.noise.clone();
        (self.game.to_act() == Some(self.seat))
            .then(|| self.game.bot_move(BotKind::Optimal, &mut r))
    }
}

/// A finished self-play game: per-seat texts and rewards.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfPlayGame {
    /// Moves in order as `(seat, policy text, valid)`.
    pub moves: Vec<(usize, String, bool)>,
    /// Per-seat returns (+1/−1/0; a seat exceeding the error allowance loses).
    pub returns: Vec<f64>,
}

/// Plays a game with one policy in every seat (text level). `policy(seat,
/// observation)` returns the seat's move text; invalid moves count against
/// `error_allowance` per seat, then the seat loses.
pub fn play_self<G: MultiAgentEnv>(
    game: &mut G,
    seed: u64,
    error_allowance: usize,
    max_moves: usize,
    mut policy: impl FnMut(usize, &str) -> String,
) -> SelfPlayGame {
    let rules = game.reset(seed);
    let mut errors = vec![0usize; game.seats()];
    let mut moves = Vec::new();
    let mut notes: Vec<String> = rules;
    while let Some(s) = game.to_act() {
        if moves.len() >= max_moves {
            return SelfPlayGame {
                moves,
                returns: vec![0.0; game.seats()],
            };
        }
        let obs = format!("{}\n{}", notes[s], game.observation(s));
        let text = policy(s, &obs);
        match game.apply(&text) {
            Ok(_) => {
                moves.push((s, text, true));
                notes[s].clear();
            }
            Err(e) => {
                moves.push((s, text, false));
                errors[s] += 1;
                if errors[s] > error_allowance {
                    let returns = (0..game.seats())
                        .map(|k| if k == s { -1.0 } else { 1.0 })
                        .collect();
                    return SelfPlayGame { moves, returns };
                }
                notes[s] = format!("Invalid move: {e}.");
            }
        }
    }
    SelfPlayGame {
        moves,
        returns: game.returns(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimax_never_loses_to_random() {
        for seed in 0..20 {
            let mut g = TicTacToe::default();
            let mut r = rng(seed);
            let mut r2 = rng(seed + 1000);
            g.reset(seed);
            while let Some(s) = g.to_act() {
                let kind = if s == (seed % 2) as usize {
                    BotKind::Optimal
                } else {
                    BotKind::Random
                };
                let m = g.bot_move(kind, if s == 0 { &mut r } else { &mut r2 });
                g.apply(&m).unwrap();
            }
            let opt = (seed % 2) as usize;
            assert!(g.returns()[opt] >= 0.0, "seed {seed}");
        }
    }

    #[test]
    fn kuhn_is_zero_sum_and_settles() {
        let mut k = KuhnPoker::default();
        k.reset(3);
        let mut r = rng(1);
        let mut n = 0;
        while k.to_act().is_some() {
            let m = k.bot_move(BotKind::Random, &mut r);
            k.apply(&m).unwrap();
            n += 1;
        }
        assert!(n >= 2 * k.rounds);
        assert_eq!(k.chips[0], -k.chips[1]);
        let ret = k.returns();
        assert_eq!(ret[0], -ret[1]);
        assert!(k.apply("[bet]").is_err() || k.to_act().is_none());
    }
}

/// Options of [`run_self_play`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SelfPlayConfig {
    /// Invalid moves allowed per seat before it forfeits.
    pub error_allowance: usize,
    /// Maximum moves (all seats) before the game is called a draw.
    pub max_moves: usize,
    /// Sampled tokens per move.
    pub max_tokens_per_turn: usize,
    /// Base of per-request sampling seeds.
    pub sampling_seed: u64,
}

impl Default for SelfPlayConfig {
    fn default() -> Self {
        SelfPlayConfig {
            error_allowance: 1,
            max_moves: 40,
            max_tokens_per_turn: 256,
            sampling_seed: 0,
        }
    }
}

/// Plays a game with the same sampler in every seat and returns one episode per
/// seat (episode ids `first_id + seat`, `seat` set, rows tagged with it). Each
/// seat has its own transcript: its prompt, its sampled moves (`Policy`), and
/// observations (the other seats' moves and private information, owned `Env`)
/// rendered as chat continuations. Outcome = the seat's zero-sum return.
pub fn run_self_play<G: MultiAgentEnv>(
    game: &mut G,
    seed: u64,
    group: usize,
    renderer: &dyn crate::runner::ChatRenderer,
    sampler: &mut dyn crate::runner::TurnSampler,
    cfg: &SelfPlayConfig,
    first_id: u64,
) -> Result<Vec<crate::runner::Episode>> {
    use crate::runner::{EndReason, Episode, EpisodeCounts, SampleRequest, StepRecord};
    use crate::transcript::{Owner, Segment, Transcript};

    let rules = game.reset(seed);
    let seats = game.seats();
    struct Seat {
        transcript: Transcript,
        pending: Vec<u32>,
        len: usize,
        steps: Vec<StepRecord>,
        texts: Vec<String>,
        errors: usize,
        note: String,
        last_finish: Option<crate::env::FinishReason>,
        prefix_key: u64,
    }
    let mut st: Vec<Seat> = Vec::with_capacity(seats);
    for _ in 0..seats {
        st.push(Seat {
            transcript: Transcript::new(renderer.name()),
            len: 0,
            pending: vec![],
            steps: vec![],
            texts: vec![],
            errors: 0,
            note: String::new(),
            last_finish: None,
            prefix_key: 0,
        });
    }
    let mut forfeit: Option<usize> = None;
    let mut moves = 0;
    while let Some(s) = game.to_act() {
        if moves >= cfg.max_moves || forfeit.is_some() {
            break;
        }
        // A seat's prompt is rendered when it first acts (so it shows the moves
        // made before); later, what happened since its last move is appended.
        if st[s].transcript.is_empty() {
            let msg = Message::user(format!("{}\n{}", rules[s], game.observation(s)));
            let ids = renderer.render_prompt(std::slice::from_ref(&msg), &[])?;
            st[s].len = ids.len();
            st[s].pending = ids.clone();
            st[s]
                .transcript
                .push(Segment::new(Owner::Prompt, 0, ids, msg.content));
        } else if let Some(f) = st[s].last_finish.clone() {
            let obs = format!("{}{}", st[s].note, game.observation(s));
            let pieces = renderer.render_continuation(&f, &[Message::env(obs)])?;
            let turn = st[s].texts.len().saturating_sub(1);
            for p in pieces {
                let owner = if p.owner == Owner::Policy {
                    Owner::Scaffold
                } else {
                    p.owner
                };
                st[s].len += p.ids.len();
                st[s].pending.extend_from_slice(&p.ids);
                st[s]
                    .transcript
                    .push(Segment::new(owner, turn, p.ids, p.text));
            }
            st[s].note.clear();
        }
        let append = std::mem::take(&mut st[s].pending);
        let id = first_id + s as u64;
        let turn = st[s].texts.len();
        let req = SampleRequest {
            session: id,
            prefix_len: st[s].len - append.len(),
            append,
            max_new_tokens: cfg.max_tokens_per_turn,
            stop: vec![],
            seed: derive_seed(
                cfg.sampling_seed,
                "selfplay",
                &[seed, s as u64, turn as u64],
            ),
        };
        let res = sampler
            .sample(std::slice::from_ref(&req))?
            .pop()
            .ok_or_else(|| EnvError::Runner {
                episode: id,
                reason: "sampler returned no result".into(),
            })?;
        if res.ids.len() != res.logprobs.len() {
            return Err(EnvError::Runner {
                episode: id,
                reason: "ids and log-probs differ in length".into(),
            });
        }
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(res.ids.len() + 1);
        for &t in &res.ids {
            offsets.push(bytes.len());
            bytes.extend_from_slice(&renderer.decode_piece(t));
        }
        offsets.push(bytes.len());
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let start = st[s].len;
        let n = res.ids.len();
        st[s].len += n;
        st[s].transcript.push(Segment {
            owner: Owner::Policy,
            turn,
            context: 0,
            ids: res.ids,
            logprobs: res.logprobs,
            finish: Some(res.finish.clone()),
            byte_offsets: offsets,
            text: text.clone(),
        });
        let before = game.state_key(s);
        let applied = game.apply(&text);
        moves += 1;
        let valid = applied.is_ok();
        let action_key = applied.as_ref().ok().cloned();
        if let Err(e) = &applied {
            st[s].errors += 1;
            let cut = truncation_note(res.finish == crate::env::FinishReason::Length);
            st[s].note = format!("Invalid move: {e}{cut}.\n");
            if st[s].errors > cfg.error_allowance {
                forfeit = Some(s);
            }
        }
        let after = game.state_key(s);
        let pk = crate::seed::chain_key(
            st[s].prefix_key,
            &format!("{before}\u{1f}{}", action_key.as_deref().unwrap_or("")),
        );
        st[s].prefix_key = pk;
        st[s].steps.push(StepRecord {
            turn,
            context: 0,
            span: start..start + n,
            action_span: None,
            answer_span: None,
            state_key_before: Some(before),
            action_key,
            state_key_after: Some(after),
            prefix_key: pk,
            reward: RewardBreakdown::zero(),
            action_valid: valid,
            tool_calls: vec![],
            end: None,
            finish: res.finish.clone(),
            policy_tokens: n,
        });
        st[s].texts.push(text);
        st[s].last_finish = Some(res.finish);
    }
    let over = game.to_act().is_none();
    let returns: Vec<f64> = match forfeit {
        Some(f) => (0..seats)
            .map(|k| if k == f { -1.0 } else { 1.0 })
            .collect(),
        None if over => game.returns(),
        None => vec![0.0; seats],
    };
    let mut out = Vec::with_capacity(seats);
    for (s, mut seat) in st.into_iter().enumerate() {
        sampler.release(first_id + s as u64);
        let end = if forfeit.is_some() || over {
            EndReason::Terminated {
                success: returns[s] > 0.0,
            }
        } else {
            EndReason::TurnLimit
        };
        if let Some(l) = seat.steps.last_mut() {
            l.end = Some(end.clone());
        }
        let counts = EpisodeCounts {
            turns: seat.steps.len(),
            invalid_actions: seat.steps.iter().filter(|x| !x.action_valid).count(),
            policy_tokens: seat.transcript.policy_tokens(),
            env_tokens: seat
                .transcript
                .segments
                .iter()
                .filter(|x| x.owner == Owner::Env)
                .map(|x| x.ids.len())
                .sum(),
            ..Default::default()
        };
        out.push(Episode {
            id: first_id + s as u64,
            env: game.name().to_string(),
            group,
            sample: 0,
            seat: s,
            task: TaskSpec::seed(seed),
            transcript: seat.transcript,
            steps: seat.steps,
            outcome: RewardBreakdown::zero()
                .with("outcome", returns[s])
                .anchor(returns[s]),
            step_rewards: RewardBreakdown::zero(),
            end,
            counts,
            turn_texts: seat.texts,
            metrics: Default::default(),
        });
    }
    Ok(out)
}
