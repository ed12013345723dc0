//! PNG plots of a run's metrics (reward, accuracy, KL, response length over
//! steps), drawn with plotters and an embedded DejaVu Sans font so they look
//! the same on every machine.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use serde_json::Value;

use crate::error::{Result, TrainError};
use crate::metrics::Record;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            tracing::warn!("could not register the embedded plot font");
        }
    });
}

/// The panels of the run plot: (title, metric keys separated by `|`, the first present wins).
const PANELS: &[(&str, &str)] = &[
    ("reward (mean)", "reward/mean"),
    // GRPO: training-batch accuracy; SFT: the `stop_at_accuracy` checks.
    ("accuracy", "accuracy|sft/check_accuracy"),
    ("KL to reference", "kl"),
    ("response length (tokens)", "response_length/mean"),
    ("eval accuracy", "eval/accuracy"),
    ("loss", "loss"),
];

/// Points of `key` for one stage, on a global x axis where GRPO steps
/// continue after the last SFT step.
fn series(history: &[Record], key: &str, stage: &str) -> Vec<(f64, f64)> {
    let sft_end = history
        .iter()
        .filter(|r| r.get("stage").and_then(Value::as_str) == Some("sft"))
        .filter_map(|r| r.get("step").and_then(Value::as_f64))
        .fold(0.0, f64::max);
    history
        .iter()
        .filter(|r| r.get("stage").and_then(Value::as_str).unwrap_or("grpo") == stage)
        .filter_map(|r| {
            let step = r.get("step").and_then(Value::as_f64)?;
            let x = if stage == "grpo" {
                sft_end + step
            } else {
                step
            };
            let y = key
                .split('|')
                .find_map(|k| r.get(k).and_then(Value::as_f64))?;
            y.is_finite().then_some((x, y))
        })
        .collect()
}

/// Names of the reward components of the run (the `reward_components` key of GRPO records).
fn component_names(history: &[Record]) -> Vec<String> {
    history
        .iter()
        .rev()
        .find_map(|r| r.get("reward_components").and_then(Value::as_str))
        .map(|s| {
            s.split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

const STAGES: &[(&str, RGBColor)] = &[
    ("sft", RGBColor(214, 39, 40)),
    ("grpo", RGBColor(31, 119, 180)),
];

/// Draws a 3×2 grid of line charts into `path` (PNG).
pub fn plot_run(history: &[Record], path: &Path, title: &str) -> Result<()> {
    register_font();
    let err =
        |e: &dyn std::fmt::Display| TrainError::Other(format!("plot {}: {e}", path.display()));
    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 24))
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((3, 2));
    for (area, (name, key)) in areas.iter().zip(PANELS) {
        let per_stage: Vec<(&str, RGBColor, Vec<(f64, f64)>)> = STAGES
            .iter()
            .map(|(st, c)| (*st, *c, series(history, key, st)))
            .collect();
        let pts: Vec<(f64, f64)> = per_stage
            .iter()
            .flat_map(|(_, _, p)| p.iter().copied())
            .collect();
        // The reward panel's range covers its component lines too.
        let extra: Vec<(f64, f64)> = if *key == "reward/mean" {
            component_names(history)
                .iter()
                .flat_map(|n| series(history, &format!("reward/{n}"), "grpo"))
                .collect()
        } else {
            Vec::new()
        };
        let all: Vec<(f64, f64)> = pts.iter().chain(&extra).copied().collect();
        let (x0, x1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y0, y1) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (x0, x1) = if pts.is_empty() {
            (0.0, 1.0)
        } else {
            (x0, x1.max(x0 + 1.0))
        };
        let (y0, y1) = if pts.is_empty() {
            (0.0, 1.0)
        } else {
            let pad = ((y1 - y0) * 0.05).max(1e-6);
            (y0 - pad, y1 + pad)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(*name, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .draw()
            .map_err(|e| err(&e))?;
        if !pts.is_empty() {
            chart
                .draw_series(LineSeries::new(pts.clone(), &BLUE))
                .map_err(|e| err(&e))?
                .label(if *key == "reward/mean" {
                    "reward"
                } else {
                    *name
                })
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        }
        // The reward panel also shows each named reward component (`reward/<name>`).
        if *key == "reward/mean" {
            let names = component_names(history);
            if names.len() > 1 {
                for (i, n) in names.iter().enumerate() {
                    let color = Palette99::pick(i + 1).to_rgba();
                    let pts = series(history, &format!("reward/{n}"), "grpo");
                    chart
                        .draw_series(LineSeries::new(pts, color))
                        .map_err(|e| err(&e))?
                        .label(n.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(&e))?;
            }
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::num;

    #[test]
    fn reward_components_are_read_from_the_records() {
        let mut r = Record::new();
        r.insert("reward_components".into(), "correct,format".into());
        assert_eq!(component_names(&[r]), vec!["correct", "format"]);
        assert!(component_names(&[]).is_empty());
    }

    #[test]
    fn writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let mut hist = Vec::new();
        for s in 0..10 {
            let mut r = Record::new();
            r.insert("step".into(), s.into());
            r.insert("reward/mean".into(), num(s as f64 / 10.0));
            r.insert("kl".into(), num(0.01 * s as f64));
            r.insert("reward_components".into(), "correct,length".into());
            r.insert("reward/correct".into(), num(s as f64 / 20.0));
            r.insert("reward/length".into(), num(-0.1));
            hist.push(r);
        }
        let p = std::env::var_os("GRPO_PLOT_TEST_OUT")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| dir.path().join("plot.png"));
        plot_run(&hist, &p, "test run").unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 10_000);
    }
}
