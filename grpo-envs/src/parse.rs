//! Action parsing helpers: tagged spans (`<answer>…</answer>`), Hermes tool calls
//! (`<tool_call>{"name":…,"arguments":{…}}</tool_call>`), direction words and
//! answer normalisation. All spans are byte ranges into the policy's turn text.

use std::ops::Range;

/// A tagged span found in a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged<'a> {
    /// The content between the tags.
    pub content: &'a str,
    /// Byte range of the content.
    pub span: Range<usize>,
    /// Byte range including the tags.
    pub outer: Range<usize>,
}

/// All complete `<tag>…</tag>` spans, in order.
pub fn find_tags<'a>(text: &'a str, tag: &str) -> Vec<Tagged<'a>> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(o) = text[from..].find(&open) {
        let start = from + o + open.len();
        match text[start..].find(&close) {
            Some(c) => {
                let end = start + c;
                out.push(Tagged {
                    content: &text[start..end],
                    span: start..end,
                    outer: from + o..end + close.len(),
                });
                from = end + close.len();
            }
            None => break,
        }
    }
    out
}

/// The last complete `<tag>…</tag>` span.
pub fn last_tag<'a>(text: &'a str, tag: &str) -> Option<Tagged<'a>> {
    find_tags(text, tag).pop()
}

/// The first complete `<tag>…</tag>` span.
pub fn first_tag<'a>(text: &'a str, tag: &str) -> Option<Tagged<'a>> {
    find_tags(text, tag).into_iter().next()
}

/// A tool call parsed from a turn (or the reason it could not be parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    /// Byte range of the JSON body.
    pub span: Range<usize>,
    /// Tool name and arguments, or an explanation of what is wrong.
    pub call: Result<(String, serde_json::Value), String>,
}

/// Parses every Hermes-style `<tool_call>…</tool_call>` block. Bad JSON, a
/// missing `name` or non-object `arguments` become `Err` entries (to be reported
/// back to the model), never panics. Arguments given as a JSON string holding an
/// object are accepted.
pub fn hermes_calls(text: &str) -> Vec<ParsedCall> {
    find_tags(text, "tool_call")
        .into_iter()
        .map(|t| ParsedCall {
            span: t.span.clone(),
            call: parse_call_json(t.content.trim()),
        })
        .collect()
}

fn parse_call_json(body: &str) -> Result<(String, serde_json::Value), String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("tool call is not valid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "tool call must be a JSON object with `name` and `arguments`".to_string())?;
    let name = obj
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| "tool call has no string field `name`".to_string())?;
    let args = match obj.get("arguments") {
        None => serde_json::json!({}),
        Some(serde_json::Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| format!("`arguments` is a string but not valid JSON: {e}"))?,
        Some(a) => a.clone(),
    };
    if !args.is_object() {
        return Err("`arguments` must be a JSON object".into());
    }
    Ok((name.to_string(), args))
}

/// Whether a turn contains an unterminated `<tag>` (opened, never closed).
pub fn has_unclosed(text: &str, tag: &str) -> bool {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    text.matches(&open).count() > text.matches(&close).count()
}

/// A grid direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Row − 1.
    Up,
    /// Row + 1.
    Down,
    /// Column − 1.
    Left,
    /// Column + 1.
    Right,
}

impl Dir {
    /// All four directions.
    pub const ALL: [Dir; 4] = [Dir::Up, Dir::Down, Dir::Left, Dir::Right];
    /// Parses `up`/`down`/`left`/`right` (any case, surrounding spaces ignored).
    pub fn parse(s: &str) -> Option<Dir> {
        match s.trim().to_ascii_lowercase().as_str() {
            "up" => Some(Dir::Up),
            "down" => Some(Dir::Down),
            "left" => Some(Dir::Left),
            "right" => Some(Dir::Right),
            _ => None,
        }
    }
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
            Dir::Left => "left",
            Dir::Right => "right",
        }
    }
    /// Capitalised name as used in prompts.
    pub fn title(self) -> &'static str {
        match self {
            Dir::Up => "Up",
            Dir::Down => "Down",
            Dir::Left => "Left",
            Dir::Right => "Right",
        }
    }
    /// (row, column) delta.
    pub fn delta(self) -> (i32, i32) {
        match self {
            Dir::Up => (-1, 0),
            Dir::Down => (1, 0),
            Dir::Left => (0, -1),
            Dir::Right => (0, 1),
        }
    }
}

/// Parses a grid action turn: the last `<answer>…</answer>` (or `<action>…</action>`)
/// holding directions separated by `||`. Returns the directions and the content span,
/// or an explanation of what was wrong.
pub fn parse_directions(
    text: &str,
    max_actions: usize,
) -> Result<(Vec<Dir>, Range<usize>), String> {
    let tagged = last_tag(text, "answer").or_else(|| last_tag(text, "action"));
    let Some(t) = tagged else {
        return Err(
            "no <answer>…</answer> found; reply like <answer>Up</answer> (Up, Down, Left or Right)"
                .into(),
        );
    };
    let mut dirs = Vec::new();
    for part in t.content.split("||") {
        match Dir::parse(part) {
            Some(d) => dirs.push(d),
            None => {
                return Err(format!(
                    "`{}` is not a direction; use Up, Down, Left or Right",
                    part.trim()
                ));
            }
        }
    }
    if dirs.len() > max_actions {
        return Err(format!(
            "{} actions given but at most {max_actions} per turn are allowed",
            dirs.len()
        ));
    }
    Ok((dirs, t.span))
}

/// Search-R1 answer normalisation: lower-case, drop punctuation and the articles
/// `a`/`an`/`the`, squeeze whitespace.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punct: String = lower
        .chars()
        .map(|c| if c.is_ascii_punctuation() { ' ' } else { c })
        .collect();
    no_punct
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Note appended to corrective observations when the turn hit the token limit.
pub fn truncation_note(truncated: bool) -> &'static str {
    if truncated {
        " (your previous turn was cut at the per-turn token limit)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_spans() {
        let t = "<think>x</think><answer>4</answer> then <answer>5</answer>";
        let a = last_tag(t, "answer").unwrap();
        assert_eq!(a.content, "5");
        assert_eq!(&t[a.span.clone()], "5");
        assert_eq!(find_tags(t, "answer").len(), 2);
        assert!(last_tag("<answer>open", "answer").is_none());
        assert!(has_unclosed("<answer>open", "answer"));
    }

    #[test]
    fn hermes_good_and_bad() {
        let t = r#"<tool_call>{"name":"calc","arguments":{"expression":"1+2"}}</tool_call>
<tool_call>{"name": oops}</tool_call><tool_call>{"arguments":{}}</tool_call>
<tool_call>{"name":"x","arguments":"{\"a\":1}"}</tool_call>"#;
        let c = hermes_calls(t);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].call.as_ref().unwrap().0, "calc");
        assert!(c[1].call.as_ref().unwrap_err().contains("not valid JSON"));
        assert!(c[2].call.as_ref().unwrap_err().contains("name"));
        assert_eq!(c[3].call.as_ref().unwrap().1["a"], 1);
    }

    #[test]
    fn directions() {
        let (d, _) = parse_directions("<answer>Up || left</answer>", 2).unwrap();
        assert_eq!(d, vec![Dir::Up, Dir::Left]);
        assert!(parse_directions("<answer>jump</answer>", 2).is_err());
        assert!(parse_directions("<answer>Up||Up||Up</answer>", 2).is_err());
        assert!(parse_directions("go up", 2).is_err());
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_answer("  The Orin  Castell!"), "orin castell");
    }
}
