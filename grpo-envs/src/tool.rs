//! The `Tool` trait, JSON-Schema argument validation, a per-episode tool registry
//! that turns every failure (bad JSON, unknown tool, invalid arguments, errors,
//! timeouts) into an observation, and tool-call records for OTC-style metrics.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::message::ToolSpec;
use crate::rational::{ExprOptions, eval_expr};

/// The result of one tool call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolResult {
    /// Text returned to the model.
    pub content: String,
    /// Whether the call failed (the content says why).
    pub is_error: bool,
}

impl ToolResult {
    /// A successful result.
    pub fn ok(content: impl Into<String>) -> Self {
        ToolResult {
            content: content.into(),
            is_error: false,
        }
    }
    /// A failed result.
    pub fn error(content: impl Into<String>) -> Self {
        ToolResult {
            content: content.into(),
            is_error: true,
        }
    }
}

/// Per-call context given by the registry.
#[derive(Debug, Clone, Copy)]
pub struct ToolContext {
    /// Wall-clock budget of the call; long tools must respect it.
    pub timeout: Duration,
}

/// A callable tool. One instance per episode, so per-episode state lives in `self`.
pub trait Tool: Send {
    /// Name, description and argument schema.
    fn spec(&self) -> ToolSpec;
    /// Runs the tool on arguments that already passed schema validation.
    fn call(&mut self, args: &Value, ctx: &ToolContext) -> ToolResult;
    /// Called once at episode end; idempotent.
    fn end_episode(&mut self) {}
}

/// One recorded tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// Tool name as given by the model (may be unknown).
    pub name: String,
    /// Canonical JSON of the arguments (sorted keys), empty when unparsable.
    pub arguments: String,
    /// Whether the call succeeded.
    pub ok: bool,
    /// Error text when it did not.
    pub error: Option<String>,
    /// Wall-clock milliseconds.
    pub latency_ms: f64,
    /// Length of the returned content in bytes.
    pub output_len: usize,
}

impl ToolCallRecord {
    /// Canonical action key: `name` + canonical arguments.
    pub fn action_key(&self) -> String {
        format!("{}:{}", self.name, self.arguments)
    }
}

/// Canonical JSON (object keys sorted recursively; `serde_json` maps are ordered).
pub fn canonical_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            o => o.clone(),
        }
    }
    sort(v).to_string()
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// Validates `args` against a JSON Schema subset (`type`, `properties`,
/// `required`, `enum`, `additionalProperties: false`, `items`), returning a
/// message naming the offending field.
pub fn validate_args(schema: &Value, args: &Value) -> Result<(), String> {
    validate_at(schema, args, "arguments")
}

fn validate_at(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    if let Some(ty) = schema.get("type").and_then(|t| t.as_str())
        && !type_ok(ty, v)
    {
        return Err(format!("`{path}` must be of type {ty}, got {v}"));
    }
    if let Some(allowed) = schema.get("enum").and_then(|e| e.as_array())
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        return Err(format!(
            "`{path}` must be one of [{}], got {v}",
            list.join(", ")
        ));
    }
    if let Value::Object(obj) = v {
        let props = schema.get("properties").and_then(|p| p.as_object());
        if let Some(req) = schema.get("required").and_then(|r| r.as_array()) {
            for r in req.iter().filter_map(|r| r.as_str()) {
                if !obj.contains_key(r) {
                    return Err(format!("missing required field `{path}.{r}`"));
                }
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate_at(s, val, &format!("{path}.{k}"))?,
                None => {
                    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                        return Err(format!("unknown field `{path}.{k}`"));
                    }
                }
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, it) in items.iter().enumerate() {
            validate_at(s, it, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

/// The tools of one episode, with call limits and recording.
pub struct ToolRegistry {
    tools: Vec<Box<dyn Tool>>,
    /// Per-call wall-clock budget.
    pub timeout: Duration,
    /// Maximum bytes of a tool result returned to the model (cut with a note).
    pub max_output_bytes: usize,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.names())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ToolRegistry {
    /// A registry over these tools with a 10 s timeout and 2000-byte output cap.
    pub fn new(tools: Vec<Box<dyn Tool>>) -> Self {
        ToolRegistry {
            tools,
            timeout: Duration::from_secs(10),
            max_output_bytes: 2000,
        }
    }
    /// Tool names.
    pub fn names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.spec().name).collect()
    }
    /// Specs of all tools.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec()).collect()
    }
    /// Calls a tool by name with already-parsed arguments. Unknown tools,
    /// schema violations, tool errors and timeouts come back as error results.
    pub fn call(&mut self, name: &str, args: &Value) -> (ToolResult, ToolCallRecord) {
        let start = Instant::now();
        let names = self.names();
        let timeout = self.timeout;
        let result = match self.tools.iter_mut().find(|t| t.spec().name == name) {
            None => ToolResult::error(format!(
                "unknown tool `{name}`; available tools: {}",
                names.join(", ")
            )),
            Some(tool) => match validate_args(&tool.spec().parameters, args) {
                Err(e) => ToolResult::error(format!("invalid arguments for `{name}`: {e}")),
                Ok(()) => {
                    let r = tool.call(args, &ToolContext { timeout });
                    if start.elapsed() > timeout && !r.is_error {
                        ToolResult::error(format!(
                            "`{name}` exceeded its time limit of {} ms",
                            timeout.as_millis()
                        ))
                    } else {
                        r
                    }
                }
            },
        };
        let mut result = result;
        if result.content.len() > self.max_output_bytes {
            let mut cut = self.max_output_bytes;
            while !result.content.is_char_boundary(cut) {
                cut -= 1;
            }
            result.content.truncate(cut);
            result.content.push_str(" …[truncated]");
        }
        let record = ToolCallRecord {
            name: name.to_string(),
            arguments: canonical_json(args),
            ok: !result.is_error,
            error: result.is_error.then(|| result.content.clone()),
            latency_ms: start.elapsed().as_secs_f64() * 1000.0,
            output_len: result.content.len(),
        };
        (result, record)
    }
    /// Records a call that failed before reaching a tool (e.g. unparsable JSON).
    pub fn record_parse_error(raw_name: &str, error: &str) -> ToolCallRecord {
        ToolCallRecord {
            name: raw_name.to_string(),
            arguments: String::new(),
            ok: false,
            error: Some(error.to_string()),
            latency_ms: 0.0,
            output_len: error.len(),
        }
    }
    /// Ends the episode for every tool.
    pub fn end_episode(&mut self) {
        for t in &mut self.tools {
            t.end_episode();
        }
    }
}

