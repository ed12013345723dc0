//! GUI-action verification: parse an action from model text and score it
//! against a gold action with one of the anchors' reward functions.
//!
//! Each profile takes the gold in its anchor's own ground-truth format and,
//! for a response string, reads it the way the anchor's reward function does
//! (the anchors' sources are recorded in `tests/data/gui/*.jsonl`):
//! - `gui_r1` (GUI-R1 `r1gui.py`): gold `{"action", "gt_bbox", "input_text"}`
//!   (a dict or its JSON string; the data set's `gt_action` / `gt_input_text`
//!   names are accepted too). `overall = 0.8 * accuracy + 0.2 * format`.
//!   Format: the whole response is `<think>..</think>\s*<answer>..</answer>`
//!   and the answer is a list of dicts with a string `action`, a `point`
//!   whose first two entries are integers, a string `input_text`
//!   (`type`/`select`/`open_app` with `no input text` and `scroll` without
//!   `left/right/up/down` fail). Accuracy reads `'action': '..'`,
//!   `'input_text': '..'` and the last `[int, int]` of the answer with the
//!   anchor's patterns (a point written with decimals is not a point; no
//!   point reads as `[0, 0]`, as in the anchor); click on a gold point:
//!   distance < 140 px; click on a gold box: strictly inside;
//!   `type`/`select`/`scroll`: token-set F1 >= 0.5 (brackets removed, single
//!   tokens: substring either way); other actions: type match.
//! - `ui_r1` (UI-R1 `grpo_json_action_coord.py`): gold the
//!   `<answer>[{'action': 'click', 'coordinate': [x1, y1, x2, y2]}]</answer>`
//!   string (a dummy `[0,0,0,0]` box for other actions) or a dict.
//!   `total = action + coordinate + format` (0..3); action names compared as
//!   written; click coordinate = first `[int, int]` of the answer,
//!   `int(x * scale_x), int(y * scale_y)` inside the box inclusive.
//! - `gui_g1` (GUI-G1 `grpo_rec.py`): gold a bare `[x1, y1, x2, y2]` box (or
//!   a dict with a box); the response is a Python literal (after a
//!   ```` ```json ```` fence if a line is exactly that) whose first element has
//!   `bbox_2d`. `total = hit + 0.25 * IoU + 0.125 * box` with the anchor's
//!   IoU (intersection on `x2 - 1`, union of `w * h` areas) and box = harmonic
//!   mean of `1 - |d| / side`; needs the image size.
//! - `infigui_r1_androidcontrol` (InfiGUI-R1 `evaluate_android_control.py`):
//!   gold the evaluator's check dict (`action` in `click`, `long_press`,
//!   `swipe`, `type`, `open`, `system_button`, `wait`, with `coordinate`,
//!   `candidate_bbox`, `direction`, `text`, `button`; AndroidControl's
//!   `action_type` names are mapped onto these); the response is the
//!   `<tool_call>{"name": "mobile_use", "arguments": {..}}</tool_call>` call.
//!   Click/long_press: inside a candidate box enlarged by `enlarge_factor`
//!   (1.2) about its centre, or within `point_threshold` (0.04) x max(W, H)
//!   of the gold point, distances measured in the model's (resized) pixels;
//!   swipe: direction from the dominant axis of `coordinate` ->
//!   `coordinate2`; type/open: case-insensitive containment either way;
//!   `open` also satisfied by a click in the app's candidate box (or near
//!   the first box's centre); system button: equal ignoring case; wait: type
//!   match. Reward 1.0 on exact match.
//!
//! Coordinate frames are explicit: `pred_frame` / `gold_frame` in
//! `pixels`, `normalized` (0-1), `normalized_1000` (0-1000) or `resized`
//! (pixels of a `resized_width` x `resized_height` image); both sides are
//! converted to pixels of the `width` x `height` screen before comparing.
//! The anchors' option names are accepted as written: `image_size: [W, H]`,
//! `scale` / `scales: [sx, sy]` (UI-R1), `bbox_enlarge_factor` /
//! `BBOX_ENLARGE_FACTOR` and `point_distance_threshold` /
//! `POINT_DISTANCE_THRESHOLD` (InfiGUI-R1).
//!
//! Where we differ from an anchor on purpose: answers are parsed as literals,
//! never evaluated (GUI-R1 calls `eval`); a prediction given as a JSON
//! object, or a call such as `click(100, 200)`, is read leniently by every
//! profile.
//!
//! ```
//! use grpo_rewards::gui::{score, GuiOptions, Profile};
//! use serde_json::json;
//! let gold = json!({"action": "click", "gt_bbox": [100, 100, 200, 200], "input_text": "no input text"});
//! let pred = "<think>the button</think> <answer>[{'action': 'click', 'point': [150, 160], 'input_text': 'no input text'}]</answer>";
//! let s = score(Profile::GuiR1, &gold, &json!(pred), &GuiOptions::default()).unwrap();
//! assert_eq!(s.reward, 1.0);
//! ```

