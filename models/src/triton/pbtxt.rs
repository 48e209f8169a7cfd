//! Where each field of a protobuf text-format file sits: a walk over its tokens (strings,
//! comments, nesting) that records every field's path (`input[1].dims`), line and byte span,
//! so that errors found after parsing name the line, and a field the schema lacks can be
//! blanked out (replaced by spaces, lines kept) and named in the log. Values are not
//! interpreted here: prost-reflect parses them against the schema.

/// One field occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldAt {
    /// `name`, `input[1].dims`, `dynamic_batching.default_queue_policy.max_queue_size`.
    pub path: String,
    /// 1-based line of the field's name.
    pub line: usize,
    /// Byte span from the field's name to the end of its value (a trailing `,`/`;` included).
    pub span: (usize, usize),
}

/// Every field of `text`, in order; the occurrences of a field named in `repeated` are
/// numbered (`input[0]`, `input[1]`, however written). `None` when the structure does not
/// parse (unbalanced braces, an unterminated string): prost-reflect's own error then says where.
pub fn fields(text: &str, repeated: &[&str]) -> Option<Vec<FieldAt>> {
    walk(text, repeated)
}

/// Every field of `text` (see [`fields`]).
fn walk(text: &str, repeated: &[&str]) -> Option<Vec<FieldAt>> {
    let tokens = lex(text)?;
    let mut walk = Walk {
        text,
        tokens: &tokens,
        at: 0,
        found: Vec::new(),
        repeated,
    };
    walk.message("", None, 0)?;
    (walk.at == tokens.len()).then_some(walk.found)
}

/// `text` with a `:` after each field name that opens a list directly (`input [ {…} ]`, as
/// Triton's documentation writes it; prost-reflect wants `input: [ {…} ]`). Lines keep their
/// numbers. `None` when the structure does not parse.
pub fn colon_before_lists(text: &str) -> Option<String> {
    let found = walk(text, &[])?;
    let mut out = String::with_capacity(text.len() + 16);
    let mut from = 0;
    for field in &found {
        let name_end = field.span.0 + field.path.rsplit('.').next().map_or(0, str::len);
        let rest = text[name_end..].trim_start();
        if field.span.1 > field.span.0 && rest.starts_with('[') && !field.path.ends_with(']') {
            out.push_str(&text[from..name_end]);
            out.push(':');
            from = name_end;
        }
    }
    out.push_str(&text[from..]);
    Some(out)
}

/// The 1-based line of byte `offset`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `text` with `span` replaced by spaces (newlines kept, so later lines keep their numbers).
pub fn blank(text: &str, span: (usize, usize)) -> String {
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..span.0]);
    out.extend(
        text[span.0..span.1]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' }),
    );
    out.push_str(&text[span.1..]);
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Word,
    Text,
    Punct(u8),
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn lex(text: &str) -> Option<Vec<Token>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' | b'\'' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i)? {
                        b'\\' => i += 2,
                        b'\n' => return None,
                        &c if c == b => break,
                        _ => i += 1,
                    }
                }
                i += 1;
                tokens.push(Token {
                    kind: Kind::Text,
                    start,
                    end: i,
                });
            }
            b'{' | b'}' | b'[' | b']' | b'<' | b'>' | b':' | b',' | b';' => {
                tokens.push(Token {
                    kind: Kind::Punct(b),
                    start: i,
                    end: i + 1,
                });
                i += 1;
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'#'
                            | b'"'
                            | b'\''
                            | b'{'
                            | b'}'
                            | b'['
                            | b']'
                            | b'<'
                            | b'>'
                            | b':'
                            | b','
                            | b';'
                    )
                {
                    i += 1;
                }
                tokens.push(Token {
                    kind: Kind::Word,
                    start,
                    end: i,
                });
            }
        }
    }
    Some(tokens)
}

struct Walk<'a> {
    text: &'a str,
    tokens: &'a [Token],
    at: usize,
    found: Vec<FieldAt>,
    repeated: &'a [&'a str],
}

/// Deepest nesting walked (a hostile file of a million `{` ends here, not in the stack).
const MAX_DEPTH: usize = 64;

