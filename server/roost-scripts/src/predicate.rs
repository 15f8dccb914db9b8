//! `query.where(function (a, b) { return this.x > a && … }, 1, 2)`: the function's *source* is parsed
//! with a real JavaScript parser (oxc) and its single `return` expression translated into OData text,
//! following queryjs (protocol §6.5) and the forms of §3.7. Parameters are replaced by the values
//! passed with the function; any other free variable is an error, as in the original.

use oxc_allocator::Allocator;
use oxc_ast::ast::{Argument, ArrayExpressionElement, Expression, Statement};
use oxc_parser::Parser;
use oxc_span::SourceType;
use oxc_syntax::operator::{BinaryOperator, LogicalOperator, UnaryOperator};
use serde_json::Value as Json;

/// Translates a predicate function's source into an OData filter, with `args` bound to its
/// parameters in order. A `Date` argument arrives as `{"$date": "<ISO>"}`.
pub fn translate_predicate(source: &str, args: &[Json]) -> Result<String, String> {
    let allocator = Allocator::default();
    let wrapped = format!("({source})");
    let expr = Parser::new(&allocator, &wrapped, SourceType::script())
        .parse_expression()
        .map_err(|d| format!("The predicate is not a valid JavaScript function: {}", d.first().map(|e| e.message.to_string()).unwrap_or_default()))?;
    let mut e = &expr;
    while let Expression::ParenthesizedExpression(p) = e {
        e = &p.expression;
    }
    let Expression::FunctionExpression(f) = e else {
        return Err("The predicate passed to 'where' must be a function.".into());
    };
    let params: Vec<String> = f.params.items.iter().filter_map(|p| p.pattern.get_identifier_name().map(|n| n.to_string())).collect();
    let statements = f.body.as_ref().map(|b| &b.statements[..]).unwrap_or(&[]);
    let [Statement::ReturnStatement(ret)] = statements else {
        return Err("Expected a predicate with a function body containing a single return statement.".into());
    };
    let Some(body) = &ret.argument else { return Err("Expected a predicate with a function body containing a single return statement.".into()) };
    let t = Translator { params: &params, args };
    t.expr(body)
}

struct Translator<'p> {
    params: &'p [String],
    args: &'p [Json],
}

/// A JavaScript number as `Number.prototype.toString` writes it.
fn js_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i128)
    } else {
        let s = format!("{n}");
        s
    }
}

fn literal(v: &Json) -> Result<String, String> {
    Ok(match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => js_number(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => format!("'{}'", s.replace('\'', "''")),
        Json::Object(o) => match o.get("$date").and_then(Json::as_str) {
            Some(d) => format!("datetime'{d}'"),
            None => return Err("An object cannot be used as a value in a query predicate.".into()),
        },
        Json::Array(_) => return Err("An array can only be used with the 'in' operator in a query predicate.".into()),
    })
}

