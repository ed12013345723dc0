//! GUI-action verification: parse an action from model text and score it
//! against a gold action with one of the anchors' reward functions.
//!
//! Profiles (constants from `verifiers.md` section 4):
//! - `gui_r1` (GUI-R1): `overall = 0.8 * accuracy + 0.2 * format`; click on a
//!   gold point: Euclidean distance < 140 px; click on a gold box: strictly
//!   inside; `type`/`select`/`scroll` text: token-set F1 >= 0.5 (single tokens:
//!   substring either way); other actions: type match.
//! - `ui_r1` (UI-R1): `total = action + coordinate + format` (0..3); click
//!   coordinate `int(x*scale_x), int(y*scale_y)` inside the box inclusive.
//! - `gui_g1` (GUI-G1): `total = hit + 0.25 * IoU + 0.125 * box` where hit =
//!   centre of the predicted box inside the gold box (inclusive), IoU with
//!   pixel-inclusive areas, box = harmonic mean of `1 - |d|/side` over the 4
//!   coordinates.
//! - `infigui_r1_androidcontrol` (InfiGUI-R1's AndroidControl evaluator):
//!   type match and exact match; click/long_press inside any candidate box
//!   enlarged 1.2x about its centre, or within 0.04 of the gold point in
//!   coordinates normalised by each side; scroll direction from the dominant
//!   axis; text containment either way, case-insensitive; `open_app` also
//!   satisfied by a click inside the app's box; reward 1.0 on exact match.
//!
//! Coordinate frames are explicit: `pred_frame` / `gold_frame` in
//! `pixels`, `normalized` (0-1), `normalized_1000` (0-1000) or `resized`
//! (pixels of a `resized_width` x `resized_height` image); both sides are
//! converted to pixels of the `width` x `height` screen before comparing.
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
}

impl Default for GuiOptions {
    fn default() -> Self {
        GuiOptions {
            width: None,
            height: None,
            resized_width: None,
            resized_height: None,
            pred_frame: Frame::Pixels,
            gold_frame: Frame::Pixels,
            scale_x: 1.0,
            scale_y: 1.0,
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
    /// Whether the action types matched.
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

static ANSWER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<answer>(.*?)</answer>").expect("static regex"));
static FENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)```(?:json|python)?\s*(.*?)```").expect("static regex"));
static CALL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)^\s*([A-Za-z_]+)\s*\((.*)\)\s*$").expect("static regex"));

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
    if let (Some(s), Some(e)) = (
        get(&["start", "start_point"]).and_then(nums),
        get(&["end", "end_point"]).and_then(nums),
    ) {
        if s.len() == 2 && e.len() == 2 {
            a.swipe = Some([s[0], s[1], e[0], e[1]]);
        }
    }
    a.text = get(&[
        "input_text",
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

fn convert(a: &mut Action, frame: Frame, o: &GuiOptions) {
    if let Some(p) = a.point {
        a.point = Some(to_pixels(p, frame, o));
    }
    if let Some(b) = a.bbox {
        let p = to_pixels([b[0], b[1]], frame, o);
        let q = to_pixels([b[2], b[3]], frame, o);
        a.bbox = Some([p[0], p[1], q[0], q[1]]);
    }
    if let Some(s) = a.swipe {
        let p = to_pixels([s[0], s[1]], frame, o);
        let q = to_pixels([s[2], s[3]], frame, o);
        a.swipe = Some([p[0], p[1], q[0], q[1]]);
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

fn gui_r1_text_ok(pred: &str, gold: &str) -> bool {
    let (p, g) = (pred.to_lowercase(), gold.to_lowercase());
    let (pt, gt): (Vec<&str>, Vec<&str>) = (
        p.split_whitespace().collect(),
        g.split_whitespace().collect(),
    );
    if pt.len() == 1 && gt.len() == 1 {
        return p.trim().contains(g.trim()) || g.trim().contains(p.trim());
    }
    token_f1(&p, &g) >= 0.5
}

static THINK_ANSWER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)^<think>.*?</think>\s*<answer>.*?</answer>$").expect("static regex")
});
static THINK_ANSWER_GREEDY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)^<think>.*</think>\s*<answer>.*</answer>$").expect("static regex")
});

