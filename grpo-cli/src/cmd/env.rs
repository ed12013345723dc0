//! `grpo env`: list the built-in environments, or play one in the terminal
//! (one line of stdin per policy turn) to feel it before training on it.

use std::io::{BufRead, Write};

use anyhow::Context;
use grpo_envs::{EndSignal, Env, EpisodeView, RewardBreakdown, TaskSpec, Turn, envs};

/// Arguments of `grpo env`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: EnvCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EnvCommand {
    /// List the registered environments.
    List,
    /// Play an environment: each stdin line is one policy turn
    /// (`\n` in a line becomes a newline; `:hint` shows the oracle's turn,
    /// `:quit` ends the episode).
    Play {
        /// Environment name (see `grpo env list`).
        name: String,
        /// Instance seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Environment config as JSON, e.g. '{"slippery": false}'.
        #[arg(long)]
        params: Option<String>,
        /// Print a JSON summary line at the end.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `grpo env`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.command {
        EnvCommand::List => {
            writeln!(
                out,
                "{:<16} {:<18} {:<6} description",
                "name", "family", "turns"
            )?;
            for e in envs::list() {
                let turns = if e.multi_turn { "multi" } else { "single" };
                writeln!(
                    out,
                    "{:<16} {:<18} {:<6} {}",
                    e.name, e.family, turns, e.description
                )?;
            }
            Ok(())
        }
        EnvCommand::Play {
            name,
            seed,
            params,
            json,
        } => {
            let params: serde_json::Value = match params {
                Some(p) => serde_json::from_str(&p).context("--params is not valid JSON")?,
                None => serde_json::Value::Null,
            };
            let env = envs::make(&name, &params)?;
            let stdin = std::io::stdin();
            play(env, seed, stdin.lock(), &mut out, json)
        }
    }
}

fn show_reward(r: &RewardBreakdown) -> String {
    let parts: Vec<String> = r
        .components
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    format!("{} (anchor {}) [{}]", r.total, r.anchor, parts.join(", "))
}

/// Plays one episode, reading one turn per input line.
fn play(
    mut env: Box<dyn Env>,
    seed: u64,
    input: impl BufRead,
    out: &mut impl Write,
    json: bool,
) -> anyhow::Result<()> {
    let reset = env.reset(&TaskSpec::seed(seed))?;
    writeln!(out, "== {} (seed {seed}) ==", env.name())?;
    for m in &reset.messages {
        writeln!(out, "[{}] {}", m.role.as_str(), m.content)?;
    }
    for t in &reset.tools {
        writeln!(out, "[tool available] {}: {}", t.name, t.description)?;
    }
    let max_turns = env.limits().max_turns;
    let mut texts: Vec<String> = Vec::new();
    let mut calls = Vec::new();
    let mut step_sum = RewardBreakdown::zero();
    let mut end = "turn limit".to_string();
    let mut lines = input.lines();
    let mut turn = 0;
    while turn < max_turns {
        write!(out, "turn {turn}> ")?;
        out.flush()?;
        let Some(line) = lines.next() else {
            writeln!(out)?;
            end = "input ended".into();
            break;
        };
        let line = line.context("reading stdin")?;
        let text = line.replace("\\n", "\n");
        match text.trim() {
            ":quit" => {
                end = "quit".into();
                break;
            }
            ":hint" => {
                match env.oracle_action() {
                    Some(h) => writeln!(out, "[hint] {h}")?,
                    None => writeln!(out, "[hint] none for this env")?,
                }
                continue;
            }
            _ => {}
        }
        let o = env.step(&Turn::text(turn, &text))?;
        turn += 1;
        texts.push(text);
        calls.extend(o.tool_calls.iter().cloned());
        step_sum.accumulate(&o.reward);
        for m in &o.observation {
            let who = m.name.as_deref().unwrap_or(m.role.as_str());
            writeln!(out, "[{who}] {}", m.content)?;
        }
        if !o.action_valid {
            writeln!(out, "(invalid action)")?;
        }
        if o.reward.total != 0.0 || o.reward.anchor != 0.0 {
            writeln!(out, "step reward: {}", show_reward(&o.reward))?;
        }
        match o.end_signal() {
            EndSignal::Continue => {}
            EndSignal::Terminated { success } => {
                end = if success { "success" } else { "failure" }.into();
                break;
            }
            EndSignal::Truncated { reason } => {
                end = format!("truncated: {reason}");
                break;
            }
        }
    }
    let view = EpisodeView {
        turns: &texts,
        tool_calls: &calls,
        ended_by_limit: !matches!(end.as_str(), "success" | "failure"),
    };
    let outcome = env.final_reward(&view);
    env.close();
    writeln!(out, "== episode over: {end} after {turn} turns ==")?;
    writeln!(out, "outcome reward: {}", show_reward(&outcome))?;
    writeln!(out, "sum of step rewards: {}", show_reward(&step_sum))?;
    if json {
        let v = serde_json::json!({
            "env": env.name(),
            "seed": seed,
            "end": end,
            "turns": turn,
            "outcome": outcome,
            "step_rewards": step_sum,
            "total": outcome.total + step_sum.total,
            "anchor": outcome.anchor + step_sum.anchor,
        });
        writeln!(out, "{v}")?;
    }
    Ok(())
}