impl Translator<'_> {
    fn param(&self, name: &str) -> Option<&Json> {
        self.params.iter().position(|p| p == name).map(|i| self.args.get(i).unwrap_or(&Json::Null))
    }

    fn expr(&self, e: &Expression<'_>) -> Result<String, String> {
        match e {
            Expression::ParenthesizedExpression(p) => self.expr(&p.expression),
            Expression::BooleanLiteral(b) => Ok(b.value.to_string()),
            Expression::NullLiteral(_) => Ok("null".into()),
            Expression::NumericLiteral(n) => Ok(js_number(n.value)),
            Expression::StringLiteral(s) => Ok(format!("'{}'", s.value.as_str().replace('\'', "''"))),
            Expression::Identifier(id) => match self.param(id.name.as_str()) {
                Some(v) => literal(v),
                None if id.name.as_str() == "undefined" => Ok("null".into()),
                None => Err(format!("The variable '{}' is not defined in the predicate. Pass it as an argument to 'where'.", id.name)),
            },
            Expression::StaticMemberExpression(m) => {
                if matches!(m.object, Expression::ThisExpression(_)) {
                    return Ok(m.property.name.to_string());
                }
                if m.property.name.as_str() == "length" {
                    return Ok(format!("length({})", self.expr(&m.object)?));
                }
                Err(format!("The member '{}' is not supported in a query predicate.", m.property.name))
            }
            Expression::ComputedMemberExpression(m) if matches!(m.object, Expression::ThisExpression(_)) => match &m.expression {
                Expression::StringLiteral(s) => Ok(s.value.to_string()),
                _ => Err("Only string member names can be used with 'this[...]' in a query predicate.".into()),
            },
            Expression::UnaryExpression(u) => {
                let a = self.expr(&u.argument)?;
                match u.operator {
                    UnaryOperator::LogicalNot => Ok(format!("not {a}")),
                    UnaryOperator::UnaryNegation => Ok(format!("(0 sub {a})")),
                    UnaryOperator::UnaryPlus => Ok(a),
                    other => Err(format!("The operator '{}' is not supported in a query predicate.", other.as_str())),
                }
            }
            Expression::LogicalExpression(l) => {
                let op = match l.operator {
                    LogicalOperator::And => "and",
                    LogicalOperator::Or => "or",
                    LogicalOperator::Coalesce => return Err("The operator '??' is not supported in a query predicate.".into()),
                };
                Ok(format!("({} {op} {})", self.expr(&l.left)?, self.expr(&l.right)?))
            }
            Expression::BinaryExpression(b) => {
                if b.operator == BinaryOperator::In {
                    return self.in_list(&b.left, &b.right);
                }
                let op = match b.operator {
                    BinaryOperator::Equality | BinaryOperator::StrictEquality => "eq",
                    BinaryOperator::Inequality | BinaryOperator::StrictInequality => "ne",
                    BinaryOperator::LessThan => "lt",
                    BinaryOperator::LessEqualThan => "le",
                    BinaryOperator::GreaterThan => "gt",
                    BinaryOperator::GreaterEqualThan => "ge",
                    BinaryOperator::Addition => "add",
                    BinaryOperator::Subtraction => "sub",
                    BinaryOperator::Multiplication => "mul",
                    BinaryOperator::Division => "div",
                    BinaryOperator::Remainder => "mod",
                    other => return Err(format!("The operator '{}' is not supported in a query predicate.", other.as_str())),
                };
                Ok(format!("({} {op} {})", self.expr(&b.left)?, self.expr(&b.right)?))
            }
            Expression::CallExpression(c) => self.call(&c.callee, &c.arguments),
            Expression::RegExpLiteral(_) => Err("Regular expressions are not supported in a query predicate.".into()),
            _ => Err("The expression is not supported in a query predicate.".into()),
        }
    }

    fn in_list(&self, left: &Expression<'_>, right: &Expression<'_>) -> Result<String, String> {
        let l = self.expr(left)?;
        let items: Vec<String> = match right {
            Expression::ArrayExpression(a) => a
                .elements
                .iter()
                .map(|el| match el {
                    ArrayExpressionElement::SpreadElement(_) | ArrayExpressionElement::Elision(_) => {
                        Err("Spread and holes are not supported in a query predicate.".to_string())
                    }
                    other => self.expr(other.to_expression()),
                })
                .collect::<Result<_, _>>()?,
            Expression::Identifier(id) => match self.param(id.name.as_str()) {
                Some(Json::Array(a)) => a.iter().map(literal).collect::<Result<_, _>>()?,
                Some(_) => return Err(format!("The right operand of 'in' must be an array; '{}' is not.", id.name)),
                None => return Err(format!("The variable '{}' is not defined in the predicate. Pass it as an argument to 'where'.", id.name)),
            },
            _ => return Err("The right operand of 'in' must be an array.".into()),
        };
        if items.is_empty() {
            return Ok("(true eq false)".into());
        }
        let parts: Vec<String> = items.iter().map(|i| format!("({l} eq {i})")).collect();
        Ok(if parts.len() == 1 { parts[0].clone() } else { format!("({})", parts.join(" or ")) })
    }

    fn call(&self, callee: &Expression<'_>, args: &[Argument<'_>]) -> Result<String, String> {
        let Expression::StaticMemberExpression(m) = callee else {
            return Err("Only method calls are supported in a query predicate.".into());
        };
        let name = m.property.name.as_str();
        let a: Vec<String> = args
            .iter()
            .map(|a| match a {
                Argument::SpreadElement(_) => Err("Spread arguments are not supported in a query predicate.".to_string()),
                other => self.expr(other.to_expression()),
            })
            .collect::<Result<_, _>>()?;
        if let Expression::Identifier(obj) = &m.object {
            if obj.name.as_str() == "Math" && self.param("Math").is_none() {
                let f = match name {
                    "floor" => "floor",
                    "ceil" => "ceiling",
                    "round" => "round",
                    _ => return Err(format!("The function 'Math.{name}' is not supported in a query predicate.")),
                };
                let [x] = &a[..] else { return Err(format!("Math.{name} takes one argument.")) };
                return Ok(format!("{f}({x})"));
            }
        }
        let this = self.expr(&m.object)?;
        let arity = |n: usize| if a.len() == n { Ok(()) } else { Err(format!("The method '{name}' takes {n} argument(s) in a query predicate.")) };
        Ok(match name {
            "toLowerCase" => arity(0).map(|_| format!("tolower({this})"))?,
            "toUpperCase" => arity(0).map(|_| format!("toupper({this})"))?,
            "trim" => arity(0).map(|_| format!("trim({this})"))?,
            "indexOf" => arity(1).map(|_| format!("indexof({this},{})", a[0]))?,
            "concat" => arity(1).map(|_| format!("concat({this},{})", a[0]))?,
            "replace" => arity(2).map(|_| format!("replace({this},{},{})", a[0], a[1]))?,
            "substr" => match a.len() {
                1 => format!("substring({this},{})", a[0]),
                2 => format!("substring({this},{},{})", a[0], a[1]),
                _ => return Err("The method 'substr' takes 1 or 2 arguments in a query predicate.".into()),
            },
            "substring" => match a.len() {
                1 => format!("substring({this},{})", a[0]),
                2 => {
                    // JavaScript's end index becomes OData's length.
                    let len = match (a[0].parse::<f64>(), a[1].parse::<f64>()) {
                        (Ok(s), Ok(e)) => js_number(e - s),
                        _ => format!("({} sub {})", a[1], a[0]),
                    };
                    format!("substring({this},{},{len})", a[0])
                }
                _ => return Err("The method 'substring' takes 1 or 2 arguments in a query predicate.".into()),
            },
            "startsWith" => arity(1).map(|_| format!("startswith({this},{})", a[0]))?,
            "endsWith" => arity(1).map(|_| format!("endswith({this},{})", a[0]))?,
            "getFullYear" | "getUTCFullYear" => arity(0).map(|_| format!("year({this})"))?,
            "getYear" => arity(0).map(|_| format!("(year({this}) sub 1900)"))?,
            "getMonth" | "getUTCMonth" => arity(0).map(|_| format!("(month({this}) sub 1)"))?,
            "getDate" | "getUTCDate" => arity(0).map(|_| format!("day({this})"))?,
            "getHours" | "getUTCHours" => arity(0).map(|_| format!("hour({this})"))?,
            "getMinutes" | "getUTCMinutes" => arity(0).map(|_| format!("minute({this})"))?,
            "getSeconds" | "getUTCSeconds" => arity(0).map(|_| format!("second({this})"))?,
            "lastIndexOf" => return Err("The method 'lastIndexOf' is not supported in a query predicate.".into()),
            other => return Err(format!("The method '{other}' is not supported in a query predicate.")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(src: &str, args: Json) -> String {
        translate_predicate(src, args.as_array().unwrap()).unwrap()
    }

    #[test]
    fn comparisons_logic_and_parameters() {
        assert_eq!(t("function (a, b) { return this.year >= a && this.year < b; }", json!([1990, 2000])), "((year ge 1990) and (year lt 2000))");
        assert_eq!(t("function (n) { return this.title === n || !this.done; }", json!(["it's"])), "((title eq 'it''s') or not done)");
        assert_eq!(t("function () { return -this.x != null; }", json!([])), "((0 sub x) ne null)");
    }

    #[test]
    fn methods_of_section_3_7() {
        assert_eq!(t("function (s) { return this.name.toLowerCase().indexOf(s) === 0; }", json!(["ab"])), "(indexof(tolower(name),'ab') eq 0)");
        assert_eq!(t("function () { return this.name.substring(1, 3) == 'bc'; }", json!([])), "(substring(name,1,2) eq 'bc')");
        assert_eq!(t("function () { return this.name.length > 2; }", json!([])), "(length(name) gt 2)");
        assert_eq!(t("function () { return this.d.getMonth() == 0 && Math.floor(this.p) == 3; }", json!([])), "(((month(d) sub 1) eq 0) and (floor(p) eq 3))");
        assert_eq!(t("function (d) { return this.when > d; }", json!([{"$date": "2013-01-01T00:00:00.000Z"}])), "(when gt datetime'2013-01-01T00:00:00.000Z')");
    }

    #[test]
    fn in_operator_on_arrays() {
        assert_eq!(t("function (xs) { return this.id in xs; }", json!([["a", "b"]])), "((id eq 'a') or (id eq 'b'))");
        assert_eq!(t("function () { return this.n in [1]; }", json!([])), "(n eq 1)");
        assert_eq!(t("function (xs) { return this.id in xs; }", json!([[]])), "(true eq false)");
    }

    #[test]
    fn refusals() {
        for (src, needle) in [
            ("function () { var a = 1; return this.x == a; }", "single return"),
            ("function () { return this.x == y; }", "'y' is not defined"),
            ("function () { return /a/.test(this.x); }", "not supported"),
            ("function () { return this.x.lastIndexOf('a') > 0; }", "lastIndexOf"),
            ("42", "must be a function"),
        ] {
            let e = translate_predicate(src, &[]).unwrap_err();
            assert!(e.contains(needle), "{src}: {e}");
        }
    }

    /// Fuzzing the translator: mutations of real predicates and raw noise never panic, and whatever
    /// translates is well formed (balanced parentheses outside string constants, closed strings;
    /// the API tests run translated filters through the parser). `ROOST_FUZZ_CASES` sets the count.
    #[test]
    fn the_translator_never_panics_and_its_output_parses() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        const SEEDS: &[&str] = &[
            "function (s) { return this.name.toLowerCase().indexOf(s) === 0 && this.n > 2; }",
            "function (xs) { return this.id in xs || !(this.done == true); }",
            "function (d) { return this.when > d && this.d.getMonth() == 0 && Math.floor(this.p) == 3; }",
            "function () { return this.name.substring(1, 3) == 'bc' || this.name.length > 2; }",
            "function (a, b) { return (this.x + a) * 2 >= b - 1 && this.s.trim().toUpperCase() != 'Q'; }",
        ];
        let cases = std::env::var("ROOST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let mutated = (prop::sample::select(SEEDS), prop::collection::vec((any::<prop::sample::Index>(), any::<char>(), any::<bool>()), 1..5)).prop_map(
            |(seed, edits)| {
                let mut chars: Vec<char> = seed.chars().collect();
                for (at, c, insert) in edits {
                    let i = at.index(chars.len());
                    if insert {
                        chars.insert(i, c);
                    } else {
                        chars.remove(i);
                    }
                }
                chars.into_iter().collect::<String>()
            },
        );
        let input = prop_oneof![mutated, "[ -~]{0,60}"];
        let args = json!(["ab", ["a", "b"], {"$date": "2013-01-01T00:00:00.000Z"}, 1, 2]);
        let args = args.as_array().cloned().unwrap_or_default();
        runner
            .run(&input, |src| {
                if let Ok(filter) = translate_predicate(&src, &args) {
                    let (mut depth, mut in_string) = (0i32, false);
                    for c in filter.chars() {
                        match c {
                            '\'' => in_string = !in_string,
                            '(' if !in_string => depth += 1,
                            ')' if !in_string => depth -= 1,
                            _ => {}
                        }
                        prop_assert!(depth >= 0, "{src} -> {filter}");
                    }
                    prop_assert!(depth == 0 && !in_string, "{src} -> {filter}");
                }
                Ok(())
            })
            .unwrap();
    }
}
