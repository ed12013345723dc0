//! SynthGUI: a synthetic phone rendered as an accessibility tree (AndroidWorld,
//! AndroidControl, MiniWoB++ style). A home screen, a Settings app with more
//! switches than fit the viewport (scrolling needed) and an About page, and a
//! Contacts app with an add-contact form. Tasks: toggle a setting, add a contact,
//! read a value and `answer` it, or recognise an infeasible request. Actions are
//! AndroidWorld-style JSON. A goal-directed planner gives the reference action of
//! every state (oracle, step rewards, critic labels).
//!
//! Anchor reward (AndroidWorld): binary success from a programmatic check of the
//! final state. Ours: `success` 1/0, plus (opt-in) a per-step reward against the
//! planner's reference action: type match 0.5 + target match 0.5.
//! Critic mode (GUI-Critic-R1 style) is [`GuiCriticEnv`].

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::Message;
use crate::parse::{last_tag, truncation_note};
use crate::seed::{derive_seed, rng};
use crate::tool::canonical_json;

const SETTINGS: [&str; 12] = [
    "Wi-Fi",
    "Bluetooth",
    "Airplane mode",
    "Dark theme",
    "Location",
    "Auto-rotate",
    "Battery saver",
    "Do not disturb",
    "NFC",
    "Hotspot",
    "Vibration",
    "Notifications",
];
const FIRST: [&str; 8] = ["Ada", "Bram", "Cleo", "Dov", "Elin", "Faro", "Gus", "Hana"];
const LAST: [&str; 8] = [
    "Quill", "Marsh", "Okoro", "Lind", "Varga", "Soto", "Ibe", "Nakai",
];
const VIEW_ROWS: usize = 6;
const ROW_H: i32 = 80;

/// The screen being shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Screen {
    /// Home with app icons.
    Home,
    /// Settings list scrolled to a row offset.
    Settings {
        /// First visible row.
        scroll: usize,
    },
    /// About page.
    About,
    /// Contacts list.
    Contacts,
    /// Add-contact form.
    ContactForm,
}

/// One element of the accessibility tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Stable element id (independent of the per-screen index).
    pub id: String,
    /// Widget class.
    pub kind: &'static str,
    /// Label text.
    pub label: String,
    /// Extra state (`checked=true`, `text="…"`).
    pub state: String,
    /// Bounds `(x1, y1, x2, y2)`.
    pub bounds: (i32, i32, i32, i32),
}

/// The phone state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone {
    /// Screen.
    pub screen: Screen,
    /// Back stack.
    pub back: Vec<Screen>,
    /// Setting names and values.
    pub settings: Vec<(String, bool)>,
    /// Contacts `(name, phone)`.
    pub contacts: Vec<(String, String)>,
    /// Form fields (name, phone) and focused field index.
    pub form: (String, String, Option<usize>),
    /// Build number shown on About.
    pub build: String,
}

/// A task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuiTask {
    /// Set a switch.
    Toggle {
        /// Setting name.
        name: String,
        /// Wanted value.
        on: bool,
    },
    /// Add a contact.
    AddContact {
        /// Name.
        name: String,
        /// Phone number.
        phone: String,
    },
    /// Read the build number and answer it.
    ReadBuild,
    /// A request that cannot be done.
    Infeasible {
        /// The missing setting.
        name: String,
    },
}

impl GuiTask {
    /// Instruction text.
    pub fn instruction(&self) -> String {
        match self {
            GuiTask::Toggle { name, on } => format!("Turn {} {name} in Settings, then report status complete.", if *on { "on" } else { "off" }),
            GuiTask::AddContact { name, phone } => format!("Add a contact named {name} with phone number {phone}, then report status complete."),
            GuiTask::ReadBuild => "What is the build number shown on the About page in Settings? Reply with an answer action.".into(),
            GuiTask::Infeasible { name } => format!("Turn on {name} in Settings, then report status complete."),
        }
    }
}

