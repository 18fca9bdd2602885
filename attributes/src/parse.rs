//! The WHERE-clause parser (see `Filter::parse`).
//!
//! A hand-written tokenizer and recursive-descent parser for
//!
//! ```text
//! expr    := or
//! or      := and (OR and)*
//! and     := unary (AND unary)*
//! unary   := NOT unary | primary
//! primary := '(' expr ')' | ident cmp literal | ident [NOT] IN '(' literal (',' literal)* ')'
//!          | ident IS [NOT] NULL
//! cmp     := = | != | <> | < | <= | > | >=
//! literal := 'string' ('' for a quote) | integer | float | TRUE | FALSE
//! ident   := [A-Za-z_][A-Za-z0-9_.]* | "any text" ("" for a double quote)
//! ```
//!
//! Keywords (`AND OR NOT IN IS NULL TRUE FALSE`) are case-insensitive and name an attribute
//! only double-quoted. Every error is [`AttributeError::Syntax`] at the byte offset (always a
//! char boundary) of the offending token. Nesting (parentheses and `NOT`s) is bounded by
//! [`MAX_DEPTH`], so no input can exhaust the stack.

use crate::filter::{CmpOp, Expr};
use crate::value::Value;
use crate::{AttributeError, Result};

/// Deepest nesting of parentheses and `NOT`s a filter may have.
const MAX_DEPTH: usize = 256;

/// Longest token text quoted in an error message, in chars.
const MAX_QUOTED: usize = 32;

pub(crate) fn parse(text: &str) -> Result<Expr> {
    let tokens = tokenize(text)?;
    if tokens.len() == 1 {
        return Err(syntax(0, "empty filter"));
    }
    let mut parser = Parser { text, tokens, pos: 0, depth: 0 };
    let expr = parser.expr()?;
    let token = parser.peek();
    match token.kind {
        Kind::End => Ok(expr),
        Kind::RParen => Err(syntax(token.start, "unexpected ')'")),
        _ => Err(syntax(
            token.start,
            format!("expected AND, OR or end of input but found {}", parser.describe(token)),
        )),
    }
}

