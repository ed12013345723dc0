//! `grpo verify math|code|toolcall|gui`: run one verifier over a JSONL file.
//!
//! One JSON object per input line, one per output line, in order; a bad
//! line becomes `{"error": "line N: ..."}` and processing continues; the exit
//! rule is [`super::io::Tally::finish`]'s. A key the verifier does not read, on
//! the line or in its `options`, fails the line naming the key and the accepted
//! ones (see [`LINE_SCHEMA`], printed by `--help`). Line formats are those of
//! each verifier's `verify_json` in `grpo-rewards` (math:
//! `{"gold", "pred", "options"}`; code: `{"language", "program", "tests",
//! "options"}`; toolcall: BFCL's `{"functions", "possible_answer",
//! "model_output_text"}`; gui: `{"gold", "pred", "profile", "options"}`).

use std::path::PathBuf;

use anyhow::bail;
use serde_json::Value;

use super::io::{check_keys, keys_of, kind_name, map_jsonl, open_input, open_output, parse_object};

/// Which verifier to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Math answers (Math-Verify semantics).
    Math,
    /// Programs run against tests in the sandbox.
    Code,
    /// Tool calls (BFCL AST checker).
    Toolcall,
    /// GUI actions (GUI-R1, UI-R1, GUI-G1, InfiGUI-R1 profiles).
    Gui,
}

/// Arguments of `grpo verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = LINE_SCHEMA)]
pub struct Args {
    /// Verifier to run.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Input JSONL file.
    #[arg(long)]
    pub input: PathBuf,
    /// Output JSONL file (default: stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The line schemas, shown by `grpo verify --help`.
const LINE_SCHEMA: &str = r#"Input lines (one JSON object each; any other key, on the line or in "options", fails
that line with an error naming the key and the accepted ones):
  math      {"gold": string, "pred": string, "options"?: object}
            options (Math-Verify's names; default): gold_extraction (["latex", "expr"]),
            pred_extraction (["latex", "expr"]), float_rounding (6), numeric_precision (15),
            strict (true), allow_set_relation_comp (false), boxed_match_priority (0),
            percent_accepts_bare (true)
  code      {"program": string, "tests": object | list | JSON string,
             "language"?: "python", "argv"?: [string], "options"?: object}
            options (default): timeout_s (5), wall_timeout_s (1.5 * timeout_s + 0.5),
            memory_mib (512), max_processes (32), file_size_mib (16), max_parallel (cores),
            compare ("lcb" | "exact" | "apps_lenient"; "lcb"), score ("fraction" |
            "all_pass"; "fraction"), import_header (auto), require_full_isolation (false)
  toolcall  {"model_output_text": string, "functions" (or "function"): list,
             "possible_answer" (or "ground_truth"): list, "options"?: object}
            options (default): standardize_strings (true), int_as_float (true),
            dot_underscore_alias (false)
  gui       {"gold": object, "pred": object | string, "profile": "gui_r1" | "ui_r1" |
             "gui_g1" | "infigui_r1_androidcontrol", "options"?: object}
            options (default): width, height, resized_width, resized_height (none),
            pred_frame, gold_frame ("pixels"), scale_x, scale_y (1)
Output: one line per input line, in order: the verdict, or {"error": "line N: ..."}.
Exit status: 0 when every line was verified, 2 when any line failed (all lines are
still written; the count is printed on stderr)."#;

/// Keys of the code verifier's `options` (applied by `CodeOptions::apply_json`, which
/// is not a serde struct; a test checks each is recognised).
const CODE_OPTIONS: &[&str] = &[
    "timeout_s",
    "wall_timeout_s",
    "memory_mib",
    "max_processes",
    "file_size_mib",
    "max_parallel",
    "compare",
    "score",
    "import_header",
    "require_full_isolation",
];

impl Kind {
    /// Keys a line of this verifier may have.
    fn line_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Math => &["gold", "pred", "options"],
            Kind::Code => &["language", "program", "argv", "tests", "options"],
            Kind::Toolcall => &[
                "model_output_text",
                "functions",
                "function",
                "possible_answer",
                "ground_truth",
                "options",
            ],
            Kind::Gui => &["gold", "pred", "profile", "options"],
        }
    }

    /// Keys of this verifier's `options` object.
    fn option_keys(self) -> Vec<String> {
        match self {
            Kind::Math => keys_of(&grpo_rewards::math::MathConfig::default()),
            Kind::Code => CODE_OPTIONS.iter().map(|k| k.to_string()).collect(),
            Kind::Toolcall => keys_of(&grpo_rewards::toolcall::ToolCallConfig::default()),
            Kind::Gui => keys_of(&grpo_rewards::gui::GuiOptions::default()),
        }
    }
}

/// Checks the keys of a line and of its `options`, then runs the verifier.
fn verify_line(kind: Kind, option_keys: &[&str], line: &str) -> anyhow::Result<Value> {
    let obj = parse_object(line)?;
    check_keys(&obj, kind.line_keys(), None)?;
    if let Some(o) = obj.get("options") {
        match o {
            Value::Object(o) => check_keys(o, option_keys, Some("options"))?,
            Value::Null => {}
            other => bail!(
                "field `options`: expected an object, got {}",
                kind_name(other)
            ),
        }
    }
    let v = Value::Object(obj);
    let out = match kind {
        Kind::Math => grpo_rewards::math::verify_json(&v)?,
        Kind::Code => grpo_rewards::code::verify_json(&v)?,
        Kind::Toolcall => grpo_rewards::toolcall::verify_json(&v)?,
        Kind::Gui => grpo_rewards::gui::verify_json(&v)?,
    };
    Ok(out)
}

/// Runs `grpo verify`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let input = open_input(&args.input)?;
    let mut out = open_output(args.output.as_deref())?;
    let option_keys = args.kind.option_keys();
    let option_keys: Vec<&str> = option_keys.iter().map(String::as_str).collect();
    map_jsonl(input, &mut *out, |_lineno, line| {
        verify_line(args.kind, &option_keys, line)
    })?
    .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_option_is_recognised_by_the_verifier() {
        // A value of the wrong type for a known option fails on that option; an unknown
        // one fails as unknown. So each listed key must fail without "unknown".
        for k in CODE_OPTIONS {
            let mut o = grpo_rewards::code::runner::CodeOptions::default();
            let e = o
                .apply_json(&serde_json::json!({ *k: [] }))
                .expect_err(k)
                .to_string();
            assert!(!e.contains("unknown"), "{k}: {e}");
        }
        let mut o = grpo_rewards::code::runner::CodeOptions::default();
        let e = o.apply_json(&serde_json::json!({"bogus": 1})).unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
    }

    #[test]
    fn option_keys_come_from_the_option_structs() {
        let math = Kind::Math.option_keys();
        assert!(math.iter().any(|k| k == "float_rounding"), "{math:?}");
        let gui = Kind::Gui.option_keys();
        assert!(gui.iter().any(|k| k == "width"), "{gui:?}");
        assert!(!Kind::Toolcall.option_keys().is_empty());
    }

    #[test]
    fn unknown_keys_fail_the_line_naming_the_key() {
        let keys = Kind::Math.option_keys();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let e = verify_line(
            Kind::Math,
            &keys,
            r#"{"gold": "1", "pred": "1", "typo_option": 3}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`typo_option`") && e.contains("gold, pred, options"),
            "{e}"
        );
        let e = verify_line(
            Kind::Math,
            &keys,
            r#"{"gold": "1", "pred": "1", "options": {"float_roundin": 3}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`float_roundin` in `options`"), "{e}");
        assert!(e.contains("float_rounding"), "{e}");
    }
}
