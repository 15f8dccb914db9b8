//! The engine on its own: limits, timers, console, require, the API response forms. The host here
//! answers host calls from a closure; the server's real host is exercised by the API tests.

use futures::future::BoxFuture;
use roost_scripts::{Entry, HostCall, HostError, Invocation, LogLevel, ScriptBody, ScriptEngine, ScriptFailure, ScriptHost, ScriptLimits};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Answer = Box<dyn Fn(&HostCall) -> Result<Json, HostError> + Send + Sync>;

struct Host {
    logs: Mutex<Vec<(LogLevel, String, String)>>,
    calls: Mutex<Vec<HostCall>>,
    modules: HashMap<String, Arc<str>>,
    answer: Answer,
}

impl Host {
    fn new(answer: Answer) -> Arc<Self> {
        Arc::new(Self { logs: Default::default(), calls: Default::default(), modules: HashMap::new(), answer })
    }
    fn with_modules(answer: Answer, modules: &[(&str, &str)]) -> Arc<Self> {
        Arc::new(Self {
            logs: Default::default(),
            calls: Default::default(),
            modules: modules.iter().map(|(k, v)| (k.to_string(), Arc::from(*v))).collect(),
            answer,
        })
    }
    fn messages(&self) -> Vec<String> {
        self.logs.lock().unwrap().iter().map(|(_, _, m)| m.clone()).collect()
    }
}

impl ScriptHost for Host {
    fn call(&self, call: HostCall) -> BoxFuture<'static, Result<Json, HostError>> {
        let r = (self.answer)(&call);
        self.calls.lock().unwrap().push(call);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            r
        })
    }
    fn module(&self, name: &str) -> Option<Arc<str>> {
        self.modules.get(name).cloned()
    }
    // Route permissions are the server's (its API tests); here every route is open.
    fn api_allowed(&self, _route: &str, _verb: &str) -> bool {
        true
    }
    fn log(&self, level: LogLevel, source: &str, message: &str) {
        self.logs.lock().unwrap().push((level, source.to_string(), message.to_string()));
    }
    fn config(&self) -> Json {
        json!({ "env": { "GREETING": "hi" }, "config": { "appSettings": { "GREETING": "hi" }, "applicationKey": "k" } })
    }
    // Packages are the modules named `pkg/<name>`: `require('<name>')` finds them.
    fn resolve(&self, _from: &str, id: &str) -> roost_scripts::Resolved {
        match self.modules.get(&format!("pkg/{id}")) {
            Some(text) => roost_scripts::Resolved::Found {
                path: format!("/node_modules/{id}/index.js"),
                text: text.clone(),
                key: Arc::from(format!("test-{:p}-{id}", Arc::as_ptr(text))),
            },
            None => roost_scripts::Resolved::NotFound,
        }
    }
}

fn nothing() -> Answer {
    Box::new(|call| Err(HostError::new(500, format!("unexpected host call {call:?}"))))
}

fn job(name: &str, script: &str) -> Invocation {
    Invocation { source: format!("/scheduler/{name}.js"), script: Arc::from(script), entry: Entry::Job(name.into()), input: json!({}) }
}

