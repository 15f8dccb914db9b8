//! Recursive-descent parser for the grammar in the crate docs.

use crate::lexer::{tokenize, Tok, Token};
use crate::{invalid_identifier_message, is_valid_identifier, BinaryOp, Expr, Func, OrderBy, ParseError, UnaryOp};

/// Deepest nesting accepted; deeper input is refused instead of overflowing the stack.
pub const MAX_DEPTH: usize = 100;
/// Most terms (constants, members, operators, calls) in one `$filter`, or in one `$orderby` list.
pub const MAX_NODES: usize = 500;
/// Most function calls in one `$filter` or `$orderby`: each may build a string as long as a stored
/// value (`replace`, `concat`) for every row scanned.
pub const MAX_CALLS: usize = 32;

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn err(message: impl Into<String>, index: usize) -> ParseError {
    ParseError { message: message.into(), index }
}

fn is_keyword(name: &str) -> bool {
    matches!(name, "and" | "or" | "not" | "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "add" | "sub" | "mul" | "div" | "mod")
}

impl Parser {
    fn new(src: &str) -> Result<Self, ParseError> {
        Ok(Self { toks: tokenize(src)?, pos: 0, depth: 0 })
    }

    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn peek_word(&self) -> Option<&str> {
        match &self.peek().tok {
            Tok::Ident(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn expect_end(&self) -> Result<(), ParseError> {
        match &self.peek().tok {
            Tok::End => Ok(()),
            _ => Err(err("Syntax error", self.peek().at)),
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err("Expression is nested too deeply", self.peek().at));
        }
        let e = self.binary_level(0);
        self.depth -= 1;
        e
    }

    /// Levels: 0 or, 1 and, 2 comparison, 3 additive, 4 multiplicative.
    fn binary_level(&mut self, level: usize) -> Result<Expr, ParseError> {
        if level == 5 {
            return self.unary();
        }
        let mut left = self.binary_level(level + 1)?;
        loop {
            let op = match (level, self.peek_word()) {
                (0, Some("or")) => BinaryOp::Or,
                (1, Some("and")) => BinaryOp::And,
                (2, Some("eq")) => BinaryOp::Eq,
                (2, Some("ne")) => BinaryOp::Ne,
                (2, Some("lt")) => BinaryOp::Lt,
                (2, Some("le")) => BinaryOp::Le,
                (2, Some("gt")) => BinaryOp::Gt,
                (2, Some("ge")) => BinaryOp::Ge,
                (3, Some("add")) => BinaryOp::Add,
                (3, Some("sub")) => BinaryOp::Sub,
                (4, Some("mul")) => BinaryOp::Mul,
                (4, Some("div")) => BinaryOp::Div,
                (4, Some("mod")) => BinaryOp::Mod,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.binary_level(level + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err("Expression is nested too deeply", self.peek().at));
        }
        let e = if matches!(self.peek().tok, Tok::Minus) {
            self.bump();
            self.unary().map(|e| match e {
                Expr::Number(n) => Expr::Number(-n),
                other => Expr::Unary(UnaryOp::Neg, Box::new(other)),
            })
        } else if self.peek_word() == Some("not") {
            self.bump();
            self.unary().map(|e| Expr::Unary(UnaryOp::Not, Box::new(e)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        e
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.start()?;
        // Member access `a/b`: only the last segment names the column, as in the original runtime.
        while matches!(self.peek().tok, Tok::Slash) {
            self.bump();
            let t = self.bump();
            match (&e, t.tok) {
                (Expr::Member(_), Tok::Ident(name)) if !is_keyword(&name) => e = Expr::Member(name),
                _ => return Err(err("Identifier expected", t.at)),
            }
        }
        Ok(e)
    }

    fn start(&mut self) -> Result<Expr, ParseError> {
        let t = self.bump();
        match t.tok {
            Tok::Num(n) => Ok(Expr::Number(n)),
            Tok::Str(s) => Ok(Expr::String(s)),
            Tok::Typed(ctor, s) => match ctor.as_str() {
                "datetime" => crate::parse_strict_datetime(&s).map(Expr::DateTime).ok_or_else(|| err("Invalid 'datetime' type creation expression", t.at)),
                "datetimeoffset" => {
                    crate::parse_loose_datetime(&s).map(Expr::DateTime).ok_or_else(|| err("Invalid 'datetimeoffset' type creation expression", t.at))
                }
                _ => Ok(Expr::String(s)),
            },
            Tok::LParen => {
                let e = self.expr()?;
                match self.bump() {
                    Token { tok: Tok::RParen, .. } => Ok(e),
                    other => Err(err("')' or operator expected", other.at)),
                }
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                "null" => Ok(Expr::Null),
                kw if is_keyword(kw) => Err(err("Expression expected", t.at)),
                _ if matches!(self.peek().tok, Tok::LParen) => self.call(name, t.at),
                _ => Ok(Expr::Member(name)),
            },
            Tok::End => Err(err("Expression expected", t.at)),
            _ => Err(err("Expression expected", t.at)),
        }
    }

    fn call(&mut self, name: String, at: usize) -> Result<Expr, ParseError> {
        let func = Func::from_name(&name).ok_or_else(|| err(format!("Unknown identifier '{name}'"), at))?;
        self.bump(); // (
        let mut args = Vec::new();
        if matches!(self.peek().tok, Tok::RParen) {
            self.bump();
        } else {
            loop {
                args.push(self.expr()?);
                let t = self.bump();
                match t.tok {
                    Tok::Comma => continue,
                    Tok::RParen => break,
                    _ => return Err(err("')' or ',' expected", t.at)),
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let message = if min != max {
                format!("Function '{}' requires {min} or {max} parameters.", func.name())
            } else if min == 1 {
                format!("Function '{}' requires 1 parameter.", func.name())
            } else {
                format!("Function '{}' requires {min} parameters.", func.name())
            };
            return Err(err(message, at));
        }
        if func == Func::Replace {
            match &args[2] {
                Expr::String(s) if s.chars().count() < 100 => {}
                _ => return Err(err("The third parameter to 'replace' must be a string constant less than 100 in length.", at)),
            }
            if args.iter().any(contains_replace) {
                return Err(err("Calls to 'replace' cannot be nested.", at));
            }
        }
        Ok(Expr::Call(func, args))
    }
}

fn contains_replace(e: &Expr) -> bool {
    match e {
        Expr::Call(Func::Replace, _) => true,
        Expr::Call(_, args) => args.iter().any(contains_replace),
        Expr::Unary(_, a) => contains_replace(a),
        Expr::Binary(_, a, b) => contains_replace(a) || contains_replace(b),
        _ => false,
    }
}

/// Checks every member name in the expression against the identifier rule.
fn check_identifiers(e: &Expr) -> Result<(), ParseError> {
    match e {
        Expr::Member(name) if !is_valid_identifier(name) => Err(err(invalid_identifier_message(name), 0)),
        Expr::Call(_, args) => args.iter().try_for_each(check_identifiers),
        Expr::Unary(_, a) => check_identifiers(a),
        Expr::Binary(_, a, b) => check_identifiers(a).and_then(|_| check_identifiers(b)),
        _ => Ok(()),
    }
}

/// Counts terms and calls of `e` into `(nodes, calls)`.
fn measure(e: &Expr, n: &mut (usize, usize)) {
    n.0 += 1;
    match e {
        Expr::Call(_, args) => {
            n.1 += 1;
            args.iter().for_each(|a| measure(a, n));
        }
        Expr::Unary(_, a) => measure(a, n),
        Expr::Binary(_, a, b) => {
            measure(a, n);
            measure(b, n);
        }
        _ => {}
    }
}

/// The complexity limits ([`MAX_NODES`], [`MAX_CALLS`]) of one query option.
fn check_complexity<'a>(exprs: impl Iterator<Item = &'a Expr>) -> Result<(), ParseError> {
    let mut n = (0, 0);
    exprs.for_each(|e| measure(e, &mut n));
    if n.0 > MAX_NODES {
        return Err(err(format!("The expression is too complex: it has {} terms, at most {MAX_NODES} are allowed", n.0), 0));
    }
    if n.1 > MAX_CALLS {
        return Err(err(format!("The expression is too complex: it calls {} functions, at most {MAX_CALLS} are allowed", n.1), 0));
    }
    Ok(())
}

/// Parses a `$filter` expression.
pub fn parse_filter(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(src)?;
    let e = p.expr()?;
    p.expect_end()?;
    check_identifiers(&e)?;
    check_complexity(std::iter::once(&e))?;
    Ok(e)
}

/// Parses an `$orderby` list: `expr [asc|desc], …`.
pub fn parse_orderby(src: &str) -> Result<Vec<OrderBy>, ParseError> {
    let mut p = Parser::new(src)?;
    let mut out = Vec::new();
    loop {
        let expr = p.expr()?;
        check_identifiers(&expr)?;
        let descending = match p.peek_word() {
            Some("desc") => {
                p.bump();
                true
            }
            Some("asc") => {
                p.bump();
                false
            }
            _ => false,
        };
        out.push(OrderBy { expr, descending });
        match p.peek().tok {
            Tok::Comma => {
                p.bump();
            }
            Tok::End => {
                check_complexity(out.iter().map(|o| &o.expr))?;
                return Ok(out);
            }
            _ => return Err(err("',' expected", p.peek().at)),
        }
    }
}

/// Parses a `$select` list of column names (trimmed; each must be a valid identifier).
pub fn parse_select(src: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    let mut offset = 0;
    for part in src.split(',') {
        let name = part.trim();
        if !name.is_empty() {
            if name == "*" {
                out.push(name.to_string());
            } else if !is_valid_identifier(name) {
                return Err(err(invalid_identifier_message(name), offset));
            } else {
                out.push(name.to_string());
            }
        }
        offset += part.len() + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Expr {
        parse_filter(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn complexity_is_limited() {
        let calls = |n: usize| (0..n).map(|_| "length(replace(text,'y','zzzz')) gt 0").collect::<Vec<_>>().join(" or ");
        // 16 terms of two calls each: 32 calls are allowed, 34 are not.
        assert!(parse_filter(&calls(16)).is_ok());
        let e = parse_filter(&calls(17)).unwrap_err();
        assert!(e.message.contains("calls 34 functions, at most 32"), "{e}");
        let terms = |n: usize| (0..n).map(|i| format!("n eq {i}")).collect::<Vec<_>>().join(" or ");
        assert!(parse_filter(&terms(100)).is_ok());
        let e = parse_filter(&terms(200)).unwrap_err();
        assert!(e.message.contains("too complex") && e.message.contains("at most 500"), "{e}");
        let order = (0..40).map(|i| format!("tolower(c{i})")).collect::<Vec<_>>().join(",");
        assert!(parse_orderby(&order).unwrap_err().message.contains("at most 32"));
    }

    #[test]
    fn precedence_and_associativity() {
        use BinaryOp::*;
        let e = f("a add b mul c eq 7 or d and e");
        let m = |s: &str| Box::new(Expr::Member(s.into()));
        let expected = Expr::Binary(
            Or,
            Box::new(Expr::Binary(Eq, Box::new(Expr::Binary(Add, m("a"), Box::new(Expr::Binary(Mul, m("b"), m("c"))))), Box::new(Expr::Number(7.0)))),
            Box::new(Expr::Binary(And, m("d"), m("e"))),
        );
        assert_eq!(e, expected);
        assert_eq!(f("a sub b sub c"), Expr::Binary(Sub, Box::new(Expr::Binary(Sub, m("a"), m("b"))), m("c")));
    }

    #[test]
    fn literals_of_every_form() {
        assert_eq!(f("x eq 'it''s'"), Expr::Binary(BinaryOp::Eq, Box::new(Expr::Member("x".into())), Box::new(Expr::String("it's".into()))));
        for (src, n) in [("123L", 123.0), ("1.5f", 1.5), ("1.5M", 1.5), ("2d", 2.0), ("1e+21", 1e21), ("-4", -4.0), ("2.5E-3", 0.0025)] {
            assert_eq!(f(&format!("x eq {src}")), Expr::Binary(BinaryOp::Eq, Box::new(Expr::Member("x".into())), Box::new(Expr::Number(n))), "{src}");
        }
        assert!(
            matches!(f("x eq guid'0f8fad5b-d9cb-469f-a165-70867728950e'"), Expr::Binary(_, _, b) if *b == Expr::String("0f8fad5b-d9cb-469f-a165-70867728950e".into()))
        );
        assert!(matches!(f("x eq datetime'2013-01-01T00:00:00.000Z'"), Expr::Binary(_, _, b) if matches!(*b, Expr::DateTime(_))));
        assert!(matches!(f("x eq datetimeoffset'2013-01-01T00:00:00.1234567+02:00'"), Expr::Binary(_, _, b) if matches!(*b, Expr::DateTime(_))));
        assert!(matches!(f("x eq datetime'0001-01-01T00:00:00Z'"), Expr::Binary(_, _, b) if matches!(*b, Expr::DateTime(_))));
        assert!(matches!(f("x eq datetime'9999-12-31T23:59:59.999Z'"), Expr::Binary(_, _, b) if matches!(*b, Expr::DateTime(_))));
    }

    #[test]
    fn errors_carry_messages_and_offsets() {
        let e = parse_filter("a #").unwrap_err();
        assert_eq!(e.to_string(), "Syntax error '#' (at index 2)");
        assert_eq!(parse_filter("a eq 'x").unwrap_err().message, "Unterminated string literal");
        assert_eq!(parse_filter("a eq 1.").unwrap_err().message, "Digit expected");
        assert_eq!(parse_filter("foo(a)").unwrap_err().message, "Unknown identifier 'foo'");
        assert_eq!(parse_filter("length(a, b)").unwrap_err().message, "Function 'length' requires 1 parameter.");
        assert_eq!(parse_filter("startswith(a)").unwrap_err().message, "Function 'startswith' requires 2 parameters.");
        assert_eq!(parse_filter("substring(a)").unwrap_err().message, "Function 'substring' requires 2 or 3 parameters.");
        assert_eq!(parse_filter("x eq datetime'2013-01-01'").unwrap_err().message, "Invalid 'datetime' type creation expression");
        assert_eq!(
            parse_filter("replace(a, 'b', c) eq 'x'").unwrap_err().message,
            "The third parameter to 'replace' must be a string constant less than 100 in length."
        );
        assert_eq!(parse_filter("replace(replace(a,'b','c'), 'b', 'c') eq 'x'").unwrap_err().message, "Calls to 'replace' cannot be nested.");
        assert!(parse_filter("a-b eq 1").unwrap_err().message.contains("is not a valid identifier"));
        assert!(parse_filter("x eq 'é' and ü eq 1").is_err());
        assert!(parse_filter("").is_err());
        assert!(parse_filter("(a eq 1").is_err());
        assert!(parse_filter("a eq").is_err());
        let deep = format!("{}a eq 1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse_filter(&deep).is_err());
    }

    #[test]
    fn orderby_and_select() {
        let o = parse_orderby("length(title) desc, price,id asc").unwrap();
        assert_eq!(o.len(), 3);
        assert!(o[0].descending && !o[1].descending && !o[2].descending);
        assert_eq!(parse_select(" a, b ,c").unwrap(), vec!["a", "b", "c"]);
        assert!(parse_select("a, b; drop table x").is_err());
    }
}
