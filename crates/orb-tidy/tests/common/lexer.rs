//! Just enough of a Rust lexer to find paths: comments (line, doc and nested block comments),
//! string, raw string, byte and char literals and lifetimes are recognised so that nothing
//! inside them is mistaken for code; everything else becomes identifiers and punctuation.

/// One token and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword (raw identifiers without `r#`), or a number.
    Ident(String),
    /// The contents of a string literal, escapes left as written.
    Str(String),
    /// `::`
    PathSep,
    /// Any other punctuation character.
    Punct(char),
}

impl Token {
    pub fn is_ident(&self, word: &str) -> bool {
        matches!(&self.kind, Kind::Ident(w) if w == word)
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct(c)
    }

    pub fn ident(&self) -> Option<&str> {
        match &self.kind {
            Kind::Ident(w) => Some(w),
            _ => None,
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while let Some(c) = at(i) {
        let start_line = line;
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == Some('/') => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                let mut depth = 0usize;
                while let Some(c) = at(i) {
                    if c == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if c == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(c == '\n');
                        i += 1;
                    }
                }
            }
            '"' => {
                let (text, next) = quoted(&chars, i + 1, &mut line);
                tokens.push(Token {
                    kind: Kind::Str(text),
                    line: start_line,
                });
                i = next;
            }
            '\'' => {
                if at(i + 1) == Some('\\') {
                    // An escaped char literal: '\n', '\'', '\u{1F600}'.
                    i += 3;
                    while at(i).is_some_and(|c| c != '\'') {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == Some('\'') {
                    line += usize::from(at(i + 1) == Some('\n'));
                    i += 3; // 'x'
                } else {
                    i += 1; // a lifetime or label: its name follows as an identifier
                }
            }
            c if is_ident_char(c) => {
                let begin = i;
                while at(i).is_some_and(is_ident_char) {
                    i += 1;
                }
                let word: String = chars[begin..i].iter().collect();
                let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
                if raw_prefix && matches!(at(i), Some('"' | '#')) && raw_string_starts(&chars, i) {
                    let (text, next) = raw_string(&chars, i, &mut line);
                    tokens.push(Token {
                        kind: Kind::Str(text),
                        line: start_line,
                    });
                    i = next;
                } else if word == "r" && at(i) == Some('#') && at(i + 1).is_some_and(is_ident_char)
                {
                    // A raw identifier: r#type
                    let begin = i + 1;
                    i += 1;
                    while at(i).is_some_and(is_ident_char) {
                        i += 1;
                    }
                    let word = chars[begin..i].iter().collect();
                    tokens.push(Token {
                        kind: Kind::Ident(word),
                        line: start_line,
                    });
                } else if matches!(word.as_str(), "b" | "c") && at(i) == Some('"') {
                    let (text, next) = quoted(&chars, i + 1, &mut line);
                    tokens.push(Token {
                        kind: Kind::Str(text),
                        line: start_line,
                    });
                    i = next;
                } else if word == "b" && at(i) == Some('\'') {
                    // b'x' or b'\n': let the char-literal arm above skip it.
                    continue;
                } else {
                    tokens.push(Token {
                        kind: Kind::Ident(word),
                        line: start_line,
                    });
                }
            }
            ':' if at(i + 1) == Some(':') => {
                tokens.push(Token {
                    kind: Kind::PathSep,
                    line: start_line,
                });
                i += 2;
            }
            c => {
                tokens.push(Token {
                    kind: Kind::Punct(c),
                    line: start_line,
                });
                i += 1;
            }
        }
    }
    tokens
}

/// A `"…"` literal whose opening quote is just before `i`: its contents and the index after
/// the closing quote.
fn quoted(chars: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let mut text = String::new();
    while let Some(&c) = chars.get(i) {
        match c {
            '"' => return (text, i + 1),
            '\\' => {
                text.push(c);
                if let Some(&next) = chars.get(i + 1) {
                    *line += usize::from(next == '\n');
                    text.push(next);
                }
                i += 2;
            }
            c => {
                *line += usize::from(c == '\n');
                text.push(c);
                i += 1;
            }
        }
    }
    (text, i)
}

/// Whether `chars[i..]` is `#*"`, the rest of a raw string's opening.
fn raw_string_starts(chars: &[char], mut i: usize) -> bool {
    while chars.get(i) == Some(&'#') {
        i += 1;
    }
    chars.get(i) == Some(&'"')
}

/// A raw string whose `#*"` opening starts at `i`.
fn raw_string(chars: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    let mut text = String::new();
    while let Some(&c) = chars.get(i) {
        if c == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return (text, i + 1 + hashes);
        }
        *line += usize::from(c == '\n');
        text.push(c);
        i += 1;
    }
    (text, i)
}
