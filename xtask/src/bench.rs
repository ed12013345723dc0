//! `cargo xtask bench <cpu|e2e>`: whole-workload benchmarks that run our code
//! and the peer (PyTorch / TRL, found through `GRPO_PEER_PYTHON`) in the same
//! invocation and print the ratio; results go to `target/bench/<name>.json`.
//!
//! - `cpu [--reps N] [--quick] [C1 C2 C3 C3b C4 C5 ...]`: the CPU workloads of
//!   `docs/benchmarks.md`. Ours runs through the hidden `grpo bench`
//!   subcommand (release build); the peer through `xtask/peer/bench_cpu.py`
//!   (PyTorch eager + transformers); the two sides alternate workload by workload
//!   (ours, then the peer) so load drift biases both alike. Generation workloads are also run
//!   without prefix sharing (`C1-noshare`, ...; the peer has no sharing). `--quick`
//!   keeps the tiny-model workloads (C1, C2) only. C5 (fused LM head + GRPO loss,
//!   fwd+bwd) runs the `bench_c5` example of grpo-kernels against the eager PyTorch
//!   script `xtask/peer/bench_c5.py`, and adds a memory row `C5-mem` (extra bytes of
//!   one fwd+bwd: peak resident-set delta on both sides, ours also as the ops' computed
//!   workspace; ratio = peer/ours, so > 10 meets the "less than a tenth" goal).
//! - `e2e [--reps N]`: one GRPO step of the TRL CPU workload (tiny Qwen2, 16 prompts ×
//!   G=8, 32 new tokens) against `xtask/peer/trl_grpo_step.py` (TRL GRPOTrainer).
//!
//! Rows named `…-gemm-only` (C2, E2E) time the workload's matrix products alone, on our
//! kernels and shapes, against the peer's whole workload: the ratio we would reach if
//! everything else (norms, attention, sampling, AdamW, …) were free, an upper bound on what
//! any faster non-GEMM code can give.
//!
//! `--no-build` runs the release binaries already in `target/` (for a checkout where a crate
//! the CLI depends on does not build at the moment).
//!
//! Both sides run on the same 2 threads (`RAYON_NUM_THREADS`, `OMP_NUM_THREADS`), one
//! untimed warm-up, median of the timed runs. `target/bench/<name>.json` holds
//! `{"C2": {"ours": s, "peer": s, "ratio": peer/ours, "unit": "s"}, ...}` (ratio > 1 means
//! we are faster, or for `unit: "bytes"` rows that we use less memory; `peer`/`ratio` are
//! null without a peer) and `<name>-detail.json` the raw
//! outputs of both sides. Every peer script lives in `xtask/peer/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::util::{cargo, project_root};

/// Threads given to both sides.
const THREADS: &str = "2";

/// The CPU workloads, in order, and whether they are generation workloads (run with and
/// without prefix sharing).
const CPU_WORKLOADS: [(&str, bool); 6] = [
    ("C1", true),
    ("C2", false),
    ("C3", true),
    ("C3b", true),
    ("C4", false),
    ("C5", false),
];

/// Entry point.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("cpu") => cpu(&args[1..]),
        Some("e2e") => e2e(&args[1..]),
        Some(other) => bail!("unknown benchmark `{other}` (expected cpu or e2e)"),
        None => bail!(
            "usage: cargo xtask bench <cpu|e2e> [--reps N] [--quick] [--no-build] [WORKLOAD ...]"
        ),
    }
}

/// Parsed options.
struct Opts {
    reps: usize,
    quick: bool,
    /// Use the release binaries already in `target/` instead of building them.
    no_build: bool,
    workloads: Vec<String>,
}

fn parse(args: &[String]) -> anyhow::Result<Opts> {
    let mut o = Opts {
        reps: 3,
        quick: false,
        no_build: false,
        workloads: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reps" => {
                let v = it.next().context("--reps needs a value")?;
                o.reps = v.parse().with_context(|| format!("--reps {v}"))?;
                if o.reps == 0 {
                    bail!("--reps must be at least 1");
                }
            }
            "--quick" => o.quick = true,
            "--no-build" => o.no_build = true,
            w if !w.starts_with('-') => o.workloads.push(w.to_string()),
            other => bail!("unknown option `{other}`"),
        }
    }
    Ok(o)
}