fn syntax(at: usize, message: impl Into<String>) -> AttributeError {
    AttributeError::Syntax { at, message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
    In,
    Is,
    Null,
    True,
    False,
}

impl Keyword {
    fn of(word: &str) -> Option<Self> {
        const ALL: [(&str, Keyword); 8] = [
            ("AND", Keyword::And),
            ("OR", Keyword::Or),
            ("NOT", Keyword::Not),
            ("IN", Keyword::In),
            ("IS", Keyword::Is),
            ("NULL", Keyword::Null),
            ("TRUE", Keyword::True),
            ("FALSE", Keyword::False),
        ];
        ALL.iter().find(|(name, _)| name.eq_ignore_ascii_case(word)).map(|(_, k)| *k)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    LParen,
    RParen,
    Comma,
    Cmp(CmpOp),
    Keyword(Keyword),
    /// An attribute name, bare or double-quoted (unquoted here).
    Ident(String),
    /// A string or number literal.
    Literal(Value),
    End,
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: Kind,
    /// Byte offsets of the token's text.
    start: usize,
    end: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// Splits `text` into tokens, ending with [`Kind::End`] at `text.len()`.
fn tokenize(text: &str) -> Result<Vec<Token>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    loop {
        // Skip whitespace (any Unicode whitespace, a char at a time).
        while let Some(c) = text[pos..].chars().next().filter(|c| c.is_whitespace()) {
            pos += c.len_utf8();
        }
        let start = pos;
        let Some(&b) = bytes.get(pos) else {
            tokens.push(Token { kind: Kind::End, start, end: start });
            return Ok(tokens);
        };
        let kind = match b {
            b'(' => {
                pos += 1;
                Kind::LParen
            }
            b')' => {
                pos += 1;
                Kind::RParen
            }
            b',' => {
                pos += 1;
                Kind::Comma
            }
            b'=' => {
                pos += 1;
                Kind::Cmp(CmpOp::Eq)
            }
            b'!' => {
                if bytes.get(pos + 1) != Some(&b'=') {
                    return Err(syntax(start, "expected '=' after '!' (write != or <>)"));
                }
                pos += 2;
                Kind::Cmp(CmpOp::Ne)
            }
            b'<' => match bytes.get(pos + 1) {
                Some(b'=') => {
                    pos += 2;
                    Kind::Cmp(CmpOp::Le)
                }
                Some(b'>') => {
                    pos += 2;
                    Kind::Cmp(CmpOp::Ne)
                }
                _ => {
                    pos += 1;
                    Kind::Cmp(CmpOp::Lt)
                }
            },
            b'>' => {
                if bytes.get(pos + 1) == Some(&b'=') {
                    pos += 2;
                    Kind::Cmp(CmpOp::Ge)
                } else {
                    pos += 1;
                    Kind::Cmp(CmpOp::Gt)
                }
            }
            b'\'' => {
                let (word, end) = quoted(text, pos, b'\'')
                    .ok_or_else(|| syntax(start, "unterminated string starting here"))?;
                pos = end;
                Kind::Literal(Value::Keyword(word))
            }
            b'"' => {
                let (name, end) = quoted(text, pos, b'"')
                    .ok_or_else(|| syntax(start, "unterminated quoted name starting here"))?;
                if name.is_empty() {
                    return Err(syntax(start, "empty quoted name"));
                }
                pos = end;
                Kind::Ident(name)
            }
            b'-' | b'0'..=b'9' => {
                let (value, end) = number(text, pos)?;
                pos = end;
                Kind::Literal(value)
            }
            b if is_ident_start(b) => {
                while bytes.get(pos).copied().is_some_and(is_ident_continue) {
                    pos += 1;
                }
                let word = &text[start..pos];
                match Keyword::of(word) {
                    Some(keyword) => Kind::Keyword(keyword),
                    None => Kind::Ident(word.to_owned()),
                }
            }
            _ => {
                let c = text[pos..].chars().next().unwrap_or('\u{fffd}');
                return Err(syntax(start, format!("unexpected character {c:?}")));
            }
        };
        tokens.push(Token { kind, start, end: pos });
    }
}

/// The text of the `quote`-delimited token at `start` (a doubled quote stands for one) and the
/// offset past it, or `None` if it is unterminated.
fn quoted(text: &str, start: usize, quote: u8) -> Option<(String, usize)> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut pos = start + 1;
    loop {
        // Quotes are ASCII, so every offset found here is a char boundary.
        let next = pos + bytes[pos..].iter().position(|&b| b == quote)?;
        out.push_str(&text[pos..next]);
        if bytes.get(next + 1) == Some(&quote) {
            out.push(char::from(quote));
            pos = next + 2;
        } else {
            return Some((out, next + 1));
        }
    }
}

/// The number literal at `start` (`-`? digits, then `.` digits* and/or an exponent for a
/// float) and the offset past it.
fn number(text: &str, start: usize) -> Result<(Value, usize)> {
    let bytes = text.as_bytes();
    let digits = |mut pos: usize| {
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        pos
    };
    let mut pos = start;
    if bytes[pos] == b'-' {
        pos += 1;
    }
    let int_end = digits(pos);
    if int_end == pos {
        return Err(syntax(start, "expected digits after '-'"));
    }
    pos = int_end;
    let mut float = false;
    if bytes.get(pos) == Some(&b'.') {
        float = true;
        pos = digits(pos + 1);
    }
    if matches!(bytes.get(pos), Some(b'e' | b'E')) {
        let mut exp = pos + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let exp_end = digits(exp);
        if exp_end == exp {
            return Err(syntax(start, "invalid number: expected digits in the exponent"));
        }
        float = true;
        pos = exp_end;
    }
    if bytes.get(pos).is_some_and(|&b| is_ident_continue(b)) {
        return Err(syntax(start, "invalid number"));
    }
    let literal = &text[start..pos];
    let value = if float {
        match literal.parse::<f64>() {
            Ok(v) if v.is_finite() => Value::F64(v),
            _ => return Err(syntax(start, "float out of range")),
        }
    } else if let Ok(v) = literal.parse::<i64>() {
        Value::I64(v)
    } else if let Ok(v) = literal.parse::<u64>() {
        Value::U64(v)
    } else {
        return Err(syntax(start, "integer out of range"));
    };
    Ok((value, pos))
}

struct Parser<'a> {
    text: &'a str,
    /// Ends with [`Kind::End`]; `pos` never passes it.
    tokens: Vec<Token>,
    pos: usize,
    /// Open parentheses and `NOT`s around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    /// The current token, stepping past it (never past the end).
    fn next(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != Kind::End {
            self.pos += 1;
        }
        token
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        if self.peek().kind == Kind::Keyword(keyword) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A token for an error message: its text quoted, or "end of input".
    fn describe(&self, token: &Token) -> String {
        if token.kind == Kind::End {
            return "end of input".to_owned();
        }
        self.quote(token.start, token.end)
    }

    /// The text at `start..end`, single-quoted and shortened for an error message.
    fn quote(&self, start: usize, end: usize) -> String {
        let mut chars = self.text[start..end].chars();
        let short: String = chars.by_ref().take(MAX_QUOTED).collect();
        if chars.next().is_some() { format!("'{short}...'") } else { format!("'{short}'") }
    }

    fn enter(&mut self, at: usize) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(syntax(at, format!("nesting deeper than {MAX_DEPTH}")));
        }
        self.depth += 1;
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr> {
        let mut parts = vec![self.and()?];
        while self.eat_keyword(Keyword::Or) {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Expr::Or(parts) })
    }

    fn and(&mut self) -> Result<Expr> {
        let mut parts = vec![self.unary()?];
        while self.eat_keyword(Keyword::And) {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Expr::And(parts) })
    }

    fn unary(&mut self) -> Result<Expr> {
        // A run of NOTs is counted, not recursed into.
        let mut nots = 0;
        while self.peek().kind == Kind::Keyword(Keyword::Not) {
            let at = self.peek().start;
            self.enter(at)?;
            self.pos += 1;
            nots += 1;
        }
        let mut expr = self.primary();
        self.depth -= nots;
        for _ in 0..nots {
            expr = expr.map(|e| Expr::Not(Box::new(e)));
        }
        expr
    }

    fn primary(&mut self) -> Result<Expr> {
        let token = self.next();
        match token.kind {
            Kind::LParen => {
                self.enter(token.start)?;
                let expr = self.expr()?;
                self.depth -= 1;
                let close = self.next();
                if close.kind != Kind::RParen {
                    return Err(syntax(
                        close.start,
                        format!("expected AND, OR or ')' but found {}", self.describe(&close)),
                    ));
                }
                Ok(expr)
            }
            Kind::Ident(column) => self.test(column, token.start, token.end),
            Kind::RParen => Err(syntax(token.start, "unexpected ')'")),
            Kind::Keyword(_) => Err(syntax(
                token.start,
                format!(
                    "expected an attribute name but found the keyword {} (double-quote a name \
                     that is a keyword: \"{}\")",
                    self.describe(&token),
                    &self.text[token.start..token.end]
                ),
            )),
            _ => Err(syntax(
                token.start,
                format!(
                    "expected an attribute name, NOT or '(' but found {}",
                    self.describe(&token)
                ),
            )),
        }
    }

    /// What follows attribute `column` (named at bytes `at..end`).
    fn test(&mut self, column: String, at: usize, end: usize) -> Result<Expr> {
        let token = self.next();
        let at_some = Some(at);
        match token.kind {
            Kind::Cmp(op) => {
                let after = format!("after '{}'", &self.text[token.start..token.end]);
                let value = self.literal(&after)?;
                Ok(Expr::Compare { column, op, value, at: at_some })
            }
            Kind::Keyword(Keyword::In) => {
                Ok(Expr::In { column, values: self.list()?, at: at_some })
            }
            Kind::Keyword(Keyword::Not) => {
                let token = self.next();
                if token.kind != Kind::Keyword(Keyword::In) {
                    return Err(syntax(
                        token.start,
                        format!("expected IN after NOT but found {}", self.describe(&token)),
                    ));
                }
                let values = self.list()?;
                Ok(Expr::Not(Box::new(Expr::In { column, values, at: at_some })))
            }
            Kind::Keyword(Keyword::Is) => {
                let not = self.eat_keyword(Keyword::Not);
                let token = self.next();
                if token.kind != Kind::Keyword(Keyword::Null) {
                    let expected = if not { "NULL" } else { "NULL or NOT NULL" };
                    return Err(syntax(
                        token.start,
                        format!("expected {expected} after IS but found {}", self.describe(&token)),
                    ));
                }
                let exists = Expr::Exists { column, at: at_some };
                Ok(if not { exists } else { Expr::Not(Box::new(exists)) })
            }
            _ => Err(syntax(
                token.start,
                format!(
                    "expected a comparison (= != <> < <= > >=), IN or IS after {} but found {}",
                    self.quote(at, end),
                    self.describe(&token)
                ),
            )),
        }
    }

    /// `'(' literal (',' literal)* ')'`, after IN.
    fn list(&mut self) -> Result<Vec<Value>> {
        let open = self.next();
        if open.kind != Kind::LParen {
            return Err(syntax(
                open.start,
                format!("expected '(' after IN but found {}", self.describe(&open)),
            ));
        }
        let mut values = vec![self.literal("in the IN list")?];
        loop {
            let token = self.next();
            match token.kind {
                Kind::Comma => values.push(self.literal("after ','")?),
                Kind::RParen => return Ok(values),
                _ => {
                    return Err(syntax(
                        token.start,
                        format!(
                            "expected ',' or ')' in the IN list but found {}",
                            self.describe(&token)
                        ),
                    ));
                }
            }
        }
    }

    /// A literal; `context` says where, for the error.
    fn literal(&mut self, context: &str) -> Result<Value> {
        let token = self.next();
        match token.kind {
            Kind::Literal(value) => Ok(value),
            Kind::Keyword(Keyword::True) => Ok(Value::Bool(true)),
            Kind::Keyword(Keyword::False) => Ok(Value::Bool(false)),
            Kind::Keyword(Keyword::Null) => Err(syntax(
                token.start,
                format!("expected a literal {context} but found NULL (test for it with IS NULL)"),
            )),
            _ => Err(syntax(
                token.start,
                format!("expected a literal {context} but found {}", self.describe(&token)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::is_identifier;
    use proptest::prelude::*;

    fn cmp(column: &str, op: CmpOp, value: impl Into<Value>, at: usize) -> Expr {
        Expr::Compare { column: column.into(), op, value: value.into(), at: Some(at) }
    }

    fn syntax_error(text: &str) -> (usize, String) {
        match parse(text) {
            Err(AttributeError::Syntax { at, message }) => (at, message),
            other => panic!("{text:?} gave {other:?}, not a syntax error"),
        }
    }

    #[test]
    fn parses_the_issue_examples() {
        assert_eq!(
            parse("lang = 'de' AND ts >= 500000").unwrap(),
            Expr::And(vec![cmp("lang", CmpOp::Eq, "de", 0), cmp("ts", CmpOp::Ge, 500_000i64, 16)])
        );
        assert_eq!(
            parse("lang IN ('fr', 'ja') OR zone = 0").unwrap(),
            Expr::Or(vec![
                Expr::In {
                    column: "lang".into(),
                    values: vec!["fr".into(), "ja".into()],
                    at: Some(0)
                },
                cmp("zone", CmpOp::Eq, 0i64, 24),
            ])
        );
    }

    #[test]
    fn parses_every_form() {
        let a = |op, v: Value| cmp("a", op, v, 0);
        assert_eq!(parse("a=1").unwrap(), a(CmpOp::Eq, Value::I64(1)));
        assert_eq!(parse("a != -1").unwrap(), a(CmpOp::Ne, Value::I64(-1)));
        assert_eq!(parse("a<>-1").unwrap(), a(CmpOp::Ne, Value::I64(-1)));
        assert_eq!(parse("a<-1").unwrap(), a(CmpOp::Lt, Value::I64(-1)));
        assert_eq!(parse("a <= 2.5").unwrap(), a(CmpOp::Le, Value::F64(2.5)));
        assert_eq!(parse("a > 1e3").unwrap(), a(CmpOp::Gt, Value::F64(1000.0)));
        assert_eq!(parse("a >= -1.5E-2").unwrap(), a(CmpOp::Ge, Value::F64(-0.015)));
        assert_eq!(parse("a = 3.").unwrap(), a(CmpOp::Eq, Value::F64(3.0)));
        assert_eq!(parse("a = TRUE").unwrap(), a(CmpOp::Eq, Value::Bool(true)));
        assert_eq!(parse("a = fAlSe").unwrap(), a(CmpOp::Eq, Value::Bool(false)));
        assert_eq!(parse("a = 'it''s'").unwrap(), a(CmpOp::Eq, "it's".into()));
        assert_eq!(parse("a = ''").unwrap(), a(CmpOp::Eq, "".into()));
        assert_eq!(parse("a = '日本語 ü'").unwrap(), a(CmpOp::Eq, "日本語 ü".into()));
        assert_eq!(parse("a = 9223372036854775807").unwrap(), a(CmpOp::Eq, Value::I64(i64::MAX)));
        assert_eq!(parse("a = -9223372036854775808").unwrap(), a(CmpOp::Eq, Value::I64(i64::MIN)));
        assert_eq!(parse("a = 9223372036854775808").unwrap(), a(CmpOp::Eq, Value::U64(1 << 63)));
        assert_eq!(parse("a = 18446744073709551615").unwrap(), a(CmpOp::Eq, Value::U64(u64::MAX)));
        let exists = Expr::Exists { column: "a.b_1".into(), at: Some(0) };
        assert_eq!(parse("a.b_1 IS NOT NULL").unwrap(), exists);
        assert_eq!(parse("a.b_1 is null").unwrap(), Expr::Not(Box::new(exists)));
        let within = Expr::In {
            column: "x".into(),
            values: vec![Value::I64(1), Value::F64(2.5), "s".into(), Value::Bool(true)],
            at: Some(0),
        };
        assert_eq!(parse("x in (1, 2.5, 's', true)").unwrap(), within);
        assert_eq!(parse("x NOT IN (1,2.5,'s',TRUE)").unwrap(), Expr::Not(Box::new(within)));
        // Quoted names: keywords, spaces, quotes.
        assert_eq!(parse(r#""and" = 1"#).unwrap(), cmp("and", CmpOp::Eq, 1i64, 0));
        assert_eq!(parse(r#"  "a ""b""" = 1"#).unwrap(), cmp(r#"a "b""#, CmpOp::Eq, 1i64, 2));
        // Any Unicode whitespace separates tokens; offsets count bytes.
        assert_eq!(parse("\u{3000}a\t=\n1").unwrap(), cmp("a", CmpOp::Eq, 1i64, 3));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let [a, b, c] = ["a", "b", "c"].map(|n| move |at| cmp(n, CmpOp::Eq, 1i64, at));
        let not = |e| Expr::Not(Box::new(e));
        assert_eq!(
            parse("NOT a = 1 AND b = 1 OR c = 1").unwrap(),
            Expr::Or(vec![Expr::And(vec![not(a(4)), b(14)]), c(23)])
        );
        assert_eq!(
            parse("a = 1 OR b = 1 AND NOT c = 1").unwrap(),
            Expr::Or(vec![a(0), Expr::And(vec![b(9), not(c(23))])])
        );
        assert_eq!(
            parse("(a = 1 OR b = 1) AND c = 1").unwrap(),
            Expr::And(vec![Expr::Or(vec![a(1), b(10)]), c(21)])
        );
        assert_eq!(parse("NOT (a = 1 OR b = 1)").unwrap(), not(Expr::Or(vec![a(5), b(14)])));
        assert_eq!(parse("not not a = 1").unwrap(), not(not(a(8))));
        assert_eq!(parse("((a = 1))").unwrap(), a(2));
        // Chains flatten; parentheses keep their grouping.
        assert_eq!(
            parse("a = 1 and b = 1 AND c = 1").unwrap(),
            Expr::And(vec![a(0), b(10), c(20)])
        );
        assert_eq!(
            parse("a = 1 OR (b = 1 OR c = 1)").unwrap(),
            Expr::Or(vec![a(0), Expr::Or(vec![b(10), c(19)])])
        );
    }

    #[test]
    fn errors_name_the_offending_token() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "empty filter"),
            (" \t\n ", 0, "empty filter"),
            ("lang = ", 7, "expected a literal after '=' but found end of input"),
            (
                "lang = 'de' AND",
                15,
                "expected an attribute name, NOT or '(' but found end of input",
            ),
            ("lang = 'de", 7, "unterminated string starting here"),
            ("lang = 'it''s", 7, "unterminated string starting here"),
            ("\"lang = 1", 0, "unterminated quoted name starting here"),
            ("\"\" = 1", 0, "empty quoted name"),
            ("a = 1)", 5, "unexpected ')'"),
            (")", 0, "unexpected ')'"),
            ("a = 1 x", 6, "expected AND, OR or end of input but found 'x'"),
            ("(a = 1", 6, "expected AND, OR or ')' but found end of input"),
            ("(a = 1 b", 7, "expected AND, OR or ')' but found 'b'"),
            ("a = ts", 4, "expected a literal after '=' but found 'ts'"),
            ("a <> NULL", 5, "found NULL (test for it with IS NULL)"),
            ("a", 1, "expected a comparison (= != <> < <= > >=), IN or IS after 'a' but found end"),
            ("a b", 2, "IN or IS after 'a' but found 'b'"),
            ("a IN 1", 5, "expected '(' after IN but found '1'"),
            ("a IN ()", 6, "expected a literal in the IN list but found ')'"),
            ("a IN (1,)", 8, "expected a literal after ',' but found ')'"),
            ("a IN (1 2)", 8, "expected ',' or ')' in the IN list but found '2'"),
            ("a NOT 1", 6, "expected IN after NOT but found '1'"),
            ("a IS 1", 5, "expected NULL or NOT NULL after IS but found '1'"),
            ("a IS NOT 1", 9, "expected NULL after IS but found '1'"),
            (
                "and = 1",
                0,
                "found the keyword 'and' (double-quote a name that is a keyword: \"and\")",
            ),
            ("1 = a", 0, "expected an attribute name, NOT or '(' but found '1'"),
            ("a = 1 AND AND", 10, "found the keyword 'AND'"),
            ("a ! 1", 2, "expected '=' after '!'"),
            ("a = - 1", 4, "expected digits after '-'"),
            ("a = 1e", 4, "expected digits in the exponent"),
            ("a = 12abc", 4, "invalid number"),
            ("a = 1.2.3", 4, "invalid number"),
            ("ts = 99999999999999999999", 5, "integer out of range"),
            ("ts = -9223372036854775809", 5, "integer out of range"),
            ("x = 1e999", 4, "float out of range"),
            ("x = NaN", 4, "found 'NaN'"),
            ("x = inf", 4, "found 'inf'"),
            ("é = 1", 0, "unexpected character 'é'"),
            ("a = 1 AND ü = 2", 10, "unexpected character 'ü'"),
            ("a = 'ü' ; b", 9, "unexpected character ';'"),
            ("a = 1 OR b = 'ü' AND c", 23, "after 'c' but found end of input"),
        ];
        for &(text, at, message) in cases {
            let (got_at, got) = syntax_error(text);
            assert_eq!(got_at, at, "{text:?}: {got}");
            assert!(got.contains(message), "{text:?}: {got:?} lacks {message:?}");
            assert!(text.is_char_boundary(got_at));
        }
        // Long tokens are shortened in messages.
        let long = format!("a = 1 {}", "x".repeat(100));
        let (_, message) = syntax_error(&long);
        assert!(message.ends_with(&format!("'{}...'", "x".repeat(MAX_QUOTED))), "{message}");
        // The Display form names the offset.
        assert_eq!(
            parse("a = ").unwrap_err().to_string(),
            "filter syntax error at byte 4: expected a literal after '=' but found end of input"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}a = 1{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(
            syntax_error(&nested(MAX_DEPTH + 1)),
            (MAX_DEPTH, "nesting deeper than 256".into())
        );
        let nots = |n: usize| format!("{}a = 1", "NOT ".repeat(n));
        assert!(parse(&nots(MAX_DEPTH)).is_ok());
        assert_eq!(syntax_error(&nots(MAX_DEPTH + 1)).1, "nesting deeper than 256");
        // Parentheses and NOTs count together.
        let mixed = "(NOT ".repeat(MAX_DEPTH / 2 + 1);
        assert_eq!(syntax_error(&mixed).1, "nesting deeper than 256");
        // Hostile input is refused, not a stack overflow.
        assert_eq!(syntax_error(&"(".repeat(100_000)).1, "nesting deeper than 256");
        assert_eq!(syntax_error(&nested(100_000)).1, "nesting deeper than 256");
        assert_eq!(syntax_error(&"NOT ".repeat(100_000)).1, "nesting deeper than 256");
        // Long flat chains are fine: they loop, not recurse.
        let chain = vec!["a = 1"; 100_000].join(" AND ");
        let Ok(Expr::And(parts)) = parse(&chain) else { panic!("not an AND") };
        assert_eq!(parts.len(), 100_000);
    }

    // Round trip: random expressions, printed, parse back.

    const KEYWORDS: [&str; 8] = ["AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE"];

    fn name_text(name: &str) -> String {
        if is_identifier(name) && Keyword::of(name).is_none() {
            name.to_owned()
        } else {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }

    fn literal_text(value: &Value) -> String {
        match value {
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            // Debug prints the shortest text that reads back, with a '.' or an exponent.
            Value::F64(v) => format!("{v:?}"),
            Value::Bool(b) => if *b { "TRUE" } else { "false" }.to_owned(),
            Value::Keyword(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Keywords(_) => unreachable!("not a literal"),
        }
    }

    /// Prints `expr` as filter text, parenthesizing by precedence.
    fn print(expr: &Expr) -> String {
        fn list(values: &[Value]) -> String {
            values.iter().map(literal_text).collect::<Vec<_>>().join(", ")
        }
        fn operand(expr: &Expr, parent_is_and: bool) -> String {
            match expr {
                Expr::Or(_) => format!("({})", print(expr)),
                Expr::And(_) if parent_is_and => format!("({})", print(expr)),
                _ => print(expr),
            }
        }
        match expr {
            Expr::Compare { column, op, value, .. } => {
                format!("{} {} {}", name_text(column), op.symbol(), literal_text(value))
            }
            Expr::In { column, values, .. } => {
                format!("{} IN ({})", name_text(column), list(values))
            }
            Expr::Exists { column, .. } => format!("{} IS NOT NULL", name_text(column)),
            Expr::Not(inner) => match &**inner {
                Expr::In { column, values, .. } => {
                    format!("{} not in ({})", name_text(column), list(values))
                }
                Expr::Exists { column, .. } => format!("{} is null", name_text(column)),
                Expr::And(_) | Expr::Or(_) => format!("NOT ({})", print(inner)),
                _ => format!("NOT {}", print(inner)),
            },
            Expr::And(parts) => {
                parts.iter().map(|p| operand(p, true)).collect::<Vec<_>>().join(" AND ")
            }
            Expr::Or(parts) => {
                parts.iter().map(|p| operand(p, false)).collect::<Vec<_>>().join(" or ")
            }
        }
    }

    /// `expr` without offsets and with nested AND-in-AND and OR-in-OR flattened.
    fn normalize(expr: Expr) -> Expr {
        fn flatten(parts: Vec<Expr>, and: bool) -> Vec<Expr> {
            let mut out = Vec::new();
            for part in parts.into_iter().map(normalize) {
                match part {
                    Expr::And(inner) if and => out.extend(inner),
                    Expr::Or(inner) if !and => out.extend(inner),
                    part => out.push(part),
                }
            }
            out
        }
        match expr {
            Expr::Compare { column, op, value, .. } => {
                Expr::Compare { column, op, value, at: None }
            }
            Expr::In { column, values, .. } => Expr::In { column, values, at: None },
            Expr::Exists { column, .. } => Expr::Exists { column, at: None },
            Expr::And(parts) => Expr::And(flatten(parts, true)),
            Expr::Or(parts) => Expr::Or(flatten(parts, false)),
            Expr::Not(inner) => Expr::Not(Box::new(normalize(*inner))),
        }
    }

    /// Checks every leaf's offset points at its name in `text`.
    fn check_offsets(expr: &Expr, text: &str) {
        match expr {
            Expr::Compare { column, at, .. }
            | Expr::In { column, at, .. }
            | Expr::Exists { column, at } => {
                let at = at.expect("parsed leaves have offsets");
                // The name is the token at `at`, bare or quoted.
                let first = tokenize(&text[at..]).map(|tokens| tokens[0].kind.clone());
                assert_eq!(first, Ok(Kind::Ident(column.clone())), "{:?} at {}", text, at);
            }
            Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| check_offsets(p, text)),
            Expr::Not(inner) => check_offsets(inner, text),
        }
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[A-Za-z_][A-Za-z0-9_.]{0,6}",
            1 => (0..KEYWORDS.len(), any::<u8>()).prop_map(|(k, mask)| {
                // A keyword in a random mix of cases.
                KEYWORDS[k]
                    .chars()
                    .enumerate()
                    .map(|(i, c)| if mask >> (i % 8) & 1 == 1 { c.to_ascii_lowercase() } else { c })
                    .collect()
            }),
            1 => "[^\u{0}]{1,6}",
            1 => "[a\" ()'é]{1,5}",
        ]
    }

    fn literal_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::I64),
            (-5i64..5).prop_map(Value::I64),
            (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::U64),
            proptest::num::f64::NORMAL.prop_map(Value::F64),
            proptest::num::f64::SUBNORMAL.prop_map(Value::F64),
            Just(Value::F64(0.0)),
            Just(Value::F64(-0.0)),
            Just(Value::F64(f64::MAX)),
            Just(Value::F64(f64::MIN_POSITIVE)),
            (-100i32..100).prop_map(|v| Value::F64(f64::from(v) / 8.0)),
            any::<bool>().prop_map(Value::Bool),
            any::<String>().prop_map(Value::Keyword),
            "[a'\"é日 ]{0,6}".prop_map(Value::Keyword),
        ]
    }

    fn op_strategy() -> impl Strategy<Value = CmpOp> {
        prop_oneof![
            Just(CmpOp::Eq),
            Just(CmpOp::Ne),
            Just(CmpOp::Lt),
            Just(CmpOp::Le),
            Just(CmpOp::Gt),
            Just(CmpOp::Ge),
        ]
    }

    fn expr_strategy() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            (name_strategy(), op_strategy(), literal_strategy())
                .prop_map(|(column, op, value)| Expr::Compare { column, op, value, at: None }),
            (name_strategy(), proptest::collection::vec(literal_strategy(), 1..4))
                .prop_map(|(column, values)| Expr::In { column, values, at: None }),
            name_strategy().prop_map(|column| Expr::Exists { column, at: None }),
        ];
        leaf.prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..5).prop_map(Expr::And),
                proptest::collection::vec(inner.clone(), 2..5).prop_map(Expr::Or),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    /// Tokens to build hostile inputs from.
    const SOUP: [&str; 28] = [
        "(", ")", ",", "=", "!=", "<>", "<", "<=", ">", ">=", "AND", "or", "NOT", "in", "IS",
        "NULL", "true", "a", "b.c", "\"q\"", "'x'", "'", "\"", "-", "1", "-2.5e3", "é", "日",
    ];

    /// Checks `parse(text)` returns, with offsets at char boundaries within the text.
    fn check_no_panic(text: &str) {
        match parse(text) {
            Ok(expr) => check_offsets(&expr, text),
            Err(AttributeError::Syntax { at, message }) => {
                assert!(at <= text.len() && text.is_char_boundary(at), "{text:?}: {at}");
                assert!(!message.is_empty());
            }
            Err(other) => panic!("{text:?}: not a syntax error: {other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn printed_expressions_parse_back(expr in expr_strategy()) {
            let text = print(&expr);
            let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            check_offsets(&parsed, &text);
            prop_assert_eq!(normalize(parsed), normalize(expr), "{}", text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            check_no_panic(&text);
        }

        #[test]
        fn token_soup_never_panics(
            tokens in proptest::collection::vec((0..SOUP.len(), any::<bool>()), 0..40)
        ) {
            let mut text = String::new();
            for (token, space) in tokens {
                text.push_str(SOUP[token]);
                if space {
                    text.push(' ');
                }
            }
            check_no_panic(&text);
        }

        #[test]
        fn mutated_filters_never_panic(
            expr in expr_strategy(),
            edits in proptest::collection::vec(
                (any::<proptest::sample::Index>(), 0..4u8, 0..SOUP.len(), 0usize..8),
                1..5,
            ),
        ) {
            let mut text = print(&expr);
            for (index, kind, token, len) in edits {
                // A char boundary to edit at.
                let bounds: Vec<usize> =
                    text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
                let at = bounds[index.index(bounds.len())];
                let end = bounds[(index.index(bounds.len()) + len).min(bounds.len() - 1)];
                match kind {
                    0 => text.insert_str(at, SOUP[token]),
                    1 => text.replace_range(at..end, ""),
                    2 => text.replace_range(at..end, SOUP[token]),
                    _ => text.truncate(at),
                }
            }
            check_no_panic(&text);
        }
    }
}