impl Phone {
    fn generate(seed: u64) -> (Phone, GuiTask) {
        let mut r = rng(seed);
        let n = r.random_range(8..=SETTINGS.len());
        let mut names: Vec<&str> = SETTINGS.to_vec();
        for i in (1..names.len()).rev() {
            let j = r.random_range(0..=i);
            names.swap(i, j);
        }
        let missing = names[n..].first().map(|s| s.to_string());
        let settings: Vec<(String, bool)> = names[..n]
            .iter()
            .map(|s| (s.to_string(), r.random_bool(0.5)))
            .collect();
        let contacts: Vec<(String, String)> = (0..r.random_range(1..4))
            .map(|_| {
                (
                    format!(
                        "{} {}",
                        FIRST[r.random_range(0..8)],
                        LAST[r.random_range(0..8)]
                    ),
                    format!("555-{:04}", r.random_range(0..10000)),
                )
            })
            .collect();
        let build = format!(
            "{}.{}.{}",
            r.random_range(1..20),
            r.random_range(0..10),
            r.random_range(100..1000)
        );
        let phone = Phone {
            screen: Screen::Home,
            back: vec![],
            settings,
            contacts,
            form: (String::new(), String::new(), None),
            build,
        };
        let kind = r.random_range(0..10);
        let task = match (kind, missing) {
            (0, Some(m)) => GuiTask::Infeasible { name: m },
            (1..=2, _) => GuiTask::ReadBuild,
            (3..=5, _) => GuiTask::AddContact {
                name: format!(
                    "{} {}",
                    FIRST[r.random_range(0..8)],
                    LAST[r.random_range(0..8)]
                ),
                phone: format!("555-{:04}", r.random_range(0..10000)),
            },
            _ => {
                let i = r.random_range(0..phone.settings.len());
                GuiTask::Toggle {
                    name: phone.settings[i].0.clone(),
                    on: !phone.settings[i].1,
                }
            }
        };
        (phone, task)
    }

    /// Visible elements, in index order.
    pub fn elements(&self) -> Vec<Element> {
        let el = |id: String, kind, label: &str, state: String, row: i32| Element {
            id,
            kind,
            label: label.to_string(),
            state,
            bounds: (20, 100 + row * ROW_H, 340, 100 + row * ROW_H + ROW_H - 10),
        };
        match &self.screen {
            Screen::Home => vec![
                el(
                    "app:settings".into(),
                    "Button",
                    "Settings",
                    String::new(),
                    0,
                ),
                el(
                    "app:contacts".into(),
                    "Button",
                    "Contacts",
                    String::new(),
                    1,
                ),
            ],
            Screen::Settings { scroll } => {
                let mut v: Vec<Element> = self
                    .settings
                    .iter()
                    .enumerate()
                    .skip(*scroll)
                    .take(VIEW_ROWS)
                    .enumerate()
                    .map(|(row, (_, (name, on)))| {
                        el(
                            format!("switch:{name}"),
                            "Switch",
                            name,
                            format!("checked={on}"),
                            row as i32,
                        )
                    })
                    .collect();
                if scroll + VIEW_ROWS >= self.settings.len() {
                    v.push(el(
                        "settings:about".into(),
                        "Button",
                        "About phone",
                        String::new(),
                        v.len() as i32,
                    ));
                }
                v
            }
            Screen::About => vec![
                el(
                    "about:title".into(),
                    "Text",
                    "About phone",
                    String::new(),
                    0,
                ),
                el(
                    "about:build".into(),
                    "Text",
                    &format!("Build number {}", self.build),
                    String::new(),
                    1,
                ),
            ],
            Screen::Contacts => {
                let mut v: Vec<Element> = self
                    .contacts
                    .iter()
                    .enumerate()
                    .take(VIEW_ROWS - 1)
                    .map(|(i, (n, p))| {
                        el(
                            format!("contact:{n}"),
                            "Text",
                            &format!("{n} {p}"),
                            String::new(),
                            i as i32,
                        )
                    })
                    .collect();
                v.push(el(
                    "contacts:add".into(),
                    "Button",
                    "Add contact",
                    String::new(),
                    v.len() as i32,
                ));
                v
            }
            Screen::ContactForm => vec![
                el(
                    "form:name".into(),
                    "TextField",
                    "Name",
                    format!(
                        "text={:?}{}",
                        self.form.0,
                        if self.form.2 == Some(0) {
                            " focused"
                        } else {
                            ""
                        }
                    ),
                    0,
                ),
                el(
                    "form:phone".into(),
                    "TextField",
                    "Phone",
                    format!(
                        "text={:?}{}",
                        self.form.1,
                        if self.form.2 == Some(1) {
                            " focused"
                        } else {
                            ""
                        }
                    ),
                    1,
                ),
                el("form:save".into(), "Button", "Save", String::new(), 2),
            ],
        }
    }