fn cpu(args: &[String]) -> anyhow::Result<()> {
    let o = parse(args)?;
    let selected: Vec<(&str, bool)> = if o.workloads.is_empty() {
        CPU_WORKLOADS
            .iter()
            .copied()
            .filter(|(w, _)| !o.quick || matches!(*w, "C1" | "C2"))
            .collect()
    } else {
        o.workloads
            .iter()
            .map(|w| {
                CPU_WORKLOADS
                    .iter()
                    .copied()
                    .find(|(k, _)| k.eq_ignore_ascii_case(w))
                    .with_context(|| format!("unknown CPU workload `{w}` (C1 C2 C3 C3b C4 C5)"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let model_workloads: Vec<(&str, bool)> = selected
        .iter()
        .copied()
        .filter(|(w, _)| *w != "C5")
        .collect();
    let with_c5 = selected.iter().any(|(w, _)| *w == "C5");

    // Ours and the peer alternate workload by workload, so a change in the machine's load
    // during the run biases both sides of a ratio alike.
    let py = peer_python();
    let mut ours = Map::new();
    let mut peer_map = Map::new();
    let grpo = if model_workloads.is_empty() {
        None
    } else {
        Some(build_ours(o.no_build)?)
    };
    for &(w, is_gen) in &model_workloads {
        let Some(grpo) = &grpo else { break };
        ours.insert(w.to_string(), run_ours(grpo, w, o.reps, false)?);
        if is_gen {
            ours.insert(format!("{w}-noshare"), run_ours(grpo, w, o.reps, true)?);
        }
        if let Some(py) = &py {
            let script = peer_script("bench_cpu.py");
            let mut cmd = Command::new(py);
            cmd.arg(script).args(["--reps", &o.reps.to_string()]).arg(w);
            let v = run_json(&mut cmd, &format!("peer {w} (PyTorch)"))?;
            for key in ["torch", "threads"] {
                if let Some(x) = v.get(key) {
                    peer_map.insert(key.to_string(), x.clone());
                }
            }
            if let Some(x) = v.get(w) {
                peer_map.insert(w.to_string(), x.clone());
            }
        }
    }
    if with_c5 {
        ours.insert("C5".to_string(), run_ours_c5(o.reps, o.no_build)?);
        if let Some(py) = &py {
            let mut cmd = Command::new(py);
            cmd.arg(peer_script("bench_c5.py"))
                .args(["--reps", &o.reps.to_string()]);
            peer_map.insert(
                "C5".to_string(),
                run_json(&mut cmd, "peer C5 (PyTorch eager)")?,
            );
        }
    }
    let peer = py.as_ref().map(|_| Value::Object(peer_map));

    let mut rows = Vec::new();
    for &(w, is_gen) in &selected {
        let peer_s = peer.as_ref().and_then(|p| p[w]["s"].as_f64());
        rows.push(Row::seconds(w, seconds(&ours[w])?, peer_s));
        if let Some(g) = ours[w]["gemm_only_s"].as_f64() {
            rows.push(Row::seconds(&format!("{w}-gemm-only"), g, peer_s));
        }
        if is_gen {
            let k = format!("{w}-noshare");
            rows.push(Row::seconds(&k, seconds(&ours[&k])?, peer_s));
        }
        if w == "C5" {
            let bytes = |v: Option<&Value>| v.and_then(|v| v["peak_rss_delta_bytes"].as_f64());
            let ours_b = bytes(ours.get("C5"))
                .or_else(|| ours["C5"]["workspace_bytes"].as_f64())
                .context("ours C5 reported no memory")?;
            let peer_b = bytes(peer.as_ref().map(|p| &p["C5"]));
            rows.push(Row {
                name: "C5-mem".to_string(),
                ours: ours_b,
                peer: peer_b,
                unit: "bytes",
            });
        }
    }
    report("cpu", &rows, json!({"ours": ours, "peer": peer}))
}

fn e2e(args: &[String]) -> anyhow::Result<()> {
    let o = parse(args)?;
    if !o.workloads.is_empty() {
        bail!("`bench e2e` takes no workload names");
    }
    let grpo = build_ours(o.no_build)?;
    let ours = run_ours(&grpo, "e2e", o.reps, false)?;
    let peer = match peer_python() {
        Some(py) => {
            let mut cmd = Command::new(py);
            // The first step is the warm-up (the script reports the median of the others).
            cmd.arg(peer_script("trl_grpo_step.py"))
                .arg((o.reps + 1).to_string());
            Some(run_json(&mut cmd, "peer (TRL)")?)
        }
        None => None,
    };
    let peer_s = peer
        .as_ref()
        .and_then(|p| p["step_s_median_after_first"].as_f64());
    let mut rows = vec![Row::seconds("E2E", seconds(&ours)?, peer_s)];
    if let Some(g) = ours["gemm_only_s"].as_f64() {
        rows.push(Row::seconds("E2E-gemm-only", g, peer_s));
    }
    report("e2e", &rows, json!({"ours": ours, "peer": peer}))
}

/// Builds the CLI in release (unless `no_build`) and returns the binary's path.
fn build_ours(no_build: bool) -> anyhow::Result<PathBuf> {
    if !no_build {
        cargo(&["build", "--release", "-p", "grpo-cli"])?;
    }
    let exe = format!("grpo{}", std::env::consts::EXE_SUFFIX);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    Ok(target.join("release").join(exe))
}

/// `GRPO_PEER_PYTHON`, or `None` with a message when it is unset.
fn peer_python() -> Option<String> {
    match std::env::var("GRPO_PEER_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!(
                "GRPO_PEER_PYTHON is not set: skipping the peer (set it to a python with torch, \
                 transformers and, for e2e, trl 1.16)"
            );
            None
        }
    }
}

/// A peer script of this repository (`xtask/peer/NAME`).
fn peer_script(name: &str) -> PathBuf {
    project_root().join("xtask/peer").join(name)
}

fn run_ours(grpo: &Path, workload: &str, reps: usize, no_share: bool) -> anyhow::Result<Value> {
    let mut cmd = Command::new(grpo);
    cmd.args(["bench", &workload.to_ascii_lowercase()])
        .args(["--reps", &reps.to_string()]);
    if no_share {
        cmd.arg("--no-share");
    }
    let label = format!(
        "ours {workload}{}",
        if no_share { " (no sharing)" } else { "" }
    );
    run_json(&mut cmd, &label)
}

/// Builds and runs the `bench_c5` example of grpo-kernels (release).
fn run_ours_c5(reps: usize, no_build: bool) -> anyhow::Result<Value> {
    if !no_build {
        cargo(&[
            "build",
            "--release",
            "-p",
            "grpo-kernels",
            "--example",
            "bench_c5",
        ])?;
    }
    let exe = format!("bench_c5{}", std::env::consts::EXE_SUFFIX);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    let mut cmd = Command::new(target.join("release/examples").join(exe));
    cmd.args(["--reps", &reps.to_string()]);
    run_json(&mut cmd, "ours C5")
}

/// Runs `cmd` on the benchmark threads and parses the last line of its stdout as JSON.
fn run_json(cmd: &mut Command, label: &str) -> anyhow::Result<Value> {
    cmd.current_dir(project_root())
        .env("RAYON_NUM_THREADS", THREADS)
        .env("OMP_NUM_THREADS", THREADS)
        .env("MKL_NUM_THREADS", THREADS)
        .env("GRPO_BENCH_THREADS", THREADS)
        .stderr(std::process::Stdio::inherit());
    eprintln!("$ {cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {label}: {cmd:?}"))?;
    if !out.status.success() {
        bail!("{label} failed with {}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{label} printed no JSON line"))?;
    let v: Value =
        serde_json::from_str(line).with_context(|| format!("{label}: bad JSON `{line}`"))?;
    eprintln!("{label}: {v}");
    Ok(v)
}

fn seconds(v: &Value) -> anyhow::Result<f64> {
    v["s"]
        .as_f64()
        .with_context(|| format!("no `s` (seconds) in {v}"))
}

/// One line of the summary table.
struct Row {
    name: String,
    ours: f64,
    peer: Option<f64>,
    /// `"s"` (ratio = peer/ours time) or `"bytes"` (ratio = peer/ours memory).
    unit: &'static str,
}

impl Row {
    fn seconds(name: &str, ours: f64, peer: Option<f64>) -> Self {
        Row {
            name: name.to_string(),
            ours,
            peer,
            unit: "s",
        }
    }
}

/// Prints the table and writes `target/bench/<name>.json` and `<name>-detail.json`.
fn report(name: &str, rows: &[Row], detail: Value) -> anyhow::Result<()> {
    let mut summary = Map::new();
    println!(
        "\n{:<12} {:>12} {:>12} {:>12}  unit",
        "workload", "ours", "peer", "peer/ours"
    );
    for r in rows {
        let ratio = r.peer.map(|p| p / r.ours);
        let fmt = |x: Option<f64>, prec: usize| {
            x.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
        };
        let prec = if r.unit == "s" { 4 } else { 0 };
        println!(
            "{:<12} {:>12} {:>12} {:>12}  {}",
            r.name,
            fmt(Some(r.ours), prec),
            fmt(r.peer, prec),
            fmt(ratio, 2),
            r.unit
        );
        summary.insert(
            r.name.clone(),
            json!({"ours": r.ours, "peer": r.peer, "ratio": ratio, "unit": r.unit}),
        );
    }
    let dir = project_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&Value::Object(summary))?,
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    let detail_path = dir.join(format!("{name}-detail.json"));
    std::fs::write(&detail_path, serde_json::to_string_pretty(&detail)?)
        .with_context(|| format!("cannot write {}", detail_path.display()))?;
    println!("\nwrote {} and {}", path.display(), detail_path.display());
    Ok(())
}
