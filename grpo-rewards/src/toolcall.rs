//! Tool-call verification with BFCL's AST-checker semantics.
//!
//! Three layers, each usable alone:
//! - [`parse_tool_calls`]: model text -> calls. Accepts Qwen/Hermes
//!   `<tool_call>{"name", "arguments"|"parameters"}</tool_call>` blocks, a JSON
//!   object or array (`{"name", "arguments"}` or BFCL's `{"func": {...}}`), and
//!   Python call syntax `[f(a=1, b="x")]` through a restricted literal parser
//!   (never evaluated).
//! - [`validate_call`]: a call against a JSON-schema-style function definition
//!   (BFCL `dict`/`float`/`tuple`/`any` names and JSON-schema
//!   `object`/`number` both accepted; `int` is accepted for `float`, `float` is
//!   rejected for `integer`, `bool` is never a number; nested objects and array
//!   items checked recursively; `enum`).
//! - [`check`]: calls against BFCL `possible_answer` (`[{name: {param:
//!   [accepted values]}}]`; `""` in a list means the parameter may be omitted):
//!   simple, multiple, parallel and parallel-multiple (order-free maximum
//!   matching), irrelevance (`null` or empty answer: valid iff no call).
//!
//! ```
//! use grpo_rewards::toolcall::{check, ToolCallConfig};
//! use serde_json::json;
//! let functions = json!([{"name": "add", "parameters": {"type": "dict",
//!     "properties": {"a": {"type": "integer"}, "b": {"type": "float"}}, "required": ["a", "b"]}}]);
//! let answer = json!([{"add": {"a": [1], "b": [2.0]}}]);
//! let v = check(&functions, &answer, "[add(a=1, b=2)]", &ToolCallConfig::default()).unwrap();
//! assert!(v.valid, "{v:?}");
//! let v = check(&functions, &answer, "[add(a=1.5, b=2)]", &ToolCallConfig::default()).unwrap();
//! assert_eq!(v.error_type, Some(grpo_rewards::toolcall::ErrorKind::TypeError));
//! ```

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, RewardError};

/// One decoded tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Function name.
    pub name: String,
    /// Keyword arguments.
    pub arguments: Map<String, Value>,
}

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The model output could not be decoded into calls.
    ParseError,
    /// A call names a function that is not the expected one.
    WrongFunction,
    /// A required parameter is missing.
    MissingRequired,
    /// An optional parameter is missing and the answer does not allow omitting it.
    MissingOptional,
    /// A parameter not in the schema or not in the possible answer.
    UnexpectedParam,
    /// A value has the wrong type.
    TypeError,
    /// A value is not among the accepted ones.
    ValueMismatch,
    /// The number of calls differs from the expected number (or a call was
    /// made where none was expected).
    WrongCount,
}

/// Options of the checker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolCallConfig {
    /// BFCL string standardisation (drop spaces and `,./-_*^`, lowercase, `'`->`"`).
    pub standardize_strings: bool,
    /// Accept integers where a float is expected.
    pub int_as_float: bool,
    /// Treat `.` and `_` in function names as equal (some FC models rename).
    pub dot_underscore_alias: bool,
}

impl Default for ToolCallConfig {
    fn default() -> Self {
        ToolCallConfig {
            standardize_strings: true,
            int_as_float: true,
            dot_underscore_alias: false,
        }
    }
}

/// Outcome of [`check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolVerdict {
    /// Whether the output is correct.
    pub valid: bool,
    /// The error kind when not valid.
    pub error_type: Option<ErrorKind>,
    /// A BFCL-style error id (`simple_function_checker:wrong_func_name`, ...).
    pub bfcl_error_type: Option<String>,
    /// Human-readable detail.
    pub error: Option<String>,
    /// The decoded calls.
    pub calls: Vec<ToolCall>,
}

