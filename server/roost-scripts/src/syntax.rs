//! Syntax checks of scripts before they are saved (with line and column), and the hash natives of
//! `require('crypto')`.

use base64::Engine as _;
use oxc_allocator::Allocator;
use oxc_ast::ast::Statement;
use oxc_parser::Parser;
use oxc_span::SourceType;

/// What a script is, which decides how it is parsed and what it must define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptKind {
    /// A table script for one operation (`insert`, `read`, `update`, `delete`).
    Table(String),
    /// A custom API module.
    Api,
    /// A scheduler job named so.
    Job(String),
    /// A shared module.
    Shared,
    /// An extension module: `extensions/startup.js` or `extensions/push.js`.
    Startup,
}

/// A syntax error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Syntax error at line {line}, column {column}: {message}")]
pub struct SyntaxError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
    /// The parser's message.
    pub message: String,
}

/// Checks a script's syntax, and that a table or job script defines its entry function.
pub fn check_syntax(kind: &ScriptKind, source: &str) -> Result<(), SyntaxError> {
    let allocator = Allocator::default();
    let (text, shift, ty) = match kind {
        // Table and job scripts run as strict-mode script text (§6.2).
        ScriptKind::Table(_) | ScriptKind::Job(_) => (format!("\"use strict\";{source}"), 13usize, SourceType::script()),
        // Modules are CommonJS (top-level `return` allowed).
        _ => (source.to_string(), 0, SourceType::cjs()),
    };
    let ret = Parser::new(&allocator, &text, ty).parse();
    if let Some(d) = ret.diagnostics.errors().next() {
        let offset = d.labels.first().map(|l| l.offset() as usize).unwrap_or(0).saturating_sub(shift);
        let (line, column) = line_col(source, offset);
        return Err(SyntaxError { line, column, message: d.message.to_string() });
    }
    quickjs_check(kind, source)?;
    let entry = match kind {
        ScriptKind::Table(op) => Some(if op == "delete" { "del".to_string() } else { op.clone() }),
        ScriptKind::Job(name) => Some(name.clone()),
        _ => None,
    };
    if let Some(entry) = entry {
        let defined = ret.program.body.iter().any(|s| match s {
            Statement::FunctionDeclaration(f) => f.id.as_ref().is_some_and(|id| id.name.as_str() == entry),
            _ => false,
        });
        if !defined {
            return Err(SyntaxError { line: 1, column: 1, message: format!("The script must define a function named '{entry}'.") });
        }
    }
    Ok(())
}

/// Compiles (without running) the script in QuickJS, which also applies the strict-mode rules the
/// parser above leaves to semantic analysis.
fn quickjs_check(kind: &ScriptKind, source: &str) -> Result<(), SyntaxError> {
    let wrapped = match kind {
        ScriptKind::Table(_) | ScriptKind::Job(_) => format!("(function () {{\"use strict\";{source}\n}})"),
        _ => format!("(function (exports, require, module, __filename, __dirname) {{{source}\n}})"),
    };
    let fail = |message: String| SyntaxError { line: 1, column: 1, message };
    let rt = rquickjs::Runtime::new().map_err(|e| fail(e.to_string()))?;
    rt.set_memory_limit(32 << 20);
    let ctx = rquickjs::Context::full(&rt).map_err(|e| fail(e.to_string()))?;
    ctx.with(|ctx| {
        let mut opts = rquickjs::context::EvalOptions::default();
        opts.global = true;
        opts.filename = Some("script".into());
        match ctx.eval_with_options::<rquickjs::Value, _>(wrapped, opts) {
            Ok(_) => Ok(()),
            Err(_) => {
                let v = ctx.catch();
                let ex = v.as_exception();
                let message = ex.and_then(|e| e.message()).unwrap_or_else(|| "syntax error".into());
                let stack = ex.and_then(|e| e.stack()).unwrap_or_default();
                // "at script:LINE:COL"
                let pos = stack.split("script:").nth(1).map(|rest| {
                    let mut it = rest.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|n| n.parse::<u32>().unwrap_or(1));
                    (it.next().unwrap_or(1), it.next().unwrap_or(1))
                });
                let (line, column) = pos.unwrap_or((1, 1));
                Err(SyntaxError { line, column, message })
            }
        }
    })
}

fn line_col(source: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(source.len());
    let before = &source[..source.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) as u32 + 1;
    (line, col)
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Hash or HMAC of base64 `data` (with base64 `key` for HMAC); the result in base64.
pub(crate) fn digest(alg: &str, key: Option<&str>, data: &str) -> Result<String, String> {
    use hmac::{Hmac, Mac};
    use sha2::Digest;
    let b64 = &base64::engine::general_purpose::STANDARD;
    let data = b64.decode(data).map_err(|e| e.to_string())?;
    let out: Vec<u8> = match key {
        None => match alg.to_ascii_lowercase().as_str() {
            "md5" => md5::Md5::digest(&data).to_vec(),
            "sha1" => sha1::Sha1::digest(&data).to_vec(),
            "sha256" => sha2::Sha256::digest(&data).to_vec(),
            "sha512" => sha2::Sha512::digest(&data).to_vec(),
            other => return Err(format!("Digest method not supported: '{other}'")),
        },
        Some(key) => {
            let key = b64.decode(key).map_err(|e| e.to_string())?;
            macro_rules! mac {
                ($t:ty) => {{
                    let mut m = <Hmac<$t>>::new_from_slice(&key).map_err(|e| e.to_string())?;
                    m.update(&data);
                    m.finalize().into_bytes().to_vec()
                }};
            }
            match alg.to_ascii_lowercase().as_str() {
                "md5" => mac!(md5::Md5),
                "sha1" => mac!(sha1::Sha1),
                "sha256" => mac!(sha2::Sha256),
                "sha512" => mac!(sha2::Sha512),
                other => return Err(format!("Digest method not supported: '{other}'")),
            }
        }
    };
    Ok(b64.encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_reports_line_and_column_of_the_file() {
        let e = check_syntax(&ScriptKind::Table("insert".into()), "function insert(item, user, request) {\n  request.execute(;\n}").unwrap_err();
        assert_eq!((e.line, e.column), (2, 19), "{e}");
    }

    #[test]
    fn table_script_must_define_its_entry_function() {
        let e = check_syntax(&ScriptKind::Table("delete".into()), "function remove(id, user, request) { request.execute(); }").unwrap_err();
        assert!(e.message.contains("'del'"), "{e}");
        check_syntax(&ScriptKind::Table("delete".into()), "function del(id, user, request) { request.execute(); }").unwrap();
    }

    #[test]
    fn strict_mode_errors_are_syntax_errors_for_table_scripts() {
        assert!(check_syntax(&ScriptKind::Table("read".into()), "function read(q,u,r){ var let = 1; }").is_err());
        check_syntax(&ScriptKind::Api, "exports.get = function (req, res) { res.send(200, {}); }; return;").unwrap();
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let out = digest("sha256", Some(&b64.encode("Jefe")), &b64.encode("what do ya want for nothing?")).unwrap();
        let hex: String = b64.decode(out).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
