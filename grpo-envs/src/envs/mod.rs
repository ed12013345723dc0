//! The built-in environment families and a registry to build them by name with a
//! JSON/TOML-style config (unknown keys are errors naming the key).

use serde::de::DeserializeOwned;

use crate::env::Env;
use crate::error::{EnvError, Result};

pub mod arithmetic;
pub mod countdown;
pub mod frozenlake;
pub mod games;
pub mod gui;
pub mod kb;
pub mod lookup;
pub mod qa;
pub mod search;
pub mod sokoban;
pub mod team;
pub mod tools;

/// A registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvInfo {
    /// Name accepted by [`make`].
    pub name: &'static str,
    /// Family (one of the eight families of the spec, or `task`).
    pub family: &'static str,
    /// Whether episodes can have several turns.
    pub multi_turn: bool,
    /// One-line description.
    pub description: &'static str,
}

/// Every registered environment.
pub fn list() -> Vec<EnvInfo> {
    vec![
        EnvInfo {
            name: "arithmetic",
            family: "task",
            multi_turn: false,
            description: "multi-digit arithmetic with a short scratchpad (char-level; default training task)",
        },
        EnvInfo {
            name: "qa",
            family: "qa",
            multi_turn: false,
            description: "single-turn verifiable QA over a dataset (GSM8K/MATH/HumanEval/… JSONL or Parquet) with a numeric/exact/math/code verifier",
        },
        EnvInfo {
            name: "countdown",
            family: "countdown",
            multi_turn: false,
            description: "reach the target with + - * / using each number once (TinyZero); `attempts` > 1 makes it multi-turn",
        },
        EnvInfo {
            name: "arith-chain",
            family: "tool-chain",
            multi_turn: false,
            description: "evaluate a nested arithmetic expression (TinyZero arth)",
        },
        EnvInfo {
            name: "lookup",
            family: "tool-chain",
            multi_turn: true,
            description: "order totals behind `lookup` and `calculator` tools (Hermes tool calls)",
        },
        EnvInfo {
            name: "sokoban",
            family: "sokoban",
            multi_turn: true,
            description: "push boxes onto targets (reverse-play generated, gym-sokoban rewards)",
        },
        EnvInfo {
            name: "frozenlake",
            family: "frozenlake",
            multi_turn: true,
            description: "reach the goal on (slippery) ice without falling in a hole",
        },
        EnvInfo {
            name: "search-qa",
            family: "search",
            multi_turn: true,
            description: "Search-R1 protocol over a generated knowledge base of fictional multi-hop facts (BM25)",
        },
        EnvInfo {
            name: "calc",
            family: "calculator-python",
            multi_turn: true,
            description: "templated word problems with `calculator` (and optional `python`) tools",
        },
        EnvInfo {
            name: "synthgui",
            family: "gui",
            multi_turn: true,
            description: "a synthetic phone app as an accessibility tree; click/type/scroll tasks",
        },
        EnvInfo {
            name: "synthgui-critic",
            family: "gui",
            multi_turn: false,
            description: "judge a proposed GUI action correct/incorrect and suggest one (GUI-Critic-R1 style)",
        },
        EnvInfo {
            name: "tictactoe",
            family: "multi-agent",
            multi_turn: true,
            description: "tic-tac-toe against a seeded bot (minimax or random); self-play via MultiAgentEnv",
        },
        EnvInfo {
            name: "kuhn-poker",
            family: "multi-agent",
            multi_turn: true,
            description: "Kuhn poker (J/Q/K) against a seeded bot (Nash or random); self-play via MultiAgentEnv",
        },
        EnvInfo {
            name: "team-builder",
            family: "multi-agent",
            multi_turn: true,
            description: "MasHost-style host builds an agent graph of deterministic roles, then runs it",
        },
    ]
}

/// Deserialises an env config (`null` → defaults).
pub fn config<T: DeserializeOwned + Default>(env: &str, params: &serde_json::Value) -> Result<T> {
    if params.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(params.clone()).map_err(|e| EnvError::param(env, e.to_string()))
}

/// Builds an environment by name. `params` is the env's config as JSON
/// (`null` or `{}` for defaults). The `qa` env needs a dataset: pass
/// `{"path": "...jsonl", "columns": "gsm8k"}` (or a `.parquet` file).
pub fn make(name: &str, params: &serde_json::Value) -> Result<Box<dyn Env>> {
    Ok(match name {
        "arithmetic" => Box::new(arithmetic::ArithmeticEnv::new(config(name, params)?)),
        "arith-chain" => Box::new(arithmetic::ArithChainEnv::new(config(name, params)?)),
        "qa" => Box::new(qa::QaEnv::from_config(config(name, params)?)?),
        "countdown" => Box::new(countdown::CountdownEnv::new(config(name, params)?)?),
        "lookup" => Box::new(lookup::LookupEnv::new(config(name, params)?)),
        "sokoban" => Box::new(sokoban::SokobanEnv::new(config(name, params)?)?),
        "frozenlake" => Box::new(frozenlake::FrozenLakeEnv::new(config(name, params)?)?),
        "search-qa" => Box::new(search::SearchEnv::new(config(name, params)?)),
        "calc" => {
            let cfg: tools::CalcConfig = config(name, params)?;
            if !(cfg.tool_timeout_s > 0.0 && cfg.tool_timeout_s <= 3600.0) {
                return Err(EnvError::param(
                    "calc.tool_timeout_s",
                    format!("must be in (0, 3600] seconds, got {}", cfg.tool_timeout_s),
                ));
            }
            let exec = if cfg.python {
                Some(crate::exec::SandboxExecutor::detect()?.shared())
            } else {
                None
            };
            Box::new(tools::CalcEnv::new(cfg, exec))
        }
        "synthgui" => Box::new(gui::GuiEnv::new(config(name, params)?)),
        "synthgui-critic" => Box::new(gui::GuiCriticEnv::new(config(name, params)?)),
        "tictactoe" => Box::new(games::VsBot::new(
            games::TicTacToe::default(),
            config(name, params)?,
        )),
        "kuhn-poker" => Box::new(games::VsBot::new(
            games::KuhnPoker::default(),
            config(name, params)?,
        )),
        "team-builder" => Box::new(team::TeamBuilderEnv::new(config(name, params)?)),
        other => return Err(EnvError::UnknownEnv(other.to_string())),
    })
}