#![allow(clippy::collapsible_if)] // nested ifs read as the anchors' rules

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, RewardError};
use crate::toolcall::parse_python_literal;

/// A reward profile reproducing one anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// GUI-R1.
    GuiR1,
    /// UI-R1.
    UiR1,
    /// GUI-G1.
    GuiG1,
    /// InfiGUI-R1's AndroidControl evaluator.
    InfiguiR1Androidcontrol,
}

/// A coordinate frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// Absolute pixels of the `width` x `height` screen.
    #[default]
    Pixels,
    /// Fractions of the screen, 0..1.
    Normalized,
    /// Thousandths of the screen, 0..1000.
    Normalized1000,
    /// Pixels of the resized image (`resized_width` x `resized_height`).
    Resized,
}

/// Options shared by the profiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuiOptions {
    /// Screen width in pixels (needed by `gui_g1` and `infigui_r1_androidcontrol`).
    pub width: Option<f64>,
    /// Screen height in pixels.
    pub height: Option<f64>,
    /// Screen size as the anchors write it, `[W, H]` (GUI-R1's `image_size`);
    /// the same as `width` and `height`.
    pub image_size: Option<[f64; 2]>,
    /// Width of the resized image the model saw.
    pub resized_width: Option<f64>,
    /// Height of the resized image the model saw.
    pub resized_height: Option<f64>,
    /// Frame of the predicted coordinates.
    pub pred_frame: Frame,
    /// Frame of the gold coordinates.
    pub gold_frame: Frame,
    /// UI-R1's x scale applied to the predicted point before truncation.
    pub scale_x: f64,
    /// UI-R1's y scale.
    pub scale_y: f64,
    /// UI-R1's scale pair `[scale_x, scale_y]` (its `scales` entry: original
    /// size over resized size).
    #[serde(alias = "scales")]
    pub scale: Option<[f64; 2]>,
    /// InfiGUI-R1's candidate-box enlargement factor (`BBOX_ENLARGE_FACTOR`).
    #[serde(alias = "bbox_enlarge_factor", alias = "BBOX_ENLARGE_FACTOR")]
    pub enlarge_factor: f64,
    /// InfiGUI-R1's click distance threshold as a fraction of the longer
    /// side (`POINT_DISTANCE_THRESHOLD`).
    #[serde(alias = "point_distance_threshold", alias = "POINT_DISTANCE_THRESHOLD")]
    pub point_threshold: f64,
}

impl Default for GuiOptions {
    fn default() -> Self {
        GuiOptions {
            width: None,
            height: None,
            image_size: None,
            resized_width: None,
            resized_height: None,
            pred_frame: Frame::Pixels,
            gold_frame: Frame::Pixels,
            scale_x: 1.0,
            scale_y: 1.0,
            scale: None,
            enlarge_factor: 1.2,
            point_threshold: 0.04,
        }
    }
}

fn bad(field: &str, reason: String) -> RewardError {
    RewardError::InvalidInput {
        field: field.into(),
        reason,
    }
}

impl GuiOptions {
    /// Folds the anchors' pair options (`image_size`, `scale`) into
    /// `width`/`height` and `scale_x`/`scale_y`; `Err` when both spellings
    /// are given with different values.
    pub fn resolved(&self) -> Result<GuiOptions> {
        let mut o = self.clone();
        if let Some([w, h]) = self.image_size {
            for (name, ours, theirs) in [("width", self.width, w), ("height", self.height, h)] {
                if ours.is_some_and(|v| v != theirs) {
                    return Err(bad(
                        "options.image_size",
                        format!("[{w}, {h}] disagrees with options.{name} = {ours:?}"),
                    ));
                }
            }
            o.width = Some(w);
            o.height = Some(h);
        }
        if let Some([sx, sy]) = self.scale {
            if (self.scale_x != 1.0 && self.scale_x != sx)
                || (self.scale_y != 1.0 && self.scale_y != sy)
            {
                return Err(bad(
                    "options.scale",
                    format!(
                        "[{sx}, {sy}] disagrees with scale_x = {}, scale_y = {}",
                        self.scale_x, self.scale_y
                    ),
                ));
            }
            o.scale_x = sx;
            o.scale_y = sy;
        }
        o.image_size = None;
        o.scale = None;
        Ok(o)
    }

    fn screen(&self, profile: &str) -> Result<(f64, f64)> {
        match (self.width, self.height) {
            (Some(w), Some(h)) if w > 0.0 && h > 0.0 => Ok((w, h)),
            _ => Err(bad(
                "options.image_size",
                format!("{profile} needs the screen size: image_size [W, H] or width and height"),
            )),
        }
    }
}

/// A scored GUI action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuiScore {
    /// The profile's overall reward.
    pub reward: f64,
    /// Named components (`format`, `accuracy`, `action`, `coordinate`, `hit`, `iou`, `box`, `exact_match`...).
    pub components: BTreeMap<String, f64>,
    /// Whether the action types matched (`gui_g1`: whether a box was read).
    pub type_match: bool,
}