impl ToolVerdict {
    fn ok(calls: Vec<ToolCall>) -> Self {
        ToolVerdict {
            valid: true,
            error_type: None,
            bfcl_error_type: None,
            error: None,
            calls,
        }
    }
    fn fail(kind: ErrorKind, bfcl: &str, msg: String, calls: Vec<ToolCall>) -> Self {
        ToolVerdict {
            valid: false,
            error_type: Some(kind),
            bfcl_error_type: Some(bfcl.to_string()),
            error: Some(msg),
            calls,
        }
    }
}

// ---------------------------------------------------------------- parsing

static TOOL_CALL_BLOCK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<tool_call>(.*?)</tool_call>").expect("static regex"));
static FENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)```(?:json|python|tool_call)?\s*(.*?)```").expect("static regex")
});

fn call_from_json(v: &Value) -> std::result::Result<ToolCall, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("a tool call must be an object, got {v}"))?;
    if let Some(name) = obj.get("name").and_then(Value::as_str) {
        let args = obj
            .get("arguments")
            .or_else(|| obj.get("parameters"))
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let args = match args {
            // OpenAI style: arguments as a JSON string
            Value::String(s) => {
                serde_json::from_str(&s).map_err(|e| format!("arguments of {name}: {e}"))?
            }
            a => a,
        };
        let Value::Object(arguments) = args else {
            return Err(format!("arguments of {name} must be an object"));
        };
        return Ok(ToolCall {
            name: name.to_string(),
            arguments,
        });
    }
    if let Some(f) = obj.get("function") {
        return call_from_json(f);
    }
    if obj.len() == 1
        && let Some((name, Value::Object(a))) = obj.iter().next()
    {
        {
            return Ok(ToolCall {
                name: name.clone(),
                arguments: a.clone(),
            });
        }
    }
    Err(format!("cannot read a tool call from {v}"))
}

fn calls_from_json(v: &Value) -> std::result::Result<Vec<ToolCall>, String> {
    match v {
        Value::Array(a) => a.iter().map(call_from_json).collect(),
        Value::Object(o) if o.contains_key("tool_calls") => calls_from_json(&o["tool_calls"]),
        other => Ok(vec![call_from_json(other)?]),
    }
}

/// Decodes tool calls from model text. An empty `Ok` means "no call".
pub fn parse_tool_calls(text: &str) -> std::result::Result<Vec<ToolCall>, String> {
    let blocks: Vec<&str> = TOOL_CALL_BLOCK
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| m.as_str())
        .collect();
    if !blocks.is_empty() {
        let mut out = Vec::new();
        for b in blocks {
            let b = b.trim();
            match serde_json::from_str::<Value>(b) {
                Ok(v) => out.extend(calls_from_json(&v)?),
                Err(e) => {
                    // one JSON object per line is also seen in the wild
                    let mut any = false;
                    for line in b.lines().filter(|l| !l.trim().is_empty()) {
                        let v: Value = serde_json::from_str(line.trim())
                            .map_err(|_| format!("invalid JSON in <tool_call>: {e}"))?;
                        out.extend(calls_from_json(&v)?);
                        any = true;
                    }
                    if !any {
                        return Err(format!("invalid JSON in <tool_call>: {e}"));
                    }
                }
            }
        }
        return Ok(out);
    }
    let mut body = text.trim().to_string();
    if let Some(c) = FENCE.captures(text).and_then(|c| c.get(1)) {
        body = c.as_str().trim().to_string();
    }
    if body.is_empty() {
        return Ok(vec![]);
    }
    if body.starts_with('{')
        || (body.starts_with('[') && body[1..].trim_start().starts_with(['{', ']']))
    {
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("invalid JSON: {e}"))?;
        return calls_from_json(&v);
    }
    let mut p = Py {
        c: body.chars().collect(),
        i: 0,
        depth: 0,
    };
    p.calls()
}