    /// The accessibility tree as text.
    pub fn tree(&self) -> String {
        let mut s = format!("Screen: {}\n", self.screen_name());
        for (i, e) in self.elements().iter().enumerate() {
            let st = if e.state.is_empty() {
                String::new()
            } else {
                format!(" {}", e.state)
            };
            s.push_str(&format!(
                "[{i}] {} {:?}{st} bounds=({},{},{},{})\n",
                e.kind, e.label, e.bounds.0, e.bounds.1, e.bounds.2, e.bounds.3
            ));
        }
        s
    }

    fn screen_name(&self) -> String {
        match &self.screen {
            Screen::Home => "home".into(),
            Screen::Settings { .. } => "settings".into(),
            Screen::About => "about".into(),
            Screen::Contacts => "contacts".into(),
            Screen::ContactForm => "add-contact".into(),
        }
    }

    /// Canonical state key (screen, scroll, widget states).
    pub fn key(&self) -> String {
        let sw: String = self
            .settings
            .iter()
            .map(|(_, on)| if *on { '1' } else { '0' })
            .collect();
        let scroll = match self.screen {
            Screen::Settings { scroll } => scroll,
            _ => 0,
        };
        format!(
            "{}|{scroll}|{sw}|{}|{:?}|{:?}",
            self.screen_name(),
            self.contacts.len(),
            self.form.0,
            self.form.1
        )
    }

    fn go(&mut self, s: Screen) {
        let old = std::mem::replace(&mut self.screen, s);
        self.back.push(old);
    }

    fn target(&self, a: &Value) -> std::result::Result<Element, String> {
        let els = self.elements();
        if let Some(i) = a.get("index") {
            let i = i.as_u64().ok_or("`index` must be a non-negative integer")? as usize;
            return els.get(i).cloned().ok_or_else(|| {
                format!(
                    "no element with index {i} on this screen (0..{})",
                    els.len()
                )
            });
        }
        match (
            a.get("x").and_then(Value::as_i64),
            a.get("y").and_then(Value::as_i64),
        ) {
            (Some(x), Some(y)) => {
                let (x, y) = (x as i32, y as i32);
                if !(0..360).contains(&x) || !(0..640).contains(&y) {
                    return Err(format!("point ({x},{y}) is outside the 360x640 screen"));
                }
                els.into_iter()
                    .find(|e| {
                        x >= e.bounds.0 && x < e.bounds.2 && y >= e.bounds.1 && y < e.bounds.3
                    })
                    .ok_or_else(|| format!("nothing to click at ({x},{y})"))
            }
            _ => Err("give `index` or both `x` and `y`".into()),
        }
    }