/// A parsed action, in a neutral form.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Action {
    /// Lowercased action name as written.
    pub kind: String,
    /// A point (x, y).
    pub point: Option<[f64; 2]>,
    /// A box (x1, y1, x2, y2).
    pub bbox: Option<[f64; 4]>,
    /// Typed text / app name / key.
    pub text: Option<String>,
    /// Scroll direction.
    pub direction: Option<String>,
    /// Start and end points of a swipe.
    pub swipe: Option<[f64; 4]>,
}

fn re(p: &str) -> Regex {
    Regex::new(p).expect("static regex")
}

static ANSWER: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)<answer>(.*?)</answer>"));
static FENCE: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)```(?:json|python)?\s*(.*?)```"));
static CALL: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)^\s*([A-Za-z_]+)\s*\((.*)\)\s*$"));
// the anchors' own patterns (GUI-R1 r1gui.py, UI-R1 grpo_json_action_coord.py)
static Q_ACTION: LazyLock<Regex> = LazyLock::new(|| re(r"'action':\s*'(\w+)'"));
static BARE_ACTION: LazyLock<Regex> = LazyLock::new(|| re(r"'action':\s*(\w+)"));
static R1_INPUT: LazyLock<Regex> = LazyLock::new(|| re(r"'input_text':\s*'(.*?)'"));
static R1_POINT: LazyLock<Regex> = LazyLock::new(|| re(r"\{.*\[(\d+),\s*(\d+)\]\s*.*\}"));
static UI_POINT: LazyLock<Regex> = LazyLock::new(|| re(r"\[(\d+),\s*(\d+)\]"));
static UI_BOX: LazyLock<Regex> = LazyLock::new(|| re(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\]"));
static THINK_ANSWER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?s)\A<think>.*?</think>\s*<answer>.*?</answer>\z"));

/// The content of `<answer>...</answer>` (or the whole text), without code fences.
fn answer_body(text: &str) -> String {
    let body = ANSWER
        .captures(text)
        .and_then(|c| c.get(1))
        .map_or(text, |m| m.as_str());
    let body = FENCE
        .captures(body)
        .and_then(|c| c.get(1))
        .map_or(body, |m| m.as_str());
    body.trim().to_string()
}

/// The first `<answer>` content, stripped, as the anchors read it.
fn first_answer(text: &str) -> Option<&str> {
    ANSWER
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().trim())
}

/// Parses the answer part of a response as a JSON or Python-literal value,
/// or a call such as `click(100, 200)` / `type("hello")` / `scroll(down)`.
pub fn parse_answer_value(text: &str) -> Option<Value> {
    let body = answer_body(text);
    if let Ok(v) = serde_json::from_str::<Value>(&body) {
        return Some(v);
    }
    if let Ok(v) = parse_python_literal(&body) {
        return Some(v);
    }
    let c = CALL.captures(&body)?;
    let name = c.get(1)?.as_str().to_lowercase();
    let args = c.get(2)?.as_str();
    let mut m = serde_json::Map::new();
    m.insert("action".into(), Value::String(name));
    let mut nums = Vec::new();
    for part in split_top(args) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, val) = match part.split_once('=') {
            Some((k, v)) if k.trim().chars().all(|ch| ch.is_alphanumeric() || ch == '_') => {
                (Some(k.trim()), v.trim())
            }
            _ => (None, part),
        };
        let v = parse_python_literal(val)
            .unwrap_or_else(|_| Value::String(val.trim_matches(['"', '\'']).to_string()));
        match key {
            Some(k) => {
                m.insert(k.to_string(), v);
            }
            None => match v {
                Value::Number(n) => nums.push(Value::Number(n)),
                Value::Array(a) => nums.extend(a),
                other => {
                    m.insert("text".into(), other);
                }
            },
        }
    }
    if !nums.is_empty() {
        m.insert("coordinate".into(), Value::Array(nums));
    }
    Some(Value::Object(m))
}

fn split_top(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(ch),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(ch);
        }
    }
    out
}

fn nums(v: &Value) -> Option<Vec<f64>> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_f64().or_else(|| x.as_str()?.trim().parse().ok()))
            .collect(),
        Value::String(s) => {
            let t = s.trim().trim_matches(['[', ']', '(', ')']);
            t.split(',').map(|x| x.trim().parse().ok()).collect()
        }
        _ => None,
    }
}

fn box4(v: &[f64]) -> Option<[f64; 4]> {
    match v {
        [a, b, c, d] => Some([*a, *b, *c, *d]),
        _ => None,
    }
}

