//! What `vitra methods` prints for a method: its name and, as JS Vitra 0.1.3 shows it, its
//! first parameter: an identifier (`params`) or the keys of an object pattern
//! (`{path, value}`); nothing for other forms (defaults, array patterns, no parameter).
//!
//! Read from the function's source text (`Function.prototype.toString`), scanned only as far
//! as its parameter list.

use std::fmt;

/// One exported method and its first parameter as JS Vitra's `vitra methods` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSignature {
    /// The export's name.
    pub name: String,
    /// `params`, `{a, b}`, or `None`.
    pub params: Option<String>,
}

impl fmt::Display for MethodSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.params {
            Some(p) => write!(f, "{} {p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The characters of `s` outside string literals, each with its byte offset and the bracket
/// depth after it (`(`, `[` and `{` open; `)`, `]` and `}` close).
fn code_chars(s: &str) -> impl Iterator<Item = (usize, char, i32)> + '_ {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    s.char_indices().filter_map(move |(i, c)| {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            return None;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                return None;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        Some((i, c, depth))
    })
}

/// Splits `s` at top-level commas (outside brackets and string literals).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c, depth) in code_chars(s) {
        if c == ',' && depth == 0 {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The text between the first `(` and its matching `)`.
fn parameter_list(source: &str) -> Option<&str> {
    let open = source.find('(')?;
    let rest = &source[open..];
    code_chars(rest)
        .find(|&(_, c, depth)| c == ')' && depth == 0)
        .and_then(|(i, _, _)| source.get(open + 1..open + i))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// The first parameter of a function, given its source text.
pub(crate) fn first_parameter(source: &str) -> Option<String> {
    let head = source.trim_start();
    // `x => ...` has no parentheses.
    if let Some(arrow) = head.find("=>") {
        let before = head[..arrow].trim();
        let before = before.strip_prefix("async").map_or(before, str::trim);
        if is_identifier(before) {
            return Some(before.to_owned());
        }
    }
    let list = parameter_list(head)?;
    let first = split_top_level(list).into_iter().next()?.trim();
    if let Some(inner) = first.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        let keys: Vec<String> = split_top_level(inner)
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let end = p.find([':', '=']).unwrap_or(p.len());
                p[..end].trim().to_owned()
            })
            .collect();
        return Some(format!("{{{}}}", keys.join(", ")));
    }
    is_identifier(first).then(|| first.to_owned())
}

#[cfg(test)]
mod tests {
    use super::first_parameter;

    #[test]
    fn first_parameters_as_js_vitra_lists_them() {
        let cases = [
            (
                "function put ({path, value}, emit) { emit(1) }",
                Some("{path, value}"),
            ),
            ("async function get () { return 1 }", None),
            ("function increment (opts = {}, emit) {}", None),
            (
                "function store ({ name, value: v = 'x,y' }) {}",
                Some("{name, value}"),
            ),
            ("function f (params, emit) {}", Some("params")),
            ("(p) => p", Some("p")),
            ("async x => x", Some("x")),
            ("reset () { return 'reset' }", None),
            ("function g ([a, b]) {}", None),
            ("function h ({ a = ')', b = \"\\\"(\" }) {}", Some("{a, b}")),
        ];
        for (src, want) in cases {
            assert_eq!(first_parameter(src).as_deref(), want, "{src}");
        }
    }
}