impl Walk<'_> {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.at).copied()
    }

    fn punct(&self, c: u8) -> bool {
        self.peek().is_some_and(|t| t.kind == Kind::Punct(c))
    }

    /// Fields until `close` (or the end of input at the top level).
    fn message(&mut self, prefix: &str, close: Option<u8>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut seen: Vec<(String, usize)> = Vec::new();
        loop {
            let Some(token) = self.peek() else {
                return close.is_none().then_some(());
            };
            if close.is_some_and(|c| token.kind == Kind::Punct(c)) {
                self.at += 1;
                return Some(());
            }
            if token.kind != Kind::Word {
                // `[extension.name]` and Any expansions are not in our schema either.
                return None;
            }
            let name = self.text[token.start..token.end].to_string();
            self.at += 1;
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let slot = self.found.len();
            self.found.push(FieldAt {
                path: path.clone(),
                line: line_of(self.text, token.start),
                span: (token.start, token.start),
            });
            let repeated = self.repeated.contains(&name.as_str());
            let mut next = || {
                let count = match seen.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, count)) => count,
                    None => {
                        seen.push((name.clone(), 0));
                        &mut seen.last_mut().expect("pushed").1
                    }
                };
                *count += 1;
                *count - 1
            };
            if self.punct(b':') {
                self.at += 1;
            }
            if self.punct(b'[') {
                self.at += 1;
                while !self.punct(b']') {
                    let item = if repeated {
                        format!("{path}[{}]", next())
                    } else {
                        path.clone()
                    };
                    self.value(&item, depth)?;
                    if self.punct(b',') {
                        self.at += 1;
                    }
                }
                self.at += 1;
            } else {
                let item = if repeated {
                    format!("{path}[{}]", next())
                } else {
                    path.clone()
                };
                self.value(&item, depth)?;
            }
            if self.punct(b',') || self.punct(b';') {
                self.at += 1;
            }
            self.found[slot].span.1 = self.tokens[self.at - 1].end;
        }
    }

    /// One value: a message (`{…}` or `<…>`), or a scalar (strings may be several in a row).
    fn value(&mut self, path: &str, depth: usize) -> Option<()> {
        let token = self.peek()?;
        let close = match token.kind {
            Kind::Punct(b'{') => b'}',
            Kind::Punct(b'<') => b'>',
            _ => 0,
        };
        if close != 0 {
            self.at += 1;
            // The occurrence itself (`input[1]`), where its errors point.
            if path.ends_with(']') {
                self.found.push(FieldAt {
                    path: path.to_string(),
                    line: line_of(self.text, token.start),
                    span: (token.start, token.start),
                });
            }
            return self.message(path, Some(close), depth + 1);
        }
        match token.kind {
            Kind::Text => {
                while self.peek().is_some_and(|t| t.kind == Kind::Text) {
                    self.at += 1;
                }
                Some(())
            }
            Kind::Word => {
                self.at += 1;
                Some(())
            }
            Kind::Punct(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"name: "m"  # a comment { not a brace
max_batch_size: 8
input [
  {
    name: "x"
    dims: [ 3, 224, 224 ]
  },
  { name: "y" dims: [-1] }
]
output { name: "z" dims: 10 }
output < name: 'w;' >
dynamic_batching { default_queue_policy { max_queue_size: 4 } }
"#;

    const REPEATED: &[&str] = &["input", "output"];

    fn lines(found: &[FieldAt]) -> Vec<(&str, usize)> {
        found.iter().map(|f| (f.path.as_str(), f.line)).collect()
    }

    #[test]
    fn paths_and_lines_of_every_field() {
        let found = fields(CONFIG, REPEATED).expect("walks");
        assert_eq!(
            lines(&found),
            vec![
                ("name", 1),
                ("max_batch_size", 2),
                ("input", 3),
                ("input[0]", 4),
                ("input[0].name", 5),
                ("input[0].dims", 6),
                ("input[1]", 8),
                ("input[1].name", 8),
                ("input[1].dims", 8),
                ("output", 10),
                ("output[0]", 10),
                ("output[0].name", 10),
                ("output[0].dims", 10),
                ("output", 11),
                ("output[1]", 11),
                ("output[1].name", 11),
                ("dynamic_batching", 12),
                ("dynamic_batching.default_queue_policy", 12),
                ("dynamic_batching.default_queue_policy.max_queue_size", 12),
            ]
        );
    }

    #[test]
    fn blanking_keeps_lines_and_the_rest() {
        let found = fields(CONFIG, REPEATED).expect("walks");
        let input = found.iter().find(|f| f.path == "input").expect("input");
        let blanked = blank(CONFIG, input.span);
        assert_eq!(blanked.lines().count(), CONFIG.lines().count());
        let again = fields(&blanked, REPEATED).expect("walks");
        assert!(again.iter().all(|f| !f.path.starts_with("input")));
        assert_eq!(again[2].path, "output");
        assert_eq!(again[2].line, 10);
        assert_eq!(again[3].path, "output[0]");
    }

    #[test]
    fn broken_structure_is_none() {
        for text in [
            "input { name: \"x\"",
            "name: \"unterminated\n",
            "}",
            "a: [1, 2",
            &"a { ".repeat(100_000),
        ] {
            assert_eq!(fields(text, REPEATED), None, "{text:.40}");
        }
    }
}