    /// Applies an action. `Ok(Some(end))` when the action ends the episode
    /// (status/answer), `Err` with an explanation when it is invalid.
    pub fn apply(&mut self, a: &Value) -> std::result::Result<Option<Value>, String> {
        let t = a
            .get("action_type")
            .and_then(Value::as_str)
            .ok_or("missing string field `action_type`")?;
        match t {
            "click" | "long_press" => {
                let e = self.target(a)?;
                match e.id.as_str() {
                    "app:settings" => self.go(Screen::Settings { scroll: 0 }),
                    "app:contacts" => self.go(Screen::Contacts),
                    "settings:about" => self.go(Screen::About),
                    "contacts:add" => {
                        self.form = (String::new(), String::new(), None);
                        self.go(Screen::ContactForm)
                    }
                    "form:name" => self.form.2 = Some(0),
                    "form:phone" => self.form.2 = Some(1),
                    "form:save" => {
                        if self.form.0.trim().is_empty() {
                            return Err("cannot save: the Name field is empty".into());
                        }
                        let c = (self.form.0.clone(), self.form.1.clone());
                        self.contacts.push(c);
                        self.form = (String::new(), String::new(), None);
                        self.screen = Screen::Contacts;
                    }
                    id if id.starts_with("switch:") => {
                        let name = &id["switch:".len()..];
                        if let Some(s) = self.settings.iter_mut().find(|(n, _)| n == name) {
                            s.1 = !s.1;
                        }
                    }
                    _ => {}
                }
                Ok(None)
            }
            "input_text" => {
                let text = a
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or("`input_text` needs a string `text`")?;
                if a.get("index").is_some() {
                    let e = self.target(a)?;
                    match e.id.as_str() {
                        "form:name" => self.form.2 = Some(0),
                        "form:phone" => self.form.2 = Some(1),
                        _ => return Err(format!("element {:?} is not a text field", e.label)),
                    }
                }
                match self.form.2 {
                    Some(0) if self.screen == Screen::ContactForm => self.form.0.push_str(text),
                    Some(1) if self.screen == Screen::ContactForm => self.form.1.push_str(text),
                    _ => return Err("no text field is focused".into()),
                }
                Ok(None)
            }
            "scroll" => {
                let d = a
                    .get("direction")
                    .and_then(Value::as_str)
                    .ok_or("`scroll` needs `direction` (up/down/left/right)")?;
                if let Screen::Settings { scroll } = &mut self.screen {
                    let max = self.settings.len().saturating_sub(VIEW_ROWS - 1);
                    match d {
                        "down" => *scroll = (*scroll + 3).min(max),
                        "up" => *scroll = scroll.saturating_sub(3),
                        "left" | "right" => {}
                        other => return Err(format!("unknown scroll direction `{other}`")),
                    }
                }
                Ok(None)
            }
            "navigate_back" => {
                if let Some(s) = self.back.pop() {
                    self.screen = s;
                }
                Ok(None)
            }
            "navigate_home" => {
                self.back.clear();
                self.screen = Screen::Home;
                Ok(None)
            }
            "open_app" => {
                let n = a
                    .get("app_name")
                    .and_then(Value::as_str)
                    .ok_or("`open_app` needs `app_name`")?;
                match n.to_lowercase().as_str() {
                    "settings" => self.go(Screen::Settings { scroll: 0 }),
                    "contacts" => self.go(Screen::Contacts),
                    other => return Err(format!("no app named `{other}` (Settings, Contacts)")),
                }
                Ok(None)
            }
            "wait" | "keyboard_enter" => Ok(None),
            "status" => {
                let g = a
                    .get("goal_status")
                    .and_then(Value::as_str)
                    .ok_or("`status` needs `goal_status` (complete/infeasible)")?;
                if g != "complete" && g != "infeasible" {
                    return Err(format!("unknown goal_status `{g}`"));
                }
                Ok(Some(a.clone()))
            }
            "answer" => {
                a.get("text")
                    .and_then(Value::as_str)
                    .ok_or("`answer` needs a string `text`")?;
                Ok(Some(a.clone()))
            }
            other => Err(format!("unknown action_type `{other}`")),
        }
    }

