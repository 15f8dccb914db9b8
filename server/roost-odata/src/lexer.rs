//! Tokens of §3.1. The lexer works on the already URL-decoded expression and records byte offsets.

use crate::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    Comma,
    Minus,
    Slash,
    /// A `'…'` literal with `''` unescaped.
    Str(String),
    /// `datetime'…'`, `datetimeoffset'…'` or `guid'…'`: (constructor, inner text).
    Typed(String, String),
    /// A number literal with its value (leading `-` folded in).
    Num(f64),
    /// A name: identifier, keyword or constant; keywords are recognised by the parser.
    Ident(String),
    End,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) at: usize,
}

fn err(message: impl Into<String>, index: usize) -> ParseError {
    ParseError { message: message.into(), index }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@'
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map(|(p, _)| *p).unwrap_or(src.len());
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push(Token { tok: Tok::LParen, at: pos });
                i += 1;
            }
            ')' => {
                out.push(Token { tok: Tok::RParen, at: pos });
                i += 1;
            }
            ',' => {
                out.push(Token { tok: Tok::Comma, at: pos });
                i += 1;
            }
            '/' => {
                out.push(Token { tok: Tok::Slash, at: pos });
                i += 1;
            }
            '-' => {
                // A minus directly before a digit is folded into the number literal.
                if chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()) {
                    let (value, next) = lex_number(&chars, i + 1, src)?;
                    out.push(Token { tok: Tok::Num(-value), at: pos });
                    i = next;
                } else {
                    out.push(Token { tok: Tok::Minus, at: pos });
                    i += 1;
                }
            }
            '\'' => {
                let (s, next) = lex_string(&chars, i, src)?;
                out.push(Token { tok: Tok::Str(s), at: pos });
                i = next;
            }
            c if c.is_ascii_digit() => {
                let (value, next) = lex_number(&chars, i, src)?;
                out.push(Token { tok: Tok::Num(value), at: pos });
                i = next;
            }
            c if is_ident_start(c) => {
                let mut j = i + 1;
                while j < chars.len() && is_ident_continue(chars[j].1) {
                    j += 1;
                }
                let name = &src[pos..at(j)];
                let ctor = matches!(name, "datetime" | "datetimeoffset" | "guid");
                if ctor && chars.get(j).is_some_and(|(_, q)| *q == '\'') {
                    let (s, next) = lex_string(&chars, j, src)?;
                    out.push(Token { tok: Tok::Typed(name.to_string(), s), at: pos });
                    i = next;
                } else {
                    out.push(Token { tok: Tok::Ident(name.to_string()), at: pos });
                    i = j;
                }
            }
            other => return Err(err(format!("Syntax error '{other}'"), pos)),
        }
    }
    out.push(Token { tok: Tok::End, at: src.len() });
    Ok(out)
}

/// Lexes `'…'` starting at the opening quote; `''` is an escaped quote.
fn lex_string(chars: &[(usize, char)], start: usize, src: &str) -> Result<(String, usize), ParseError> {
    let mut s = String::new();
    let mut j = start + 1;
    loop {
        match chars.get(j) {
            None => return Err(err("Unterminated string literal", src.len())),
            Some((_, '\'')) => {
                if chars.get(j + 1).is_some_and(|(_, c)| *c == '\'') {
                    s.push('\'');
                    j += 2;
                } else {
                    return Ok((s, j + 1));
                }
            }
            Some((_, c)) => {
                s.push(*c);
                j += 1;
            }
        }
    }
}

/// Lexes an unsigned number starting at a digit: integer, real, exponent, and the `L`/`F`/`M`/`D` suffixes.
fn lex_number(chars: &[(usize, char)], start: usize, src: &str) -> Result<(f64, usize), ParseError> {
    let at = |i: usize| chars.get(i).map(|(p, _)| *p).unwrap_or(src.len());
    let digit_at = |i: usize| chars.get(i).is_some_and(|(_, c)| c.is_ascii_digit());
    let mut j = start;
    while digit_at(j) {
        j += 1;
    }
    let mut is_real = false;
    if chars.get(j).is_some_and(|(_, c)| *c == '.') {
        is_real = true;
        j += 1;
        if !digit_at(j) {
            return Err(err("Digit expected", at(j)));
        }
        while digit_at(j) {
            j += 1;
        }
    }
    if chars.get(j).is_some_and(|(_, c)| *c == 'e' || *c == 'E') {
        is_real = true;
        j += 1;
        if chars.get(j).is_some_and(|(_, c)| *c == '+' || *c == '-') {
            j += 1;
        }
        if !digit_at(j) {
            return Err(err("Digit expected", at(j)));
        }
        while digit_at(j) {
            j += 1;
        }
    }
    let text = &src[at(start)..at(j)];
    let value: f64 = text.parse().map_err(|_| err(format!("Invalid {} literal '{text}'", if is_real { "real" } else { "integer" }), at(start)))?;
    if !value.is_finite() {
        return Err(err(format!("Invalid numeric literal '{text}'"), at(start)));
    }
    // Suffixes: F/f/M/m/D/d (real) and L/l (long), only when not followed by more name characters.
    if let Some((_, c)) = chars.get(j) {
        let standalone = !chars.get(j + 1).is_some_and(|(_, n)| is_ident_continue(*n));
        if standalone && matches!(c, 'F' | 'f' | 'M' | 'm' | 'D' | 'd' | 'L' | 'l') {
            j += 1;
        }
    }
    Ok((value, j))
}
