//! Reads JSON lines `{"gold", "pred", "options"?}` on stdin and writes one
//! line per input: `{"correct": bool}` or `{"error": "..."}` (a gold that does
//! not parse). Used by `scripts/math_agreement.py` to run our math verifier
//! side by side with Math-Verify.

use std::io::{BufRead, Write};

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line?;
        let v = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) => v,
            Err(e) => {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"error": format!("line {}: {e}", i + 1)})
                )?;
                continue;
            }
        };
        let r = match grpo_rewards::math::verify_json(&v) {
            Ok(r) => serde_json::json!({"correct": r["correct"], "extracted": r["extracted"]}),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
        writeln!(out, "{r}")?;
    }
    out.flush()
}