    /// The planner's next action for a task.
    pub fn plan(&self, task: &GuiTask) -> Value {
        let idx = |id: &str| self.elements().iter().position(|e| e.id == id);
        let click = |i: usize| serde_json::json!({"action_type": "click", "index": i});
        match task {
            GuiTask::Infeasible { .. } => {
                serde_json::json!({"action_type": "status", "goal_status": "infeasible"})
            }
            GuiTask::Toggle { name, on } => {
                let cur = self.settings.iter().find(|(n, _)| n == name).map(|s| s.1);
                if cur == Some(*on) {
                    return serde_json::json!({"action_type": "status", "goal_status": "complete"});
                }
                match &self.screen {
                    Screen::Settings { .. } => match idx(&format!("switch:{name}")) {
                        Some(i) => click(i),
                        None => {
                            let pos = self
                                .settings
                                .iter()
                                .position(|(n, _)| n == name)
                                .unwrap_or(0);
                            let down =
                                matches!(self.screen, Screen::Settings { scroll } if pos >= scroll);
                            serde_json::json!({"action_type": "scroll", "direction": if down { "down" } else { "up" }})
                        }
                    },
                    Screen::Home => {
                        serde_json::json!({"action_type": "open_app", "app_name": "Settings"})
                    }
                    _ => serde_json::json!({"action_type": "navigate_home"}),
                }
            }
            GuiTask::ReadBuild => match &self.screen {
                Screen::About => serde_json::json!({"action_type": "answer", "text": self.build}),
                Screen::Settings { .. } => match idx("settings:about") {
                    Some(i) => click(i),
                    None => serde_json::json!({"action_type": "scroll", "direction": "down"}),
                },
                Screen::Home => {
                    serde_json::json!({"action_type": "open_app", "app_name": "Settings"})
                }
                _ => serde_json::json!({"action_type": "navigate_home"}),
            },
            GuiTask::AddContact { name, phone } => {
                if self.contacts.iter().any(|(n, p)| n == name && p == phone) {
                    return serde_json::json!({"action_type": "status", "goal_status": "complete"});
                }
                match &self.screen {
                    Screen::ContactForm => {
                        if self.form.0 != *name {
                            if self.form.0.is_empty() || name.starts_with(&self.form.0) {
                                let rest = &name[self.form.0.len()..];
                                serde_json::json!({"action_type": "input_text", "text": rest, "index": 0})
                            } else {
                                serde_json::json!({"action_type": "navigate_back"})
                            }
                        } else if self.form.1 != *phone {
                            if self.form.1.is_empty() || phone.starts_with(&self.form.1) {
                                serde_json::json!({"action_type": "input_text", "text": &phone[self.form.1.len()..], "index": 1})
                            } else {
                                serde_json::json!({"action_type": "navigate_back"})
                            }
                        } else {
                            click(2)
                        }
                    }
                    Screen::Contacts => click(idx("contacts:add").unwrap_or(0)),
                    Screen::Home => {
                        serde_json::json!({"action_type": "open_app", "app_name": "Contacts"})
                    }
                    _ => serde_json::json!({"action_type": "navigate_home"}),
                }
            }
        }
    }

    /// Whether the final action completes the task.
    pub fn success(&self, task: &GuiTask, end: &Value) -> bool {
        let status = end.get("goal_status").and_then(Value::as_str);
        match task {
            GuiTask::Infeasible { .. } => status == Some("infeasible"),
            GuiTask::Toggle { name, on } => {
                status == Some("complete")
                    && self.settings.iter().any(|(n, v)| n == name && v == on)
            }
            GuiTask::AddContact { name, phone } => {
                status == Some("complete")
                    && self.contacts.iter().any(|(n, p)| n == name && p == phone)
            }
            GuiTask::ReadBuild => end
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| t.trim() == self.build),
        }
    }

    /// Canonical action key: the target resolved to its stable element id.
    pub fn action_key(&self, a: &Value) -> String {
        let mut a = a.clone();
        if let (Ok(e), Some(obj)) = (self.target(&a), a.as_object_mut()) {
            obj.remove("index");
            obj.remove("x");
            obj.remove("y");
            obj.insert("target".into(), Value::String(e.id));
        }
        canonical_json(&a)
    }
}