/// `calculator{"expression": str}`: exact rational arithmetic, no code execution.
#[derive(Debug, Clone, Copy, Default)]
pub struct CalculatorTool;

impl Tool for CalculatorTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "calculator".into(),
            description: "Evaluate an arithmetic expression with + - * / and parentheses exactly."
                .into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "e.g. 3*12.50+2*4.25"}},
                "required": ["expression"],
                "additionalProperties": false
            }),
        }
    }
    fn call(&mut self, args: &Value, _ctx: &ToolContext) -> ToolResult {
        let expr = args
            .get("expression")
            .and_then(|e| e.as_str())
            .unwrap_or("");
        match eval_expr(
            expr,
            ExprOptions {
                decimals: true,
                unary_minus: true,
            },
        ) {
            Ok(e) => {
                let v = e.value;
                if v.is_integer() {
                    ToolResult::ok(v.to_string())
                } else {
                    ToolResult::ok(format!("{} (= {v})", v.to_fixed(6)))
                }
            }
            Err(err) => ToolResult::error(format!("calculator: {err}")),
        }
    }
}

/// Output of running a Python program.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecOutput {
    /// Captured standard output.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
    /// Whether the program exited with status 0 within its limits.
    pub success: bool,
    /// Whether it was killed for exceeding the time limit.
    pub timed_out: bool,
}

/// Runs Python programs. The trainer plugs in grpo-rewards' sandbox; envs that
/// need Python take one of these (and disable the Python tool when none is given).
pub trait PythonExecutor: Send + Sync {
    /// Runs `code` with `stdin` under a wall-clock `timeout`.
    fn run(&self, code: &str, stdin: &str, timeout: Duration) -> ExecOutput;
}

/// `python{"code": str}`: runs code through a [`PythonExecutor`].
pub struct PythonTool {
    exec: std::sync::Arc<dyn PythonExecutor>,
}

impl std::fmt::Debug for PythonTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PythonTool")
    }
}

impl PythonTool {
    /// A Python tool over an executor.
    pub fn new(exec: std::sync::Arc<dyn PythonExecutor>) -> Self {
        PythonTool { exec }
    }
}

impl Tool for PythonTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "python".into(),
            description:
                "Run a Python 3 program; its stdout (and stderr) is returned. Use print().".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"code": {"type": "string"}},
                "required": ["code"],
                "additionalProperties": false
            }),
        }
    }
    fn call(&mut self, args: &Value, ctx: &ToolContext) -> ToolResult {
        let code = args.get("code").and_then(|c| c.as_str()).unwrap_or("");
        let out = self.exec.run(code, "", ctx.timeout);
        if out.timed_out {
            return ToolResult::error(format!(
                "python: timed out after {} ms",
                ctx.timeout.as_millis()
            ));
        }
        let mut text = out.stdout.clone();
        if !out.stderr.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&out.stderr);
        }
        if out.success {
            ToolResult::ok(text)
        } else {
            ToolResult::error(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_turns_failures_into_messages() {
        let mut reg = ToolRegistry::new(vec![Box::new(CalculatorTool)]);
        let (r, rec) = reg.call("calculator", &serde_json::json!({"expression": "2*(3+4)"}));
        assert_eq!(r.content, "14");
        assert!(rec.ok);
        let (r, rec) = reg.call("calc", &serde_json::json!({}));
        assert!(r.is_error && r.content.contains("unknown tool `calc`"));
        assert!(!rec.ok);
        let (r, _) = reg.call("calculator", &serde_json::json!({"expression": 5}));
        assert!(
            r.is_error && r.content.contains("arguments.expression"),
            "{r:?}"
        );
        let (r, _) = reg.call("calculator", &serde_json::json!({}));
        assert!(r.content.contains("missing required field"));
        let (r, _) = reg.call(
            "calculator",
            &serde_json::json!({"expression": "1", "x": 1}),
        );
        assert!(r.content.contains("unknown field"));
        let (r, _) = reg.call("calculator", &serde_json::json!({"expression": "1/0"}));
        assert!(r.is_error && r.content.contains("division by zero"));
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        assert_eq!(canonical_json(&v), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }

    #[test]
    fn enum_validation() {
        let s = serde_json::json!({"type":"object","properties":{"d":{"type":"string","enum":["up","down"]}}});
        assert!(validate_args(&s, &serde_json::json!({"d":"up"})).is_ok());
        assert!(validate_args(&s, &serde_json::json!({"d":"left"})).is_err());
    }
}