/// Reads an action from a JSON object in any of the anchors' shapes.
pub fn action_from_value(v: &Value) -> Option<Action> {
    let v = match v {
        Value::Array(a) => a.first()?,
        other => other,
    };
    let o = v.as_object()?;
    let get = |keys: &[&str]| keys.iter().find_map(|k| o.get(*k)).filter(|x| !x.is_null());
    let kind = get(&["action", "action_type", "gt_action", "type"])
        .and_then(Value::as_str)
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let mut a = Action {
        kind,
        ..Action::default()
    };
    let mut coords = get(&[
        "point",
        "coordinate",
        "coordinates",
        "click_point",
        "position",
    ])
    .and_then(nums);
    if coords.is_none() {
        if let (Some(x), Some(y)) = (
            get(&["x"]).and_then(Value::as_f64),
            get(&["y"]).and_then(Value::as_f64),
        ) {
            coords = Some(vec![x, y]);
        }
    }
    match coords.as_deref() {
        Some([x, y]) => a.point = Some([*x, *y]),
        Some([x1, y1, x2, y2]) => a.bbox = Some([*x1, *y1, *x2, *y2]),
        _ => {}
    }
    match get(&["bbox", "gt_bbox", "bbox_2d", "box"])
        .and_then(nums)
        .as_deref()
    {
        Some([x1, y1, x2, y2]) => a.bbox = Some([*x1, *y1, *x2, *y2]),
        Some([x, y]) => a.point = Some([*x, *y]),
        _ => {}
    }
    let end = get(&["coordinate2", "end", "end_point"]).and_then(nums);
    let start = get(&["start", "start_point"])
        .and_then(nums)
        .or_else(|| a.point.map(|p| p.to_vec()));
    if let (Some(s), Some(e)) = (start, end) {
        if s.len() == 2 && e.len() == 2 {
            a.swipe = Some([s[0], s[1], e[0], e[1]]);
        }
    }
    a.text = get(&[
        "input_text",
        "gt_input_text",
        "text",
        "app_name",
        "app",
        "key",
        "button",
        "content",
        "value",
    ])
    .and_then(|x| x.as_str().map(str::to_string));
    a.direction = get(&["direction", "scroll_direction"])
        .and_then(Value::as_str)
        .map(|s| s.trim().to_lowercase());
    Some(a)
}

fn to_pixels(p: [f64; 2], frame: Frame, o: &GuiOptions) -> [f64; 2] {
    let (w, h) = (o.width.unwrap_or(1.0), o.height.unwrap_or(1.0));
    match frame {
        Frame::Pixels => p,
        Frame::Normalized => [p[0] * w, p[1] * h],
        Frame::Normalized1000 => [p[0] / 1000.0 * w, p[1] / 1000.0 * h],
        Frame::Resized => [
            p[0] * w / o.resized_width.unwrap_or(w),
            p[1] * h / o.resized_height.unwrap_or(h),
        ],
    }
}

fn box_to_pixels(b: [f64; 4], frame: Frame, o: &GuiOptions) -> [f64; 4] {
    let p = to_pixels([b[0], b[1]], frame, o);
    let q = to_pixels([b[2], b[3]], frame, o);
    [p[0], p[1], q[0], q[1]]
}

fn convert(a: &mut Action, frame: Frame, o: &GuiOptions) {
    if let Some(p) = a.point {
        a.point = Some(to_pixels(p, frame, o));
    }
    if let Some(b) = a.bbox {
        a.bbox = Some(box_to_pixels(b, frame, o));
    }
    if let Some(s) = a.swipe {
        a.swipe = Some(box_to_pixels(s, frame, o));
    }
}

/// Token-set F1 between two strings (lowercased, whitespace tokens).
pub fn token_f1(a: &str, b: &str) -> f64 {
    let ta: std::collections::BTreeSet<String> = a
        .to_lowercase()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let tb: std::collections::BTreeSet<String> = b
        .to_lowercase()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if ta.is_empty() || tb.is_empty() {
        return 0.0;
    }
    let common = ta.intersection(&tb).count() as f64;
    if common == 0.0 {
        return 0.0;
    }
    let p = common / ta.len() as f64;
    let r = common / tb.len() as f64;
    2.0 * p * r / (p + r)
}

/// GUI-R1's text rule: brackets removed, single tokens match as substrings
/// either way, otherwise token-set F1 >= 0.5.
fn gui_r1_text_ok(pred: &str, gold: &str) -> bool {
    let strip = |s: &str| s.replace(['[', ']'], "").to_lowercase();
    let (p, g) = (strip(pred), strip(gold));
    let pt: std::collections::BTreeSet<&str> = p.split_whitespace().collect();
    let gt: std::collections::BTreeSet<&str> = g.split_whitespace().collect();
    if let ([a], [b]) = (
        pt.iter().collect::<Vec<_>>().as_slice(),
        gt.iter().collect::<Vec<_>>().as_slice(),
    ) {
        if a.contains(**b) || b.contains(**a) {
            return true;
        }
    }
    token_f1(&p, &g) >= 0.5
}