/// Parses a GUI action: a JSON object in the turn (inside `<action>…</action>`
/// if present, else the first `{…}` span). Returns the value and its byte span.
pub fn parse_action(text: &str) -> std::result::Result<(Value, std::ops::Range<usize>), String> {
    let (body, off) = match last_tag(text, "action") {
        Some(t) => (t.content, t.span.start),
        None => {
            let s = text.find('{').ok_or("no JSON action found; reply like <action>{\"action_type\": \"click\", \"index\": 0}</action>")?;
            let e = text.rfind('}').ok_or("unterminated JSON action")?;
            if e < s {
                return Err("unterminated JSON action".into());
            }
            (&text[s..=e], s)
        }
    };
    let trimmed = body.trim();
    let lead = body.len() - body.trim_start().len();
    let v: Value =
        serde_json::from_str(trimmed).map_err(|e| format!("action is not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err("action must be a JSON object".into());
    }
    Ok((v, off + lead..off + lead + trimmed.len()))
}

/// SynthGUI config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuiConfig {
    /// Maximum turns.
    pub max_turns: usize,
    /// Add per-step rewards against the planner's reference action.
    pub step_reward: bool,
}

impl Default for GuiConfig {
    fn default() -> Self {
        GuiConfig {
            max_turns: 15,
            step_reward: false,
        }
    }
}

const ACTIONS_HELP: &str = "Actions (JSON in <action></action>): click {index | x,y}, long_press, input_text {text, index?}, scroll {direction}, navigate_back, navigate_home, open_app {app_name}, keyboard_enter, wait, status {goal_status: complete|infeasible}, answer {text}.";

/// The SynthGUI env.
#[derive(Debug, Clone)]
pub struct GuiEnv {
    cfg: GuiConfig,
    phone: Option<Phone>,
    task: Option<GuiTask>,
    result: Option<bool>,
}

impl GuiEnv {
    /// A new env.
    pub fn new(cfg: GuiConfig) -> Self {
        GuiEnv {
            cfg,
            phone: None,
            task: None,
            result: None,
        }
    }
}

