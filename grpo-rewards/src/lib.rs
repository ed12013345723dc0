//! Verifiers for reinforcement learning from verifiable rewards: math answers,
//! code run in a sandbox, tool calls and GUI actions; plus reward shaping.
//!
//! Each verifier has a typed API in its module ([`math::verify`],
//! [`toolcall::check`], [`gui::score`], [`code`]) and a JSON entry point
//! (`verify_json`, the record shapes of `grpo verify`); [`verifier`] selects
//! one by name from a config, and [`shaping`] adds format, length and
//! efficiency rewards kept as separate named components.
//!
//! ```
//! use grpo_rewards::verifier::{Verifier, VerifierConfig};
//! use serde_json::json;
//!
//! let math: VerifierConfig = serde_json::from_value(json!({"type": "math"})).unwrap();
//! let out = math.verify_json(&json!({"gold": "2\\sqrt{2}", "pred": "so $\\boxed{\\sqrt{8}}$"})).unwrap();
//! assert_eq!(out["correct"], true);
//!
//! let tools: VerifierConfig = serde_json::from_value(json!({"type": "toolcall"})).unwrap();
//! let out = tools.verify_json(&json!({
//!     "functions": [{"name": "get_weather", "parameters": {"type": "dict",
//!         "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
//!     "possible_answer": [{"get_weather": {"city": ["Paris", "Paris, France"]}}],
//!     "model_output_text": "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"paris\"}}</tool_call>"
//! })).unwrap();
//! assert_eq!(out["valid"], true);
//! ```
#![deny(missing_docs)]

pub mod code;
pub mod error;
pub mod gui;
pub mod math;
pub mod shaping;
pub mod toolcall;
pub mod verifier;

pub use error::{Result, RewardError};
