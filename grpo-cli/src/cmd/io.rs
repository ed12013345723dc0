//! Shared JSONL plumbing for subcommands: open the input, open the output
//! (a file or stdout), iterate lines with their 1-based numbers, check each
//! line's keys, and the one exit rule of every JSONL command.
//!
//! The rule: every input line gets one output line, in order (a result, or
//! `{"error": "line N: ..."}`); one bad line never stops the others; the
//! command exits 0 when every line succeeded and 2 when any failed, after
//! writing all lines, with the count of failed lines on stderr.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// Opens `path` for reading line by line.
pub fn open_input(path: &Path) -> anyhow::Result<BufReader<File>> {
    let f =
        File::open(path).with_context(|| format!("cannot open input file {}", path.display()))?;
    Ok(BufReader::new(f))
}

/// Opens the output: the given file, or stdout when `None`.
pub fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => {
            Box::new(BufWriter::new(File::create(p).with_context(|| {
                format!("cannot create output file {}", p.display())
            })?))
        }
        None => Box::new(BufWriter::new(io::stdout().lock())),
    })
}

/// How many lines a JSONL command processed and how many of them failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines that produced an output line.
    pub lines: usize,
    /// Lines whose output line is an error.
    pub failed: usize,
}

impl Tally {
    /// Counts one line.
    pub fn count(&mut self, ok: bool) {
        self.lines += 1;
        if !ok {
            self.failed += 1;
        }
    }

    /// The command's outcome: `Ok` when no line failed, else an error with the count
    /// (printed on stderr by `main`, which then exits with 2).
    pub fn finish(self) -> anyhow::Result<()> {
        if self.failed > 0 {
            bail!(
                "{} of {} input line(s) failed (see the \"error\" lines of the output)",
                self.failed,
                self.lines
            );
        }
        Ok(())
    }
}

/// Calls `f(line_number, line)` for every non-blank line; `f` returns the JSON
/// value to write for that line. Errors from `f` are written as
/// `{"error": "line N: ..."}` and processing continues. Returns the tally
/// (see [`Tally::finish`] for the exit rule).
pub fn map_jsonl(
    input: impl BufRead,
    out: &mut dyn Write,
    mut f: impl FnMut(usize, &str) -> anyhow::Result<Value>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for (i, line) in input.lines().enumerate() {
        let lineno = i + 1;
        let line = line.with_context(|| format!("reading input line {lineno}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let res = f(lineno, &line);
        tally.count(res.is_ok());
        let value = match res {
            Ok(v) => v,
            Err(e) => error_line(lineno, &format!("{e:#}")),
        };
        write_line(out, &value)?;
    }
    out.flush()?;
    Ok(tally)
}

/// `{"error": "line N: message"}`.
pub fn error_line(lineno: usize, message: &str) -> Value {
    serde_json::json!({ "error": format!("line {lineno}: {message}") })
}

/// Writes `value` and a newline.
pub fn write_line(out: &mut dyn Write, value: &Value) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Parses a line into a JSON object.
pub fn parse_object(line: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(line).context("invalid JSON")? {
        Value::Object(o) => Ok(o),
        other => bail!("expected a JSON object, got {}", kind_name(&other)),
    }
}

/// Fails on the first key of `obj` that is not in `accepted`, naming it and the
/// accepted keys. `within` names the enclosing key for a nested object (`None` for
/// the line itself).
pub fn check_keys(
    obj: &Map<String, Value>,
    accepted: &[&str],
    within: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(k) = obj.keys().find(|k| !accepted.contains(&k.as_str())) {
        let place = within.map_or(String::new(), |w| format!(" in `{w}`"));
        bail!(
            "unknown key `{k}`{place} (accepted keys: {})",
            accepted.join(", ")
        );
    }
    Ok(())
}

/// The keys of a JSON object serialised from `value` (e.g. an options struct's
/// default), so an accepted-keys list cannot drift from the struct.
pub fn keys_of(value: &impl serde::Serialize) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(Value::Object(o)) => o.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// "an object", "a string", ... for messages (the same names the server uses).
pub use grpo_rollout::serve::kind_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_with_the_accepted_ones() {
        let obj = parse_object(r#"{"gold": "1", "typo_option": 3}"#).unwrap();
        check_keys(&obj, &["gold", "typo_option"], None).unwrap();
        let e = check_keys(&obj, &["gold", "pred"], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown key `typo_option` (accepted keys: gold, pred)"
        );
        let e = check_keys(&obj, &["gold"], Some("options")).unwrap_err();
        assert!(e.to_string().contains("in `options`"), "{e}");
        assert!(
            parse_object("[1]")
                .unwrap_err()
                .to_string()
                .contains("an array")
        );
    }

    #[test]
    fn map_jsonl_counts_failures_and_keeps_going() {
        let input = "1\n\nx\n2\n";
        let mut out = Vec::new();
        let tally = map_jsonl(input.as_bytes(), &mut out, |_, l| {
            let n: i64 = l.parse()?;
            Ok(serde_json::json!(n * 10))
        })
        .unwrap();
        assert_eq!(
            tally,
            Tally {
                lines: 3,
                failed: 1
            }
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "10");
        assert!(lines[1].contains("line 3:"), "{}", lines[1]);
        assert_eq!(lines[2], "20");
        let e = tally.finish().unwrap_err();
        assert!(
            e.to_string().starts_with("1 of 3 input line(s) failed"),
            "{e}"
        );
        assert!(
            Tally {
                lines: 2,
                failed: 0
            }
            .finish()
            .is_ok()
        );
    }
}