fn gui_r1_format(text: &str) -> f64 {
    if !THINK_ANSWER.is_match(text.trim()) {
        return 0.0;
    }
    let Some(Value::Array(items)) = ANSWER.captures(text).and_then(|c| c.get(1)).and_then(|m| {
        parse_python_literal(m.as_str())
            .ok()
            .or_else(|| serde_json::from_str(m.as_str()).ok())
    }) else {
        return 0.0;
    };
    if items.is_empty() {
        return 0.0;
    }
    for it in &items {
        let Some(o) = it.as_object() else { return 0.0 };
        let (Some(Value::String(act)), Some(Value::Array(pt)), Some(Value::String(txt))) =
            (o.get("action"), o.get("point"), o.get("input_text"))
        else {
            return 0.0;
        };
        if pt.len() != 2 || !pt.iter().all(|x| x.is_i64() || x.is_u64()) {
            return 0.0;
        }
        let act = act.to_lowercase();
        let txt_l = txt.trim().to_lowercase();
        if matches!(act.as_str(), "type" | "select" | "open_app")
            && (txt_l.is_empty() || txt_l == "no input text")
        {
            return 0.0;
        }
        if act == "scroll" && !matches!(txt_l.as_str(), "left" | "right" | "up" | "down") {
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
    let (hw, hh) = ((b[2] - b[0]) / 2.0 * f, (b[3] - b[1]) / 2.0 * f);
    [cx - hw, cy - hh, cx + hw, cy + hh]
}

fn pred_action(pred: &Value, o: &GuiOptions) -> Option<Action> {
    let v = match pred {
        Value::String(s) => parse_answer_value(s)?,
        other => other.clone(),
    };
    let mut a = action_from_value(&v)?;
    convert(&mut a, o.pred_frame, o);
    Some(a)
}

fn gold_action(gold: &Value, o: &GuiOptions) -> Result<Action> {
    let mut a = action_from_value(gold).ok_or_else(|| RewardError::InvalidInput {
        field: "gold".into(),
        reason: format!("not a GUI action: {gold}"),
    })?;
    convert(&mut a, o.gold_frame, o);
    Ok(a)
}

fn canonical(kind: &str) -> &str {
    match kind {
        "type" | "input_text" | "input" | "type_text" => "type",
        "scroll" | "swipe" => "scroll",
        "open_app" | "open" | "launch" => "open_app",
        "press" | "press_key" | "key" | "navigate_back" | "navigate_home" | "press_back"
        | "press_home" | "system_button" => "press",
        "finish" | "answer" | "terminate" | "status" | "done" => "finish",
        other => other,
    }
}

fn button_of(a: &Action) -> Option<String> {
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

/// Scores `pred` (a response string or an action object) against `gold`
/// (in the profile's ground-truth format). `Err` only for a bad gold action.
pub fn score(profile: Profile, gold: &Value, pred: &Value, o: &GuiOptions) -> Result<GuiScore> {
    let g = gold_action(gold, o)?;
    let p = pred_action(pred, o);
    let text = pred.as_str().unwrap_or("");
    let mut c = BTreeMap::new();
    let type_match = p
        .as_ref()
        .is_some_and(|p| !p.kind.is_empty() && p.kind == g.kind);
    let reward = match profile {
        Profile::GuiR1 => {
            let format = if pred.is_string() {
                gui_r1_format(text)
            } else {
                1.0
            };
            let acc = match (&p, type_match) {
                (Some(p), true) => {
                    let ok = match g.kind.as_str() {
                        "click" => match (p.point, g.bbox, g.point) {
                            (Some(pt), Some(b), _) => inside_strict(pt, b),
                            (Some(pt), None, Some(gp)) => {
                                ((pt[0] - gp[0]).powi(2) + (pt[1] - gp[1]).powi(2)).sqrt() < 140.0
                            }
                            _ => false,
                        },
                        "type" | "select" | "scroll" => gui_r1_text_ok(
                            p.text.as_deref().unwrap_or(""),
                            g.text.as_deref().unwrap_or(""),
                        ),
                        _ => true,
                    };
                    if ok { 1.0 } else { 0.0 }
                }
                _ => 0.0,
            };
            c.insert("format".into(), format);
            c.insert("accuracy".into(), acc);
            0.8 * acc + 0.2 * format
        }
        Profile::UiR1 => {
            let format = if pred.is_string() {
                if THINK_ANSWER_GREEDY.is_match(text.trim()) {
                    1.0
                } else {
                    0.0
                }
            } else {
                1.0
            };
            let action = if type_match { 1.0 } else { 0.0 };
            let coord = match (&p, type_match) {
                (Some(p), true) if g.kind == "click" => match (p.point, g.bbox) {
                    (Some(pt), Some(b)) => {
                        let q = [(pt[0] * o.scale_x).trunc(), (pt[1] * o.scale_y).trunc()];
                        if inside_inclusive(q, b) { 1.0 } else { 0.0 }
                    }
                    _ => 0.0,
                },
                (Some(_), true) => 1.0,
                _ => 0.0,
            };
            c.insert("action".into(), action);
            c.insert("coordinate".into(), coord);
            c.insert("format".into(), format);
            action + coord + format
        }
        Profile::GuiG1 => {
            let gb = g.bbox.ok_or_else(|| RewardError::InvalidInput {
                field: "gold".into(),
                reason: "gui_g1 needs a gold bbox".into(),
            })?;
            let (w, h) = (
                o.width.unwrap_or(1.0).max(1e-9),
                o.height.unwrap_or(1.0).max(1e-9),
            );
            let (hit, iou, bx) = match p.as_ref().and_then(|p| p.bbox) {
                Some(pb) => {
                    let centre = [(pb[0] + pb[2]) / 2.0, (pb[1] + pb[3]) / 2.0];
                    let hit = if inside_inclusive(centre, gb) {
                        1.0
                    } else {
                        0.0
                    };
                    let area = |b: [f64; 4]| {
                        ((b[2] - b[0] + 1.0).max(0.0)) * ((b[3] - b[1] + 1.0).max(0.0))
                    };
                    let iw = (pb[2].min(gb[2]) - pb[0].max(gb[0]) + 1.0).max(0.0);
                    let ih = (pb[3].min(gb[3]) - pb[1].max(gb[1]) + 1.0).max(0.0);
                    let inter = iw * ih;
                    let union = area(pb) + area(gb) - inter;
                    let iou = if union > 0.0 { inter / union } else { 0.0 };
                    let sides = [w, h, w, h];
                    let terms: Vec<f64> = (0..4)
                        .map(|k| (1.0 - (pb[k] - gb[k]).abs() / sides[k]).max(0.0))
                        .collect();
                    let bx = if terms.iter().any(|t| *t <= 0.0) {
                        0.0
                    } else {
                        4.0 / terms.iter().map(|t| 1.0 / t).sum::<f64>()
                    };
                    (hit, iou, bx)
                }
                None => (0.0, 0.0, 0.0),
            };
            c.insert("hit".into(), hit);
            c.insert("iou".into(), 0.25 * iou);
            c.insert("box".into(), 0.125 * bx);
            hit + 0.25 * iou + 0.125 * bx
        }
        Profile::InfiguiR1Androidcontrol => {
            let (w, h) = (
                o.width.unwrap_or(1.0).max(1e-9),
                o.height.unwrap_or(1.0).max(1e-9),
            );
            let gk = canonical(&g.kind);
            let (tm, exact) = match &p {
                None => (false, false),
                Some(p) => {
                    let pk = canonical(&p.kind);
                    let click_in = |pt: [f64; 2]| -> bool {
                        let boxes: Vec<[f64; 4]> = gold_boxes(gold, &g, o);
                        boxes.iter().any(|b| inside_inclusive(pt, enlarge(*b, 1.2)))
                            || g.point.is_some_and(|gp| {
                                (((pt[0] - gp[0]) / w).powi(2) + ((pt[1] - gp[1]) / h).powi(2))
                                    .sqrt()
                                    <= 0.04
                            })
                    };
                    if gk == "open_app" && pk == "click" {
                        // opening an app by clicking its icon
                        let ok = p.point.is_some_and(|pt| {
                            gold_boxes(gold, &g, o)
                                .iter()
                                .any(|b| inside_inclusive(pt, enlarge(*b, 1.2)))
                        });
                        (ok, ok)
                    } else if pk != gk {
                        (false, false)
                    } else {
                        let exact = match gk {
                            "click" | "long_press" => p
                                .point
                                .or_else(|| {
                                    p.bbox.map(|b| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0])
                                })
                                .is_some_and(click_in),
                            "scroll" => {
                                let pd = p
                                    .direction
                                    .clone()
                                    .or_else(|| p.swipe.map(swipe_direction))
                                    .or_else(|| p.text.clone().map(|t| t.to_lowercase()));
                                let gd =
                                    g.direction.clone().or_else(|| g.swipe.map(swipe_direction));
                                pd.is_some() && pd == gd
                            }
                            "type" | "open_app" => {
                                let pt = p.text.clone().unwrap_or_default().trim().to_lowercase();
                                let gt = g.text.clone().unwrap_or_default().trim().to_lowercase();
                                !pt.is_empty()
                                    && !gt.is_empty()
                                    && (pt.contains(&gt) || gt.contains(&pt))
                            }
                            "press" => button_of(p).is_some() && button_of(p) == button_of(&g),
                            _ => true,
                        };
                        (true, exact)
                    }
                }
            };
            c.insert("type_match".into(), if tm { 1.0 } else { 0.0 });
            c.insert("exact_match".into(), if exact { 1.0 } else { 0.0 });
            if exact { 1.0 } else { 0.0 }
        }
    };
    let type_match = match profile {
        Profile::InfiguiR1Androidcontrol => c.get("type_match").is_some_and(|v| *v > 0.0),
        _ => type_match,
    };
    Ok(GuiScore {
        reward,
        components: c,
        type_match,
    })
}

fn gold_boxes(gold: &Value, g: &Action, o: &GuiOptions) -> Vec<[f64; 4]> {
    let mut out: Vec<[f64; 4]> = g.bbox.into_iter().collect();
    if let Some(Value::Array(list)) = gold.get("candidate_bboxes").or_else(|| gold.get("bboxes")) {
        for b in list {
            if let Some([x1, y1, x2, y2]) = nums(b).as_deref() {
                let mut a = Action {
                    bbox: Some([*x1, *y1, *x2, *y2]),
                    ..Action::default()
                };
                convert(&mut a, o.gold_frame, o);
                out.extend(a.bbox);
            }
        }
    }
    out
}

/// JSON entry point used by `grpo verify gui`: input `{"gold", "pred",
/// "profile", "options"?}`, output `{"reward", "components", "type_match"}`.
pub fn verify_json(v: &Value) -> Result<Value> {
    let bad = |f: &str, r: String| RewardError::InvalidInput {
        field: f.into(),
        reason: r,
    };
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