/// Python's `isinstance(x, int)` on a parsed literal (bools are ints).
fn py_int(v: &Value) -> bool {
    v.is_i64() || v.is_u64() || v.is_boolean()
}

fn gui_r1_format(text: &str) -> f64 {
    if !THINK_ANSWER.is_match(text) {
        return 0.0;
    }
    let Some(Value::Array(items)) = first_answer(text).and_then(|a| parse_python_literal(a).ok())
    else {
        return 0.0;
    };
    for it in &items {
        let Some(o) = it.as_object() else { return 0.0 };
        let (Some(Value::String(act)), Some(pt), Some(Value::String(txt))) =
            (o.get("action"), o.get("point"), o.get("input_text"))
        else {
            return 0.0;
        };
        let two_ints = match pt {
            Value::Array(p) => p.len() >= 2 && py_int(&p[0]) && py_int(&p[1]),
            _ => false,
        };
        if !two_ints {
            return 0.0;
        }
        if matches!(act.as_str(), "type" | "select" | "open_app") && txt == "no input text" {
            return 0.0;
        }
        if act == "scroll" && !matches!(txt.as_str(), "left" | "right" | "up" | "down") {
            return 0.0;
        }
    }
    1.0
}

fn inside_strict(p: [f64; 2], b: [f64; 4]) -> bool {
    b[0] < p[0] && p[0] < b[2] && b[1] < p[1] && p[1] < b[3]
}

fn inside_inclusive(p: [f64; 2], b: [f64; 4]) -> bool {
    b[0] <= p[0] && p[0] <= b[2] && b[1] <= p[1] && p[1] <= b[3]
}

fn enlarge(b: [f64; 4], f: f64) -> [f64; 4] {
    let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let (hw, hh) = ((b[2] - b[0]) * f / 2.0, (b[3] - b[1]) * f / 2.0);
    [cx - hw, cy - hh, cx + hw, cy + hh]
}

fn lenient_pred(pred: &Value, o: &GuiOptions) -> Option<Action> {
    let v = match pred {
        Value::String(s) => parse_answer_value(s)?,
        other => other.clone(),
    };
    let mut a = action_from_value(&v)?;
    convert(&mut a, o.pred_frame, o);
    Some(a)
}

/// A gold given as a JSON string (GUI-R1's `ground_truth = json.dumps(gt)`).
fn gold_value(gold: &Value) -> Value {
    match gold {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| gold.clone()),
        other => other.clone(),
    }
}

