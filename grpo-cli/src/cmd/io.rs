//! Shared JSONL plumbing for subcommands: open the input, open the output
//! (a file or stdout), and iterate lines with their 1-based numbers.
#![allow(dead_code)] // used by the subcommands as they land

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

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

/// Calls `f(line_number, line)` for every non-blank line; `f` returns the JSON
/// value to write for that line. Errors from `f` are written as
/// `{"error": "line N: ..."}` and processing continues.
pub fn map_jsonl(
    input: impl BufRead,
    out: &mut dyn Write,
    mut f: impl FnMut(usize, &str) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<()> {
    for (i, line) in input.lines().enumerate() {
        let lineno = i + 1;
        let line = line.with_context(|| format!("reading input line {lineno}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = match f(lineno, &line) {
            Ok(v) => v,
            Err(e) => serde_json::json!({ "error": format!("line {lineno}: {e:#}") }),
        };
        serde_json::to_writer(&mut *out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
