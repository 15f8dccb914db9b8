//! Package modules as QuickJS bytecode: a module of a tenant's npm packages is parsed once per
//! process and install (its CommonJS wrapper compiled to bytecode), then every fresh context reads
//! the bytecode instead of parsing the text again. rquickjs offers bytecode only for ES modules
//! (strict mode), and npm packages are CommonJS scripts that may need sloppy mode, so this uses
//! QuickJS's own compile-only script evaluation. The bytecode never leaves this process and is read
//! only by the QuickJS build that wrote it.

use rquickjs::{qjs, Ctx, Value};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex, OnceLock};

/// The cache holds at most this many bytes of bytecode (then it starts over).
const CACHE_BYTES: usize = 64 << 20;

type Cache = Mutex<(usize, HashMap<Arc<str>, Arc<Vec<u8>>>)>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new((0, HashMap::new())))
}

/// The value of the CommonJS wrapper of `text` (a function), from cached bytecode under `key` or
/// compiled now (and cached).
pub(crate) fn wrapper<'js>(ctx: &Ctx<'js>, key: &Arc<str>, path: &str, text: &str) -> rquickjs::Result<Value<'js>> {
    let hit = cache().lock().unwrap_or_else(|e| e.into_inner()).1.get(key).cloned();
    let bytes = match hit {
        Some(b) => b,
        None => {
            let source = format!("(function (exports, require, module, __filename, __dirname) {{{text}\n}})");
            let b = Arc::new(compile(ctx, &source, path)?);
            let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
            if c.0 + b.len() > CACHE_BYTES {
                *c = (0, HashMap::new());
            }
            c.0 += b.len();
            c.1.insert(key.clone(), b.clone());
            b
        }
    };
    run(ctx, &bytes)
}

fn is_exception(v: qjs::JSValue) -> bool {
    // SAFETY: reading the tag of a value is a pure bit operation on it.
    #[expect(unsafe_code, reason = "QuickJS value tag check")]
    let tag = unsafe { qjs::JS_VALUE_GET_TAG(v) };
    #[expect(clippy::unnecessary_cast, reason = "the tag constant's type differs between the targets rquickjs-sys generates bindings for")]
    let exception = qjs::JS_TAG_EXCEPTION as i32;
    tag == exception
}

/// Compiles `source` as a global (sloppy) script without running it; its bytecode.
#[expect(unsafe_code, reason = "QuickJS's compile-only evaluation and bytecode writer, which rquickjs offers for modules only")]
fn compile(ctx: &Ctx<'_>, source: &str, filename: &str) -> rquickjs::Result<Vec<u8>> {
    let src = CString::new(source).map_err(|_| rquickjs::Error::new_from_js_message("string", "script", "a module may not contain NUL characters"))?;
    let name = CString::new(filename).map_err(|_| rquickjs::Error::new_from_js_message("string", "filename", "NUL in a file name"))?;
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: `src` is NUL-terminated at `source.len()` as JS_Eval requires; the returned value is
    // owned here and freed by `Value` (rquickjs) on drop.
    let f = unsafe { qjs::JS_Eval(raw, src.as_ptr(), source.len() as _, name.as_ptr(), (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32) };
    if is_exception(f) {
        return Err(rquickjs::Error::Exception);
    }
    // SAFETY: `f` is a live value of this context that we own.
    let f = unsafe { Value::from_raw(ctx.clone(), f) };
    let mut len: qjs::size_t = 0;
    // SAFETY: writes the function object `f` (kept alive by `f`) to a buffer QuickJS allocates with
    // the context's allocator; we copy it and free it with `js_free` of the same context.
    let bytes = unsafe {
        let buf = qjs::JS_WriteObject(raw, &mut len, f.as_raw(), qjs::JS_WRITE_OBJ_BYTECODE as i32);
        if buf.is_null() {
            return Err(rquickjs::Error::Exception);
        }
        let out = std::slice::from_raw_parts(buf, len as usize).to_vec();
        qjs::js_free(raw, buf.cast());
        out
    };
    Ok(bytes)
}

/// Reads bytecode written by [`compile`] and runs it: the script's value.
#[expect(unsafe_code, reason = "QuickJS bytecode must be trusted: only bytes `compile` wrote in this process reach here")]
fn run<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> rquickjs::Result<Value<'js>> {
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: `bytes` is bytecode written by `compile` with this QuickJS build (the cache is private to
    // this process); JS_ReadObject copies what it needs (no ROM flag).
    let f = unsafe { qjs::JS_ReadObject(raw, bytes.as_ptr(), bytes.len() as _, qjs::JS_READ_OBJ_BYTECODE as i32) };
    if is_exception(f) {
        return Err(rquickjs::Error::Exception);
    }
    // SAFETY: JS_EvalFunction takes ownership of `f` and returns a new owned value.
    let v = unsafe { qjs::JS_EvalFunction(raw, f) };
    if is_exception(v) {
        return Err(rquickjs::Error::Exception);
    }
    // SAFETY: `v` is a live value of this context that we own.
    Ok(unsafe { Value::from_raw(ctx.clone(), v) })
}