fn gold_action(gold: &Value, o: &GuiOptions) -> Result<Action> {
    let mut a = action_from_value(&gold_value(gold))
        .ok_or_else(|| bad("gold", format!("not a GUI action: {gold}")))?;
    convert(&mut a, o.gold_frame, o);
    Ok(a)
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn cap_num(c: &regex::Captures<'_>, i: usize) -> Option<f64> {
    c.get(i)?.as_str().parse().ok()
}

/// Scores `pred` (a response string or an action object) against `gold`
/// (in the profile's ground-truth format). `Err` only for bad task data
/// (gold or options).
pub fn score(profile: Profile, gold: &Value, pred: &Value, o: &GuiOptions) -> Result<GuiScore> {
    let o = &o.resolved()?;
    match profile {
        Profile::GuiR1 => score_gui_r1(gold, pred, o),
        Profile::UiR1 => score_ui_r1(gold, pred, o),
        Profile::GuiG1 => score_gui_g1(gold, pred, o),
        Profile::InfiguiR1Androidcontrol => score_infigui(gold, pred, o),
    }
}

fn score_gui_r1(gold: &Value, pred: &Value, o: &GuiOptions) -> Result<GuiScore> {
    let g = gold_action(gold, o)?;
    if g.kind.is_empty() {
        return Err(bad("gold", format!("gui_r1 gold has no action: {gold}")));
    }
    let (format, p) = match pred {
        Value::String(text) => {
            let answer = first_answer(text);
            let kind = answer
                .and_then(|a| Q_ACTION.captures(a))
                .and_then(|c| c.get(1))
                .map_or("no action".to_string(), |m| m.as_str().to_lowercase());
            let input = answer
                .and_then(|a| R1_INPUT.captures(a))
                .and_then(|c| c.get(1))
                .map_or("no input text", |m| m.as_str());
            let pt = answer
                .and_then(|a| R1_POINT.captures(a))
                .and_then(|c| Some([cap_num(&c, 1)?, cap_num(&c, 2)?]))
                .unwrap_or([0.0, 0.0]);
            let p = Action {
                kind,
                point: Some(to_pixels(pt, o.pred_frame, o)),
                text: Some(input.to_string()),
                ..Action::default()
            };
            (gui_r1_format(text), Some(p))
        }
        other => (1.0, lenient_pred(other, o)),
    };
    let type_match = p.as_ref().is_some_and(|p| p.kind == g.kind);
    let ok = match (&p, type_match) {
        (Some(p), true) => match g.kind.as_str() {
            "click" => match (p.point, g.bbox, g.point) {
                (Some(pt), Some(b), _) => inside_strict(pt, b),
                (Some(pt), None, Some(gp)) => dist(pt, gp) < 140.0,
                _ => false,
            },
            "type" | "select" | "scroll" => gui_r1_text_ok(
                p.text.as_deref().unwrap_or(""),
                g.text.as_deref().unwrap_or(""),
            ),
            _ => true,
        },
        _ => false,
    };
    let acc = flag(ok);
    let mut c = BTreeMap::new();
    c.insert("format".into(), format);
    c.insert("accuracy".into(), acc);
    Ok(GuiScore {
        reward: 0.8 * acc + 0.2 * format,
        components: c,
        type_match,
    })
}

/// UI-R1's reading of an answer: the quoted (or bare) action name as written.
fn ui_r1_action(text: &str) -> Option<String> {
    let a = first_answer(text)?;
    Q_ACTION
        .captures(a)
        .or_else(|| BARE_ACTION.captures(a))
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
}

fn score_ui_r1(gold: &Value, pred: &Value, o: &GuiOptions) -> Result<GuiScore> {
    // gold: UI-R1's solution string, or a dict
    let (g_kind, g_box) = match gold {
        Value::String(s) if s.contains("<answer>") => {
            let kind = ui_r1_action(s).ok_or_else(|| {
                bad(
                    "gold",
                    format!("ui_r1 gold has no 'action' in <answer>: {s}"),
                )
            })?;
            let b = first_answer(s)
                .and_then(|a| UI_BOX.captures(a))
                .and_then(|c| {
                    Some([
                        cap_num(&c, 1)?,
                        cap_num(&c, 2)?,
                        cap_num(&c, 3)?,
                        cap_num(&c, 4)?,
                    ])
                })
                .unwrap_or([0.0; 4]);
            (kind, Some(box_to_pixels(b, o.gold_frame, o)))
        }
        other => {
            let g = gold_action(other, o)?;
            if g.kind.is_empty() {
                return Err(bad("gold", format!("ui_r1 gold has no action: {gold}")));
            }
            (g.kind, g.bbox)
        }
    };
    let (format, p_kind, p_point) = match pred {
        Value::String(text) => {
            let kind = ui_r1_action(text);
            let pt = first_answer(text)
                .and_then(|a| UI_POINT.captures(a))
                .and_then(|c| Some([cap_num(&c, 1)?, cap_num(&c, 2)?]))
                .unwrap_or([0.0, 0.0]);
            (
                flag(THINK_ANSWER.is_match(text)),
                kind,
                Some(to_pixels(pt, o.pred_frame, o)),
            )
        }
        other => {
            let p = lenient_pred(other, o);
            (
                1.0,
                p.as_ref().map(|p| p.kind.clone()),
                p.and_then(|p| p.point),
            )
        }
    };
    let type_match = p_kind.as_deref().is_some_and(|k| k == g_kind);
    let coord = if !type_match {
        0.0
    } else if g_kind == "click" {
        match (p_point, g_box) {
            (Some(pt), Some(b)) => {
                let q = [(pt[0] * o.scale_x).trunc(), (pt[1] * o.scale_y).trunc()];
                flag(inside_inclusive(q, b))
            }
            _ => 0.0,
        }
    } else {
        1.0
    };
    let action = flag(type_match);
    let mut c = BTreeMap::new();
    c.insert("action".into(), action);
    c.insert("coordinate".into(), coord);
    c.insert("format".into(), format);
    Ok(GuiScore {
        reward: action + coord + format,
        components: c,
        type_match,
    })
}

/// GUI-G1's `parse_json`: if a line is exactly ```` ```json ````, the text
/// after it up to the next fence.
fn gui_g1_unfence(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if *line == "```json" {
            let rest = lines[i + 1..].join("\n");
            return rest.split("```").next().unwrap_or("").to_string();
        }
    }
    text.to_string()
}