async fn run_job(engine: &ScriptEngine, tenant: &str, limits: ScriptLimits, host: Arc<Host>, inv: Invocation) -> Result<(), ScriptFailure> {
    engine.invoke(tenant, limits, inv, host).done.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_formats_like_node_and_timers_fire() {
    let engine = ScriptEngine::new();
    let host = Host::new(nothing());
    let script = r#"function tick() {
        console.log('a %s b %d c %j %%', 'x', 42, {k: [1, 'two']}, 'extra', {o: {p: {q: {r: 1}}}});
        console.warn(statusCodes.CREATED, process.env.GREETING, typeof setImmediate);
        setTimeout(function (who) { console.error('timer', who); }, 80, 'fired');
        var h = setTimeout(function () { console.error('cleared timer ran'); }, 10);
        clearTimeout(h);
        var n = 0, i = setInterval(function () { if (++n === 3) { clearInterval(i); console.info('interval', n); } }, 5);
    }"#;
    run_job(&engine, "t1", ScriptLimits::default(), host.clone(), job("tick", script)).await.unwrap();
    let logs = host.logs.lock().unwrap().clone();
    assert_eq!(logs[0].2, r#"a x b 42 c {"k":[1,"two"]} % extra { o: { p: { q: [Object] } } }"#);
    assert_eq!((logs[0].0, logs[0].1.as_str()), (LogLevel::Information, "/scheduler/tick.js"));
    assert_eq!(logs[1].2, "201 hi function", "setImmediate exists, as in Node 0.10");
    assert_eq!(logs[1].0, LogLevel::Warning);
    let rest: Vec<String> = logs[2..].iter().map(|l| l.2.clone()).collect();
    assert_eq!(rest, vec!["interval 3".to_string(), "timer fired".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_loop_is_stopped_at_the_cpu_limit_while_another_tenant_answers() {
    let engine = Arc::new(ScriptEngine::new());
    let limits = ScriptLimits { cpu_ms: 300, ..ScriptLimits::default() };
    let host = Host::new(nothing());
    let started = Instant::now();
    let runaway = engine.invoke("runaway", limits, job("spin", "function spin() { while (true) {} }"), host.clone());
    // Meanwhile another tenant's invocations keep completing.
    let other = Host::new(nothing());
    let mut done = 0;
    while started.elapsed() < Duration::from_millis(250) {
        run_job(&engine, "other", limits, other.clone(), job("quick", "function quick() { console.log('ok'); }")).await.unwrap();
        done += 1;
    }
    let r = runaway.done.await.unwrap();
    let took = started.elapsed();
    assert_eq!(r, Err(ScriptFailure::CpuLimit(300)));
    assert!(took < Duration::from_millis(330), "stopped after {took:?}");
    assert!(done >= 20, "the other tenant completed only {done} invocations in 250 ms");
    assert!(host.messages()[0].starts_with("Error in script '/scheduler/spin.js'. The script exceeded its CPU time limit of 300 ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_bomb_is_stopped_at_the_memory_cap_and_the_runtime_recovers() {
    let engine = ScriptEngine::new();
    let limits = ScriptLimits { memory_mb: 16, ..ScriptLimits::default() };
    let host = Host::new(nothing());
    let bomb = "function bomb() { var a = []; while (true) { a.push(new Array(100000).fill('x' + a.length)); } }";
    let r = run_job(&engine, "t", limits, host.clone(), job("bomb", bomb)).await;
    assert_eq!(r, Err(ScriptFailure::MemoryLimit(16)));
    // The tenant's next invocation runs normally.
    run_job(&engine, "t", limits, host.clone(), job("fine", "function fine() { console.log([1,2].join('+')); }")).await.unwrap();
    assert_eq!(host.messages().last().unwrap(), "1+2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_waiting_forever_hits_the_wall_clock_limit() {
    let engine = ScriptEngine::new();
    let limits = ScriptLimits { wall_ms: 200, ..ScriptLimits::default() };
    let host = Host::new(nothing());
    let r = run_job(&engine, "t", limits, host, job("wait", "function wait() { setInterval(function () {}, 50); }")).await;
    assert_eq!(r, Err(ScriptFailure::WallLimit(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_builtins_shared_modules_with_cycles_and_unknown_modules() {
    let engine = ScriptEngine::new();
    let host = Host::with_modules(
        nothing(),
        &[
            ("a", "exports.name = 'a'; var b = require('./b'); exports.fromB = b.name + ':' + b.seenA;"),
            ("b", "var a = require('../shared/a'); exports.name = 'b'; exports.seenA = a.name;"),
        ],
    );
    let script = r#"function mods() {
        var util = require('util'), qs = require('querystring'), url = require('url'), crypto = require('crypto');
        var assert = require('assert'), EventEmitter = require('events');
        console.log(util.format('%s=%d', 'n', 5), qs.stringify({a: 'x y', b: [1, 2]}), JSON.stringify(qs.parse('a=1&a=2&b=%20')));
        var u = url.parse('https://h.example:8443/p/q?x=1#f', true);
        console.log(u.hostname, u.port, u.pathname, u.query.x, u.hash);
        console.log(crypto.createHash('sha256').update('abc').digest('hex'));
        console.log(crypto.createHmac('sha1', 'key').update('The quick brown fox jumps over the lazy dog').digest('base64'));
        console.log(crypto.randomBytes(16).length, Buffer.from('héllo').toString('base64'), Buffer.from('aGk=', 'base64').toString());
        var e = new EventEmitter(), got = [];
        e.on('x', function (v) { got.push(v); }); e.emit('x', 1); e.emit('x', 2);
        assert.deepEqual(got, [1, 2]);
        assert.throws(function () { assert.strictEqual(1, 2); });
        var a = require('../shared/a');
        console.log(a.fromB, require('mobileservice-config').applicationKey);
        try { require('fs'); } catch (err) { console.log(err.code + ': ' + err.message.split(',')[0]); }
        try { require('left-pad'); } catch (err) { console.log(err.code + ': ' + err.message.split('.')[0]); }
    }"#;
    run_job(&engine, "t", ScriptLimits::default(), host.clone(), job("mods", script)).await.unwrap();
    assert_eq!(
        host.messages(),
        vec![
            r#"n=5 a=x%20y&b=1&b=2 {"a":["1","2"],"b":" "}"#.to_string(),
            "h.example 8443 /p/q 1 #f".to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
            "3nybhbi3iqa8ino29wqQcBydtNk=".to_string(),
            "16 aMOpbGxv hi".to_string(),
            "b:a k".to_string(),
            "MODULE_NOT_FOUND: /scheduler/mods.js requires the Node built-in 'fs'".to_string(),
            "MODULE_NOT_FOUND: Cannot find module 'left-pad'".to_string(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_response_forms() {
    let engine = ScriptEngine::new();
    let module = r#"
        exports.get = function (req, res) {
            var f = req.query.form;
            if (f === 'num') return res.send(400);
            if (f === 'str') return res.send(201, 'hello');
            if (f === 'strstatus') return res.send(req.query.status, { echo: req.params });
            if (f === 'json') return res.json({ a: 1 });
            if (f === 'buf') return res.send(Buffer.from('bin'));
            if (f === 'typed') { res.set('Content-Type', 'text/plain'); return res.status(202).send('t'); }
            if (f === 'end') { res.statusCode = 204; return res.end(); }
            if (f === 'user') return res.send(200, req.user);
            req.respond(statusCodes.OK, { method: req.method, q: req.query, h: req.get('X-Thing') });
        };
        exports.register = function (api) {
            api.post('/title/:title', function (req, res) { res.send(200, { title: req.params.title, body: req.body }); });
        };"#;
    let call = |query: Json, method: &str, path: &str| {
        let host = Host::new(nothing());
        let inv = Invocation {
            source: "/api/movies.js".into(),
            script: Arc::from(module),
            entry: Entry::Api,
            input: json!({ "method": method, "path": path, "url": "/api/movies", "query": query, "headers": {"x-thing": "v"}, "body": {"k": 1},
                           "user": {"level": "anonymous"} }),
        };
        let h = engine.invoke("t", ScriptLimits::default(), inv, host);
        async move { h.response.await.unwrap().unwrap().unwrap() }
    };
    let r = call(json!({"form": "num"}), "GET", "/").await;
    assert_eq!((r.status, r.body), (400, ScriptBody::Text("Bad Request".into())));
    let r = call(json!({"form": "str"}), "GET", "/").await;
    assert_eq!((r.status, &r.headers[0].1, r.body), (201, &"text/html".to_string(), ScriptBody::Text("hello".into())));
    let r = call(json!({"form": "strstatus", "status": "418"}), "GET", "/").await;
    assert_eq!((r.status, r.body), (418, ScriptBody::Json(json!({"echo": {}}))));
    let r = call(json!({"form": "json"}), "GET", "/").await;
    assert_eq!((r.status, r.body), (200, ScriptBody::Json(json!({"a": 1}))));
    let r = call(json!({"form": "buf"}), "GET", "/").await;
    assert_eq!((r.status, &r.headers[0].1, r.body), (200, &"application/octet-stream".to_string(), ScriptBody::Bytes(b"bin".to_vec())));
    let r = call(json!({"form": "typed"}), "GET", "/").await;
    assert_eq!((r.status, &r.headers[0].1, r.body), (202, &"text/plain".to_string(), ScriptBody::Text("t".into())));
    let r = call(json!({"form": "end"}), "GET", "/").await;
    assert_eq!((r.status, r.body), (204, ScriptBody::Empty));
    let r = call(json!({"form": "user"}), "GET", "/").await;
    assert_eq!(r.body, ScriptBody::Json(json!({"level": "anonymous"})));
    let r = call(json!({"x": "1"}), "GET", "/").await;
    assert_eq!(r.body, ScriptBody::Json(json!({"method": "GET", "q": {"x": "1"}, "h": "v"})));
    let r = call(json!({}), "POST", "/title/Alien%20Story").await;
    assert_eq!(r.body, ScriptBody::Json(json!({"title": "Alien Story", "body": {"k": 1}})));
    let r = call(json!({}), "DELETE", "/title/x").await;
    assert_eq!((r.status, r.headers.clone()), (405, vec![("Allow".to_string(), "POST".to_string())]));
    let r = call(json!({}), "GET", "/nothing/here").await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_run_from_cached_bytecode_in_sloppy_mode() {
    let engine = ScriptEngine::new();
    let host = Host::with_modules(
        nothing(),
        &[
            // Sloppy-mode CommonJS, as old npm packages are: an implicit global, `this` as exports,
            // `arguments.callee`, a require of another package, module state per invocation.
            ("pkg/sloppy", "var self = this; function mark() { implicitGlobal = 'set'; return arguments.callee.name; }\nexports.mark = mark; exports.same = self === exports; exports.dep = require('dep').value; var n = 0; exports.next = function () { return ++n; };"),
            ("pkg/dep", "module.exports = { value: 42 };"),
            ("pkg/broken", "exports.x = ;"),
        ],
    );
    let script = r#"function run() {
        var s = require('sloppy');
        console.log(s.mark(), typeof implicitGlobal, s.same, s.dep, s.next(), require('sloppy').next());
        try { require('broken'); } catch (e) { console.log(e.name, /index\.js/.test(e.stack || '') || /broken/.test(e.message + (e.stack || ''))); }
    }"#;
    for _ in 0..3 {
        run_job(&engine, "pk", ScriptLimits::default(), host.clone(), job("run", script)).await.unwrap();
    }
    // Every fresh context sees the same result: the module state starts over, the bytecode is reused.
    assert_eq!(host.messages(), ["mark string true 42 1 2", "SyntaxError true"].repeat(3));
}

/// Issue 11, item 8: a script that set timers until the CPU limit stopped it left its runtime
/// holding that memory (QuickJS's state after an interrupt is not fit for reuse), and the next
/// invocation created a fresh context on the exhausted runtime: `JS_NewContextRaw` →
/// `JS_AddIntrinsicBasicObjects` → `JS_NewObjectFromShape` does not check an allocation that fails
/// there, and the server died with SIGSEGV (core dump of the release build before the fix; every
/// other tenant down). Now a runtime that hit a limit is retired, and no context is created on a
/// runtime without headroom: the tenant's next invocations run on a fresh runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_hit_a_limit_is_replaced_and_never_reused() {
    let engine = ScriptEngine::new();
    let host = Host::new(nothing());
    let limits = ScriptLimits { cpu_ms: 200, wall_ms: 10_000, memory_mb: 16, max_concurrent: 4 };
    let timers = "function bomb() { for (var i = 0; i < 2000000; i++) setTimeout(function () {}, 60000); var t = {}; for (var j = 0; ; j++) t[j] = { f: function () {} }; }";
    for round in 0..10 {
        let r = run_job(&engine, "t", limits, host.clone(), job("bomb", timers)).await;
        assert!(matches!(r, Err(ScriptFailure::CpuLimit(_) | ScriptFailure::MemoryLimit(_))), "round {round}: {r:?}");
        // The runtime that ran out is gone: what the tenant holds now is (nearly) nothing.
        assert!(engine.memory_used("t") < 4 * 1024 * 1024, "round {round}: {} bytes still held", engine.memory_used("t"));
        let r = run_job(&engine, "t", limits, host.clone(), job("ok", "function ok() { console.log('fine'); }")).await;
        assert!(r.is_ok(), "round {round}: {r:?}");
    }
}