fn step_match(phone: &Phone, reference: &Value, action: &Value) -> f64 {
    let ty = |v: &Value| {
        v.get("action_type")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut r = 0.0;
    if ty(reference) == ty(action) {
        r += 0.5;
        if phone.action_key(reference) == phone.action_key(action) {
            r += 0.5;
        }
    }
    r
}

impl Env for GuiEnv {
    fn name(&self) -> &str {
        "synthgui"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let (phone, t) = Phone::generate(task.seed);
        let msg = Message::user(format!(
            "Task: {}\n{ACTIONS_HELP}\n{}",
            t.instruction(),
            phone.tree()
        ));
        self.phone = Some(phone);
        self.task = Some(t);
        self.result = None;
        Ok(Reset {
            messages: vec![msg],
            tools: vec![],
            stop: vec!["</action>".into()],
            state_key: self.state_key(),
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        let (Some(phone), Some(task)) = (self.phone.as_mut(), self.task.clone()) else {
            return Err(EnvError::Protocol {
                env: "synthgui".into(),
                reason: "step before reset".into(),
            });
        };
        if self.result.is_some() {
            return Err(EnvError::Protocol {
                env: "synthgui".into(),
                reason: "step after the episode ended".into(),
            });
        }
        let (action, span) = match parse_action(turn.text) {
            Ok(x) => x,
            Err(e) => {
                let mut o = StepOutcome::invalid(
                    format!(
                        "Invalid action: {e}{}.\n{}",
                        truncation_note(turn.truncated()),
                        phone.tree()
                    ),
                    0.0,
                );
                o.state_key = Some(phone.key());
                return Ok(o);
            }
        };
        let reference = phone.plan(&task);
        let mut reward = RewardBreakdown::zero();
        if self.cfg.step_reward {
            reward.add("step_match", step_match(phone, &reference, &action));
        }
        let key = phone.action_key(&action);
        match phone.apply(&action) {
            Err(e) => {
                let mut o =
                    StepOutcome::invalid(format!("Invalid action: {e}.\n{}", phone.tree()), 0.0);
                o.reward = reward;
                o.action_span = Some(span);
                o.action_key = Some(key);
                o.state_key = Some(phone.key());
                Ok(o)
            }
            Ok(Some(end)) => {
                let ok = phone.success(&task, &end);
                self.result = Some(ok);
                Ok(StepOutcome {
                    reward,
                    end: Some(EndSignal::Terminated { success: ok }),
                    action_valid: true,
                    action_span: Some(span.clone()),
                    answer_span: Some(span),
                    action_key: Some(key),
                    state_key: Some(phone.key()),
                    ..Default::default()
                })
            }
            Ok(None) => Ok(StepOutcome {
                observation: vec![Message::env(phone.tree())],
                reward,
                end: Some(EndSignal::Continue),
                action_valid: true,
                action_span: Some(span),
                action_key: Some(key),
                state_key: Some(phone.key()),
                ..Default::default()
            }),
        }
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        let s = f64::from(u8::from(self.result == Some(true)));
        RewardBreakdown::zero().with("success", s).anchor(s)
    }
    fn state_key(&self) -> Option<String> {
        self.phone.as_ref().map(Phone::key)
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: self.cfg.max_turns,
            max_tokens_per_turn: 256,
            max_observation_tokens: 600,
        }
    }
    fn render_debug(&self) -> Option<String> {
        Some(format!(
            "{}\n{}",
            self.task.as_ref()?.instruction(),
            self.phone.as_ref()?.tree()
        ))
    }
    fn oracle_action(&self) -> Option<String> {
        let p = self.phone.as_ref()?;
        Some(format!("<action>{}</action>", p.plan(self.task.as_ref()?)))
    }
}

/// Critic mode config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuiCriticConfig {
    /// Probability the proposed action is a perturbation of the planner's.
    pub p_wrong: f64,
}

impl Default for GuiCriticConfig {
    fn default() -> Self {
        GuiCriticConfig { p_wrong: 0.5 }
    }
}

/// GUI-Critic-R1 style single-turn env: judge a proposed action on a screen.
/// Answer `<judgement>correct|incorrect</judgement>` and, when incorrect,
/// `<suggestion>{json action}</suggestion>`. Labels come from simulating the
/// proposed and the planner's actions on copies of the state.
///
/// Anchor reward (GUI-Critic-R1, simplified): format 0.1 + judgement 1 +
/// suggestion 0.5. Ours: `judgement` 1/0, `suggestion` 0.5 when a wrong
/// proposal is corrected with an action equivalent to the planner's, `format` 0.1.
#[derive(Debug, Clone)]
pub struct GuiCriticEnv {
    cfg: GuiCriticConfig,
    phone: Option<Phone>,
    task: Option<GuiTask>,
    proposed: Value,
    label: bool,
    result: RewardBreakdown,
}

impl GuiCriticEnv {
    /// A new env.
    pub fn new(cfg: GuiCriticConfig) -> Self {
        GuiCriticEnv {
            cfg,
            phone: None,
            task: None,
            proposed: Value::Null,
            label: false,
            result: RewardBreakdown::zero(),
        }
    }
    fn equivalent(phone: &Phone, a: &Value, b: &Value) -> bool {
        let (mut x, mut y) = (phone.clone(), phone.clone());
        match (x.apply(a), y.apply(b)) {
            (Ok(ea), Ok(eb)) => x == y && ea == eb,
            _ => false,
        }
    }
}

impl Env for GuiCriticEnv {
    fn name(&self) -> &str {
        "synthgui-critic"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let (mut phone, t) = Phone::generate(task.seed);
        let mut r = rng(derive_seed(task.seed, "critic", &[]));
        let mut history = Vec::new();
        for _ in 0..r.random_range(0..4) {
            let a = phone.plan(&t);
            if matches!(phone.apply(&a), Ok(Some(_)) | Err(_)) {
                break;
            }
            history.push(canonical_json(&a));
        }
        let good = phone.plan(&t);
        let proposed = if r.random_bool(self.cfg.p_wrong) {
            let n = phone.elements().len();
            let options = [
                serde_json::json!({"action_type": "click", "index": r.random_range(0..n.max(1))}),
                serde_json::json!({"action_type": "navigate_back"}),
                serde_json::json!({"action_type": "scroll", "direction": "up"}),
                serde_json::json!({"action_type": "status", "goal_status": "complete"}),
            ];
            options[r.random_range(0..options.len())].clone()
        } else {
            good.clone()
        };
        self.label = Self::equivalent(&phone, &proposed, &good)
            && !matches!(t, GuiTask::Infeasible { .. } if proposed != good);
        let msg = Message::user(format!(
            "Task: {}\nPrevious actions: {}\nCurrent screen:\n{}Proposed next action: {}\nIs the proposed action correct? Answer <judgement>correct</judgement> or <judgement>incorrect</judgement>; if incorrect, give a better action as <suggestion>{{json}}</suggestion>.",
            t.instruction(),
            if history.is_empty() {
                "none".into()
            } else {
                history.join(", ")
            },
            phone.tree(),
            canonical_json(&proposed)
        ));
        self.proposed = proposed;
        self.phone = Some(phone);
        self.task = Some(t);
        self.result = RewardBreakdown::zero();
        Ok(Reset {
            messages: vec![msg],
            tools: vec![],
            stop: vec![],
            state_key: None,
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        let (Some(phone), Some(task)) = (&self.phone, &self.task) else {
            return Err(EnvError::Protocol {
                env: "synthgui-critic".into(),
                reason: "step before reset".into(),
            });
        };
        let j = last_tag(turn.text, "judgement");
        let verdict = j.as_ref().map(|t| t.content.trim().to_lowercase());
        let formed = matches!(verdict.as_deref(), Some("correct") | Some("incorrect"));
        let judged_ok = verdict.as_deref() == Some("correct");
        let accurate = formed && judged_ok == self.label;
        let mut r = RewardBreakdown::zero();
        r.add("judgement", f64::from(u8::from(accurate)));
        if formed {
            r.add("format", 0.1);
        }
        let mut sugg_ok = false;
        if !self.label && !judged_ok {
            if let Some(s) = last_tag(turn.text, "suggestion")
                && let Ok(v) = serde_json::from_str::<Value>(s.content.trim())
            {
                sugg_ok = Self::equivalent(phone, &v, &phone.plan(task));
            }
            if sugg_ok {
                r.add("suggestion", 0.5);
            }
        }
        let anchor = r.total;
        self.result = r.anchor(anchor);
        Ok(StepOutcome {
            end: Some(EndSignal::Terminated { success: accurate }),
            action_valid: formed,
            answer_span: j.map(|t| t.span),
            ..Default::default()
        })
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        self.result.clone()
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: 1,
            max_tokens_per_turn: 512,
            max_observation_tokens: 64,
        }
    }
    fn oracle_action(&self) -> Option<String> {
        let p = self.phone.as_ref()?;
        if self.label {
            Some("<judgement>correct</judgement>".into())
        } else {
            Some(format!(
                "<judgement>incorrect</judgement><suggestion>{}</suggestion>",
                p.plan(self.task.as_ref()?)
            ))
        }
    }
}