fn score_gui_g1(gold: &Value, pred: &Value, o: &GuiOptions) -> Result<GuiScore> {
    let (w, h) = o.screen("gui_g1")?;
    let gv = gold_value(gold);
    let gb = match nums(&gv).as_deref().and_then(box4) {
        Some(b) => Some(b),
        None => action_from_value(&gv).and_then(|a| a.bbox),
    }
    .map(|b| box_to_pixels(b, o.gold_frame, o))
    .ok_or_else(|| {
        bad(
            "gold",
            format!("gui_g1 needs a gold [x1, y1, x2, y2] box: {gold}"),
        )
    })?;
    let pb = match pred {
        Value::String(text) => parse_python_literal(&gui_g1_unfence(text))
            .ok()
            .and_then(|v| match v {
                Value::Array(a) => a.into_iter().next(),
                _ => None,
            })
            .and_then(|first| first.get("bbox_2d").and_then(nums))
            .and_then(|b| (b.len() >= 4).then(|| [b[0], b[1], b[2], b[3]])),
        other => lenient_pred(other, o).and_then(|p| p.bbox),
    }
    .map(|b| box_to_pixels(b, o.pred_frame, o));
    let (hit, iou, bx) = match pb {
        Some(pb) => {
            let centre = [(pb[0] + pb[2]) / 2.0, (pb[1] + pb[3]) / 2.0];
            let hit = flag(inside_inclusive(centre, gb));
            // the anchor's IoU: intersection on [x1, x2 - 1], union of w*h areas
            let (ix1, iy1) = (pb[0].max(gb[0]), pb[1].max(gb[1]));
            let (ix2, iy2) = (
                (pb[2] - 1.0).min(gb[2] - 1.0),
                (pb[3] - 1.0).min(gb[3] - 1.0),
            );
            let inter = if ix1 < ix2 && iy1 < iy2 {
                (ix2 - ix1 + 1.0) * (iy2 - iy1 + 1.0)
            } else {
                0.0
            };
            let union =
                (pb[2] - pb[0]) * (pb[3] - pb[1]) + (gb[2] - gb[0]) * (gb[3] - gb[1]) - inter;
            // a zero union or a zero term raises in the anchor: that term scores 0
            let iou = if union != 0.0 { inter / union } else { 0.0 };
            let sides = [w, h, w, h];
            let terms: Vec<f64> = (0..4)
                .map(|k| 1.0 - (gb[k] - pb[k]).abs() / sides[k])
                .collect();
            let inv: f64 = terms.iter().map(|t| 1.0 / t).sum();
            let bx = if terms.contains(&0.0) || inv == 0.0 {
                0.0
            } else {
                4.0 / inv
            };
            (hit, iou, bx)
        }
        None => (0.0, 0.0, 0.0),
    };
    let mut c = BTreeMap::new();
    c.insert("hit".into(), hit);
    c.insert("iou".into(), 0.25 * iou);
    c.insert("box".into(), 0.125 * bx);
    Ok(GuiScore {
        reward: hit + 0.25 * iou + 0.125 * bx,
        components: c,
        type_match: pb.is_some(),
    })
}

const MOBILE_USE: &str = "{\"name\": \"mobile_use\", \"arguments\":";

/// InfiGUI-R1's reading of a response: the `arguments` of the
/// `<tool_call>` (or of the bare `mobile_use` call). `None` = the
/// evaluator's error branch (no match). Responses in neither form are read
/// leniently (`Some(Err(()))`).
fn infigui_arguments(text: &str) -> std::result::Result<Option<Value>, ()> {
    let mut t = text;
    if let Some(i) = t.rfind("</think>") {
        t = &t[i + "</think>".len()..];
    }
    let body: String = if t.contains("<tool_call>") {
        t.split("<tool_call>").nth(1).unwrap_or("").to_string()
    } else if let Some((_, rest)) = t.split_once(MOBILE_USE) {
        format!("{MOBILE_USE}{rest}")
    } else {
        return Err(());
    };
    let body = if body.contains("</tool_call>") {
        body.split("</tool_call>").next().unwrap_or("").to_string()
    } else {
        let b = body.split("<conclusion>").next().unwrap_or("");
        let head = b.rsplit_once("}}").map_or(b, |(h, _)| h);
        format!("{head}}}}}")
    };
    Ok(serde_json::from_str::<Value>(body.trim())
        .ok()
        .and_then(|v| v.get("arguments").cloned())
        .filter(Value::is_object))
}

/// The evaluator's action names for AndroidControl's and our aliases.
fn infigui_kind(kind: &str) -> &str {
    match kind {
        "input_text" | "input" | "type_text" => "type",
        "open_app" | "launch" => "open",
        "scroll" => "swipe",
        "navigate_back" | "navigate_home" | "press_back" | "press_home" | "press" | "press_key" => {
            "system_button"
        }
        "long_click" => "long_press",
        other => other,
    }
}

fn infigui_button(a: &Action) -> Option<String> {
    match a.kind.as_str() {
        "navigate_back" | "press_back" => Some("back".into()),
        "navigate_home" | "press_home" => Some("home".into()),
        _ => a.text.as_ref().map(|t| t.trim().to_lowercase()),
    }
}

fn swipe_direction(s: [f64; 4]) -> String {
    let (dx, dy) = (s[2] - s[0], s[3] - s[1]);
    if dx.abs() > dy.abs() {
        if dx > 0.0 { "right" } else { "left" }
    } else if dy > 0.0 {
        "down"
    } else {
        "up"
    }
    .into()
}

fn check_text(pred: &str, gold: &str) -> bool {
    let (p, g) = (pred.trim().to_lowercase(), gold.trim().to_lowercase());
    p.contains(&g) || g.contains(&p)
}