/// Parses one Python literal (numbers, strings, True/False/None, lists,
/// tuples, dicts) into JSON; used by the GUI action parser.
pub fn parse_python_literal(text: &str) -> std::result::Result<Value, String> {
    let mut p = Py {
        c: text.trim().chars().collect(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.c.len() {
        return Err(format!("trailing text after the literal at {}", p.i));
    }
    Ok(v)
}

/// A restricted parser for Python call lists: names, keyword arguments and
/// literals (numbers, strings, True/False/None, lists, tuples, dicts).
struct Py {
    c: Vec<char>,
    i: usize,
    depth: usize,
}

type PR<T> = std::result::Result<T, String>;

impl Py {
    fn ws(&mut self) {
        while self.i < self.c.len() && self.c[self.i].is_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<char> {
        self.ws();
        self.c.get(self.i).copied()
    }
    fn expect(&mut self, ch: char) -> PR<()> {
        if self.peek() == Some(ch) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{ch}` at {}", self.i))
        }
    }
    fn ident(&mut self) -> PR<String> {
        self.ws();
        let st = self.i;
        while self.i < self.c.len()
            && (self.c[self.i].is_alphanumeric() || matches!(self.c[self.i], '_' | '.'))
        {
            self.i += 1;
        }
        if st == self.i {
            return Err(format!("expected a name at {st}"));
        }
        Ok(self.c[st..self.i].iter().collect())
    }
    fn calls(&mut self) -> PR<Vec<ToolCall>> {
        let bracketed = self.peek() == Some('[');
        if bracketed {
            self.i += 1;
        }
        let mut out = Vec::new();
        loop {
            if bracketed && self.peek() == Some(']') {
                self.i += 1;
                break;
            }
            out.push(self.call()?);
            match self.peek() {
                Some(',') | Some(';') => self.i += 1,
                Some(']') if bracketed => {}
                None if !bracketed => break,
                Some('\n') => {}
                other => {
                    if !bracketed && other.is_some() {
                        continue;
                    }
                    if other.is_none() {
                        return Err("unterminated call list".into());
                    }
                }
            }
        }
        self.ws();
        if self.i != self.c.len() {
            return Err(format!("trailing text after the calls at {}", self.i));
        }
        Ok(out)
    }
    fn call(&mut self) -> PR<ToolCall> {
        let name = self.ident()?;
        self.expect('(')?;
        let mut arguments = Map::new();
        loop {
            if self.peek() == Some(')') {
                self.i += 1;
                break;
            }
            let key = self.ident()?;
            if self.peek() != Some('=') {
                return Err(format!("positional argument in call to {name}"));
            }
            self.i += 1;
            let v = self.value()?;
            arguments.insert(key, v);
            match self.peek() {
                Some(',') => self.i += 1,
                Some(')') => {}
                _ => return Err(format!("expected `,` or `)` in call to {name}")),
            }
        }
        Ok(ToolCall { name, arguments })
    }
    fn value(&mut self) -> PR<Value> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("nesting too deep".into());
        }
        let v = self.value_inner();
        self.depth -= 1;
        v
    }
    fn seq(&mut self, close: char) -> PR<Vec<Value>> {
        let mut v = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(v);
            }
            v.push(self.value()?);
            match self.peek() {
                Some(',') => self.i += 1,
                Some(c) if c == close => {}
                _ => return Err(format!("expected `,` or `{close}`")),
            }
        }
    }
    fn value_inner(&mut self) -> PR<Value> {
        match self.peek() {
            Some('[') => {
                self.i += 1;
                Ok(Value::Array(self.seq(']')?))
            }
            Some('(') => {
                self.i += 1;
                Ok(Value::Array(self.seq(')')?))
            }
            Some('{') => {
                self.i += 1;
                let mut m = Map::new();
                loop {
                    if self.peek() == Some('}') {
                        self.i += 1;
                        return Ok(Value::Object(m));
                    }
                    let k = match self.value()? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    self.expect(':')?;
                    let v = self.value()?;
                    m.insert(k, v);
                    match self.peek() {
                        Some(',') => self.i += 1,
                        Some('}') => {}
                        _ => return Err("expected `,` or `}` in dict".into()),
                    }
                }
            }
            Some(q @ ('"' | '\'')) => {
                self.i += 1;
                let mut s = String::new();
                while self.i < self.c.len() {
                    let ch = self.c[self.i];
                    self.i += 1;
                    if ch == '\\' && self.i < self.c.len() {
                        let e = self.c[self.i];
                        self.i += 1;
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    } else if ch == q {
                        return Ok(Value::String(s));
                    } else {
                        s.push(ch);
                    }
                }
                Err("unterminated string".into())
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let st = self.i;
                self.i += 1;
                while self.i < self.c.len()
                    && (self.c[self.i].is_ascii_alphanumeric()
                        || matches!(self.c[self.i], '.' | '+' | '-' | '_'))
                {
                    if matches!(self.c[self.i], '+' | '-')
                        && !matches!(self.c[self.i - 1], 'e' | 'E')
                    {
                        break;
                    }
                    self.i += 1;
                }
                let lit: String = self.c[st..self.i].iter().filter(|c| **c != '_').collect();
                if let Ok(n) = lit.parse::<i64>() {
                    return Ok(Value::from(n));
                }
                lit.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("bad number `{lit}`"))
            }
            Some(_) => {
                let w = self.ident()?;
                match w.as_str() {
                    "True" | "true" => Ok(Value::Bool(true)),
                    "False" | "false" => Ok(Value::Bool(false)),
                    "None" | "null" => Ok(Value::Null),
                    _ => Err(format!(
                        "unsupported expression `{w}` (only literals are allowed)"
                    )),
                }
            }
            None => Err("unexpected end of input".into()),
        }
    }
}

// ---------------------------------------------------------------- schema

fn function_name(f: &Value) -> Option<&str> {
    f.get("name").and_then(Value::as_str).or_else(|| {
        f.get("function")
            .and_then(|x| x.get("name"))
            .and_then(Value::as_str)
    })
}

fn function_params(f: &Value) -> Option<&Value> {
    f.get("parameters")
        .or_else(|| f.get("function").and_then(|x| x.get("parameters")))
}

fn names_equal(a: &str, b: &str, cfg: &ToolCallConfig) -> bool {
    a == b || (cfg.dot_underscore_alias && a.replace('.', "_") == b.replace('.', "_"))
}

fn type_ok(
    v: &Value,
    schema: &Value,
    cfg: &ToolCallConfig,
    path: &str,
) -> std::result::Result<(), String> {
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("any");
    let ok = match ty {
        "string" | "str" | "char" => v.is_string(),
        "integer" | "int" | "long" | "short" | "byte" => v.is_i64() || v.is_u64(),
        "float" | "number" | "double" => {
            v.is_f64() || (cfg.int_as_float && (v.is_i64() || v.is_u64()))
        }
        "boolean" | "bool" => v.is_boolean(),
        "array" | "tuple" | "list" | "ArrayList" => v.is_array(),
        "dict" | "object" | "HashMap" => v.is_object(),
        _ => true,
    };
    if !ok {
        return Err(format!("`{path}` should be {ty}, got {v}"));
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (k, x) in arr.iter().enumerate() {
            type_ok(x, items, cfg, &format!("{path}[{k}]"))?;
        }
    }
    if let (Some(Value::Object(props)), Some(obj)) = (schema.get("properties"), v.as_object()) {
        for (k, x) in obj {
            if let Some(s) = props.get(k) {
                type_ok(x, s, cfg, &format!("{path}.{k}"))?;
            }
        }
    }
    Ok(())
}

/// Validates one call against one function definition (name not checked).
pub fn validate_call(
    call: &ToolCall,
    function: &Value,
    cfg: &ToolCallConfig,
) -> std::result::Result<(), (ErrorKind, String)> {
    let params = function_params(function).cloned().unwrap_or(Value::Null);
    let empty = Map::new();
    let props = params
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = params
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for r in &required {
        if !call.arguments.contains_key(*r) {
            return Err((
                ErrorKind::MissingRequired,
                format!("missing required parameter `{r}` of {}", call.name),
            ));
        }
    }
    for (k, v) in &call.arguments {
        let Some(s) = props.get(k) else {
            return Err((
                ErrorKind::UnexpectedParam,
                format!("unexpected parameter `{k}` for {}", call.name),
            ));
        };
        type_ok(v, s, cfg, k).map_err(|e| (ErrorKind::TypeError, e))?;
        if let Some(Value::Array(allowed)) = s.get("enum")
            && !allowed.iter().any(|a| json_eq(a, v))
        {
            {
                return Err((
                    ErrorKind::ValueMismatch,
                    format!("`{k}` = {v} is not one of the enum values"),
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- values

/// BFCL's string standardisation.
pub fn standardize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | ',' | '.' | '/' | '-' | '_' | '*' | '^'))
        .flat_map(char::to_lowercase)
        .map(|c| if c == '\'' { '"' } else { c })
        .collect()
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p == q,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Whether `model` matches the accepted value `gold` (one alternative).
fn value_matches(model: &Value, gold: &Value, cfg: &ToolCallConfig) -> bool {
    match (model, gold) {
        (Value::String(m), Value::String(g)) => {
            if cfg.standardize_strings {
                standardize(m) == standardize(g)
            } else {
                m == g
            }
        }
        (Value::Array(m), Value::Array(g)) => {
            m.len() == g.len() && m.iter().zip(g).all(|(x, y)| value_matches(x, y, cfg))
        }
        (Value::Object(m), Value::Object(g)) => dict_matches(m, g, cfg),
        (Value::Number(_), Value::Number(_)) => json_eq(model, gold),
        _ => model == gold,
    }
}

/// BFCL dict rule: every model key is accepted and its value is in the key's
/// list; a missing key is fine only when `""` is listed. A gold value that is
/// not a list is compared directly.
fn dict_matches(m: &Map<String, Value>, g: &Map<String, Value>, cfg: &ToolCallConfig) -> bool {
    for (k, v) in m {
        let Some(acc) = g.get(k) else { return false };
        let ok = match acc {
            Value::Array(alts) if !alts.is_empty() && !v.is_array() => {
                alts.iter().any(|a| value_matches(v, a, cfg))
            }
            Value::Array(alts) if v.is_array() => {
                value_matches(v, acc, cfg)
                    || alts
                        .iter()
                        .any(|a| a.is_array() && value_matches(v, a, cfg))
            }
            other => value_matches(v, other, cfg),
        };
        if !ok {
            return false;
        }
    }
    g.iter().all(|(k, acc)| {
        m.contains_key(k) || matches!(acc, Value::Array(a) if a.iter().any(|x| x == ""))
    })
}

fn check_one(
    call: &ToolCall,
    expected_name: &str,
    accepted: &Map<String, Value>,
    functions: &[Value],
    cfg: &ToolCallConfig,
) -> std::result::Result<(), (ErrorKind, &'static str, String)> {
    if !names_equal(&call.name, expected_name, cfg) {
        return Err((
            ErrorKind::WrongFunction,
            "simple_function_checker:wrong_func_name",
            format!("expected {expected_name}, got {}", call.name),
        ));
    }
    let func = functions
        .iter()
        .find(|f| function_name(f).is_some_and(|n| names_equal(n, expected_name, cfg)));
    if let Some(f) = func
        && let Err((kind, msg)) = validate_call(call, f, cfg)
    {
        {
            let id = match kind {
                ErrorKind::MissingRequired => "simple_function_checker:missing_required",
                ErrorKind::UnexpectedParam => "simple_function_checker:unexpected_param",
                ErrorKind::TypeError => "type_error:simple",
                _ => "value_error:others",
            };
            return Err((kind, id, msg));
        }
    }
    for (k, v) in &call.arguments {
        let Some(acc) = accepted.get(k) else {
            return Err((
                ErrorKind::UnexpectedParam,
                "simple_function_checker:unexpected_param",
                format!("parameter `{k}` is not in the possible answer"),
            ));
        };
        let alts: Vec<&Value> = match acc {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        if !alts.iter().any(|a| value_matches(v, a, cfg)) {
            let id = match v {
                Value::String(_) => "value_error:string",
                Value::Array(_) => "value_error:list/tuple",
                Value::Object(_) => "value_error:dict_value",
                _ => "value_error:others",
            };
            return Err((
                ErrorKind::ValueMismatch,
                id,
                format!("`{k}` = {v} is not among {acc}"),
            ));
        }
    }
    for (k, acc) in accepted {
        if !call.arguments.contains_key(k)
            && !matches!(acc, Value::Array(a) if a.iter().any(|x| x == ""))
        {
            return Err((
                ErrorKind::MissingOptional,
                "simple_function_checker:missing_optional",
                format!("parameter `{k}` is missing and may not be omitted"),
            ));
        }
    }
    Ok(())
}

fn expected_calls(possible: &Value) -> Result<Vec<(String, Map<String, Value>)>> {
    let bad = |r: &str| RewardError::InvalidInput {
        field: "possible_answer".into(),
        reason: r.into(),
    };
    let list = match possible {
        Value::Null => return Ok(vec![]),
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![possible.clone()],
        _ => return Err(bad("must be a list of {function: {param: [values]}}")),
    };
    let mut out = Vec::new();
    for item in list {
        let obj = item
            .as_object()
            .ok_or_else(|| bad("each expected call must be an object"))?;
        if obj.len() != 1 {
            return Err(bad(
                "each expected call must have exactly one function name",
            ));
        }
        for (name, params) in obj {
            let params = params
                .as_object()
                .ok_or_else(|| bad("parameters must be an object"))?;
            out.push((name.clone(), params.clone()));
        }
    }
    Ok(out)
}

/// Checks `model_output_text` against BFCL `possible_answer` given the
/// available `functions`. `Err` only for malformed task data.
pub fn check(
    functions: &Value,
    possible_answer: &Value,
    model_output_text: &str,
    cfg: &ToolCallConfig,
) -> Result<ToolVerdict> {
    let funcs: Vec<Value> = match functions {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    };
    let expected = expected_calls(possible_answer)?;
    let parsed = parse_tool_calls(model_output_text);
    if expected.is_empty() {
        // irrelevance: valid iff no call could be decoded
        return Ok(match parsed {
            Ok(c) if !c.is_empty() => ToolVerdict::fail(
                ErrorKind::WrongCount,
                "irrelevance_checker:function_called",
                format!("{} call(s) made where none was expected", c.len()),
                c,
            ),
            _ => ToolVerdict::ok(vec![]),
        });
    }
    let calls = match parsed {
        Ok(c) => c,
        Err(e) => {
            return Ok(ToolVerdict::fail(
                ErrorKind::ParseError,
                "ast_decoder:decoder_failed",
                e,
                vec![],
            ));
        }
    };
    if calls.len() != expected.len() {
        let id = if expected.len() == 1 {
            "simple_function_checker:wrong_count"
        } else {
            "parallel_function_checker_no_order:wrong_count"
        };
        return Ok(ToolVerdict::fail(
            ErrorKind::WrongCount,
            id,
            format!("expected {} call(s), got {}", expected.len(), calls.len()),
            calls,
        ));
    }
    if expected.len() == 1 {
        let (name, acc) = &expected[0];
        return Ok(match check_one(&calls[0], name, acc, &funcs, cfg) {
            Ok(()) => ToolVerdict::ok(calls),
            Err((k, id, msg)) => ToolVerdict::fail(k, id, msg, calls),
        });
    }
    // parallel: maximum bipartite matching between expected and model calls
    let n = expected.len();
    let mut ok = vec![vec![false; n]; n];
    let mut first_err = None;
    for (i, (name, acc)) in expected.iter().enumerate() {
        for (j, c) in calls.iter().enumerate() {
            match check_one(c, name, acc, &funcs, cfg) {
                Ok(()) => ok[i][j] = true,
                Err(e) => {
                    if first_err.is_none()
                        || (c.name == *name
                            && first_err
                                .as_ref()
                                .is_some_and(|(k, _, _): &(ErrorKind, _, _)| {
                                    *k == ErrorKind::WrongFunction
                                }))
                    {
                        first_err = Some(e);
                    }
                }
            }
        }
    }
    let mut owner: Vec<Option<usize>> = vec![None; n];
    fn augment(i: usize, ok: &[Vec<bool>], seen: &mut [bool], owner: &mut [Option<usize>]) -> bool {
        for j in 0..ok[i].len() {
            if ok[i][j] && !seen[j] {
                seen[j] = true;
                if owner[j].is_none_or(|k| augment(k, ok, seen, owner)) {
                    owner[j] = Some(i);
                    return true;
                }
            }
        }
        false
    }
    for i in 0..n {
        let mut seen = vec![false; n];
        if !augment(i, &ok, &mut seen, &mut owner) {
            let (name, _) = &expected[i];
            let (kind, detail) = match first_err {
                Some((k, _, m)) => (k, m),
                None => (ErrorKind::ValueMismatch, String::new()),
            };
            return Ok(ToolVerdict::fail(
                kind,
                "parallel_function_checker_no_order:cannot_find_match",
                format!(
                    "no model call matches expected call {} to {name}: {detail}",
                    i + 1
                ),
                calls,
            ));
        }
    }
    Ok(ToolVerdict::ok(calls))
}

/// JSON entry point used by `grpo verify toolcall`: input `{"functions",
/// "possible_answer", "model_output_text", "options"?}` (BFCL field names),
/// output `{"valid", "error_type", "bfcl_error_type", "error", "calls"}`.
pub fn verify_json(v: &Value) -> Result<Value> {
    let text = v
        .get("model_output_text")
        .and_then(Value::as_str)
        .ok_or_else(|| RewardError::InvalidInput {
            field: "model_output_text".into(),
            reason: "missing or not a string".into(),
        })?;
    let cfg: ToolCallConfig = match v.get("options") {
        None | Some(Value::Null) => ToolCallConfig::default(),
        Some(o) => serde_json::from_value(o.clone()).map_err(|e| RewardError::InvalidInput {
            field: "options".into(),
            reason: e.to_string(),
        })?,
    };
    let functions = v
        .get("functions")
        .or_else(|| v.get("function"))
        .cloned()
        .unwrap_or(Value::Null);
    let possible = v
        .get("possible_answer")
        .or_else(|| v.get("ground_truth"))
        .cloned()
        .unwrap_or(Value::Null);
    let r = check(&functions, &possible, text, &cfg)?;
    Ok(serde_json::json!({
        "valid": r.valid,
        "error_type": r.error_type,
        "bfcl_error_type": r.bfcl_error_type,
        "error": r.error,
        "calls": r.calls,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_formats() {
        let h = parse_tool_calls(
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>",
        )
        .unwrap();
        assert_eq!(h[0].name, "f");
        let j = parse_tool_calls("[{\"name\": \"g\", \"parameters\": {\"b\": \"x\"}}]").unwrap();
        assert_eq!(j[0].arguments["b"], "x");
        let p = parse_tool_calls("[f(a=1, b='x', c=[1, 2.5], d={'k': True}, e=None), m.g(x=-3)]")
            .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].arguments["c"][1], 2.5);
        assert_eq!(p[1].name, "m.g");
        assert!(parse_tool_calls("[f(1)]").is_err());
        assert!(parse_tool_calls("[f(a=__import__('os'))]").is_err());
    }

    #[test]
    fn standardize_matches_bfcl() {
        assert_eq!(standardize("April 1, 2024"), standardize("april 12024"));
        assert_eq!(standardize("New York, NY"), "newyorkny");
    }
}
