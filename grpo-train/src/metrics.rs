//! Run metrics: one JSON object per line in `metrics.jsonl` (the source of
//! truth, flushed after every record so a crash loses at most one line), and a
//! TensorBoard event file with the same scalars.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Result, TrainError};
use crate::tfevents::EventWriter;

/// One metrics record: a flat map from key to number or string.
pub type Record = BTreeMap<String, Value>;

/// Writes metrics records to JSONL and TensorBoard.
pub struct MetricsSink {
    jsonl_path: PathBuf,
    jsonl: BufWriter<File>,
    events: Option<EventWriter>,
    history: Vec<Record>,
}

impl MetricsSink {
    /// Opens (appending) `dir/metrics.jsonl` and a new event file in `dir/tb/`.
    /// `history` holds the records already written (when resuming).
    pub fn open(dir: &Path, history: Vec<Record>) -> Result<Self> {
        let jsonl_path = dir.join("metrics.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jsonl_path)
            .map_err(|e| TrainError::io(&jsonl_path, e))?;
        let events = EventWriter::create(&dir.join("tb")).ok();
        Ok(Self {
            jsonl_path,
            jsonl: BufWriter::new(file),
            events,
            history,
        })
    }

    /// Appends one record (must contain an integer `step`).
    pub fn write(&mut self, record: Record) -> Result<()> {
        let line = serde_json::to_string(&record).map_err(|e| TrainError::Other(e.to_string()))?;
        self.jsonl
            .write_all(line.as_bytes())
            .and_then(|_| self.jsonl.write_all(b"\n"))
            .and_then(|_| self.jsonl.flush())
            .map_err(|e| TrainError::io(&self.jsonl_path, e))?;
        let step = record.get("step").and_then(Value::as_i64).unwrap_or(0);
        if let Some(ev) = self.events.as_mut() {
            let stage = record.get("stage").and_then(Value::as_str).unwrap_or("");
            let scalars: Vec<(String, f32)> = record
                .iter()
                .filter_map(|(k, v)| v.as_f64().map(|x| (k, x)))
                .filter(|(k, _)| k.as_str() != "step")
                .map(|(k, x)| (format!("{stage}/{k}"), x as f32))
                .collect();
            // TensorBoard is a derived view: a write failure is logged, not fatal.
            if let Err(e) = ev.write_scalars(step, &scalars) {
                tracing::warn!("tensorboard event write failed: {e}");
            }
        }
        self.history.push(record);
        Ok(())
    }

    /// All records written so far in this run (including resumed history).
    pub fn history(&self) -> &[Record] {
        &self.history
    }
}

/// Reads `metrics.jsonl` back (used on resume and by the plots).
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(line).map_err(|e| {
            TrainError::Other(format!(
                "{}:{}: malformed metrics line: {e}",
                path.display(),
                i + 1
            ))
        })?;
        out.push(rec);
    }
    Ok(out)
}

/// Accumulates mean/std/min/max of a stream of values for one metrics record.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    n: usize,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Summary {
    /// Adds a value (non-finite values are ignored).
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.n == 0 {
            self.min = x;
            self.max = x;
        }
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// Population standard deviation (0 when empty).
    pub fn std(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let m = self.mean();
        (self.sum_sq / self.n as f64 - m * m).max(0.0).sqrt()
    }

    /// Writes `prefix/mean`, `prefix/std`, `prefix/min`, `prefix/max` into `rec`.
    pub fn write_into(&self, rec: &mut Record, prefix: &str) {
        rec.insert(format!("{prefix}/mean"), num(self.mean()));
        rec.insert(format!("{prefix}/std"), num(self.std()));
        rec.insert(
            format!("{prefix}/min"),
            num(if self.n == 0 { 0.0 } else { self.min }),
        );
        rec.insert(
            format!("{prefix}/max"),
            num(if self.n == 0 { 0.0 } else { self.max }),
        );
    }
}

/// A JSON number (non-finite values become `null`).
pub fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_statistics() {
        let mut s = Summary::default();
        for x in [1.0, 2.0, 3.0, f64::NAN] {
            s.push(x);
        }
        assert_eq!(s.mean(), 2.0);
        assert!((s.std() - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        let mut rec = Record::new();
        s.write_into(&mut rec, "reward");
        assert_eq!(rec["reward/max"], num(3.0));
    }

    #[test]
    fn jsonl_round_trip_and_append() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut sink = MetricsSink::open(dir.path(), Vec::new()).unwrap();
            let mut r = Record::new();
            r.insert("step".into(), 1.into());
            r.insert("loss".into(), num(0.5));
            sink.write(r).unwrap();
        }
        {
            let mut sink = MetricsSink::open(dir.path(), Vec::new()).unwrap();
            let mut r = Record::new();
            r.insert("step".into(), 2.into());
            sink.write(r).unwrap();
        }
        let back = read_jsonl(&dir.path().join("metrics.jsonl")).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0]["loss"], num(0.5));
        assert_eq!(back[1]["step"], Value::from(2));
    }
}