fn score_infigui(gold: &Value, pred: &Value, o: &GuiOptions) -> Result<GuiScore> {
    let (w, h) = o.screen("infigui_r1_androidcontrol")?;
    let g = gold_action(gold, o)?;
    let gk = infigui_kind(&g.kind).to_string();
    if !matches!(
        gk.as_str(),
        "click" | "long_press" | "swipe" | "type" | "open" | "system_button" | "wait"
    ) {
        return Err(bad(
            "gold",
            format!(
                "infigui_r1_androidcontrol has no rule for action `{}`",
                g.kind
            ),
        ));
    }
    let mut cands: Vec<[f64; 4]> = Vec::new();
    let gv = gold_value(gold);
    if let Some(Value::Array(list)) = ["candidate_bbox", "candidate_bboxes", "bboxes"]
        .iter()
        .find_map(|k| gv.get(*k))
    {
        for b in list {
            if let Some(b) = nums(b).as_deref().and_then(box4) {
                cands.push(box_to_pixels(b, o.gold_frame, o));
            }
        }
    }
    if cands.is_empty() {
        // AndroidControl-style golds carry one box
        cands.extend(g.bbox);
    }
    let p = match pred {
        Value::String(s) => match infigui_arguments(s) {
            Ok(args) => args.and_then(|v| {
                let mut a = action_from_value(&v)?;
                convert(&mut a, o.pred_frame, o);
                Some(a)
            }),
            Err(()) => lenient_pred(pred, o),
        },
        other => lenient_pred(other, o),
    };
    // distances in the model's (resized) pixels, threshold on its longer side
    let (rw, rh) = (o.resized_width.unwrap_or(w), o.resized_height.unwrap_or(h));
    let factor = o.enlarge_factor;
    let check_click = |pt: [f64; 2], gp: Option<[f64; 2]>| -> bool {
        if cands
            .iter()
            .any(|b| inside_inclusive(pt, enlarge(*b, factor)))
        {
            return true;
        }
        gp.is_some_and(|gp| {
            let dx = (gp[0] - pt[0]) / w * rw;
            let dy = (gp[1] - pt[1]) / h * rh;
            (dx * dx + dy * dy).sqrt() <= o.point_threshold * rw.max(rh)
        })
    };
    let click_point = |p: &Action| {
        p.point
            .or_else(|| p.bbox.map(|b| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]))
    };
    let (tm, exact) = match &p {
        None => (false, false),
        Some(p) => {
            let pk = infigui_kind(&p.kind);
            match gk.as_str() {
                "open" if pk == "click" => {
                    if let Some(first) = cands.first() {
                        let centre = [(first[0] + first[2]) / 2.0, (first[1] + first[3]) / 2.0];
                        (
                            true,
                            click_point(p).is_some_and(|pt| check_click(pt, Some(centre))),
                        )
                    } else {
                        (false, false)
                    }
                }
                _ if pk != gk => (false, false),
                "wait" => (true, true),
                "system_button" => match (infigui_button(p), infigui_button(&g)) {
                    (Some(pb), Some(gb)) => (true, pb == gb),
                    _ => (false, false),
                },
                "type" | "open" => match (&p.text, &g.text) {
                    (Some(pt), Some(gt)) => (true, check_text(pt, gt)),
                    _ => (false, false),
                },
                "swipe" => {
                    let pd = p.swipe.map(swipe_direction).or_else(|| p.direction.clone());
                    let gd = g.direction.clone().or_else(|| g.swipe.map(swipe_direction));
                    match pd {
                        Some(pd) => (true, Some(pd) == gd),
                        None => (false, false),
                    }
                }
                _ => match click_point(p) {
                    Some(pt) => (true, check_click(pt, g.point)),
                    None => (false, false),
                },
            }
        }
    };
    let mut c = BTreeMap::new();
    c.insert("type_match".into(), flag(tm));
    c.insert("exact_match".into(), flag(exact));
    Ok(GuiScore {
        reward: flag(exact),
        components: c,
        type_match: tm,
    })
}

/// JSON entry point used by `grpo verify gui`: input `{"gold", "pred",
/// "profile", "options"?}`, output `{"reward", "components", "type_match"}`.
pub fn verify_json(v: &Value) -> Result<Value> {
    let profile: Profile = serde_json::from_value(v.get("profile").cloned().unwrap_or(Value::Null))
        .map_err(|e| {
            bad(
                "profile",
                format!("{e} (gui_r1, ui_r1, gui_g1, infigui_r1_androidcontrol)"),
            )
        })?;
    let o: GuiOptions = match v.get("options") {
        None | Some(Value::Null) => GuiOptions::default(),
        Some(x) => serde_json::from_value(x.clone()).map_err(|e| bad("options", e.to_string()))?,
    };
    let gold = v.get("gold").ok_or_else(|| bad("gold", "missing".into()))?;
    let pred = v.get("pred").ok_or_else(|| bad("pred", "missing".into()))?;
    let s = score(profile, gold, pred, &o)?;
    Ok(
        serde_json::json!({"reward": s.reward, "components": s.components, "type_match": s.type_match}),
    )
}
