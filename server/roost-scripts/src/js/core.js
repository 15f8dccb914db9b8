// Globals of every script (protocol §6.2): host calls, timers, console, statusCodes, process, Buffer,
// require, tables. Compiled once to bytecode (as a module) and loaded into each fresh context before
// the script. The natives arrive on `__roost` (see engine.rs) and are captured here, then removed from
// the global object: they live only in this module's scope (`__roost_lib` is a module variable, handed
// to the built-in modules as a wrapper argument), so no tenant code can reach them. Every limit the
// natives serve is enforced in Rust anyway. Entry points the engine calls are fixed (non-writable,
// non-configurable) properties of the global object: `__roost_boot`, `__roost_dispatch`,
// `__roost_load`, `__roost_enter`.
var __roost_lib = Object.create(null);
function __roost_entry(name, fn) {
  Object.defineProperty(globalThis, name, { value: fn, writable: false, configurable: false, enumerable: false });
}
(function (g) {
  'use strict';
  var R = g.__roost;
  delete g.__roost;
  Object.setPrototypeOf(R, null);
  Object.freeze(R);
  var L = __roost_lib;
  L.R = R;
  var calls = {};
  var timers = {};
  L.config = { env: {}, config: {} };
  L.current = { source: '', responded: false };

  // ---- host calls: JSON in, JSON out; dates travel as {"$date": iso} ----
  function revive(k, v) {
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1) {
      if (typeof v.$date === 'string') return new Date(v.$date);
      if (typeof v.$bytes === 'string') return g.Buffer.from(v.$bytes, 'base64');
    }
    return v;
  }
  L.revive = revive;
  function hostError(e) {
    var body = e && e.body;
    var text = (body && typeof body.error === 'string') ? body.error.replace(/^Error: /, '') : (e && e.message) || 'Internal Server Error';
    var err = new Error(text);
    err.statusCode = (e && e.status) || 500;
    Object.defineProperty(err, '__body', { value: body, enumerable: false });
    return err;
  }
  // One typed host call (`HostCall` in host.rs): the arguments tagged with the operation.
  L.hostCall = function (op, args, cb) {
    args.op = op;
    var id = R.call(JSON.stringify(args));
    calls[id] = cb;
  };
  __roost_entry('__roost_dispatch', function (id, err, res) {
    if (err === undefined && res === undefined) {
      var t = timers[id];
      if (!t) return;
      if (t.every === null) delete timers[id];
      else {
        delete timers[id];
        var nid = R.timer(t.every);
        timers[nid] = t;
        t.alias.id = nid;
      }
      t.fn.apply(null, t.args);
      return;
    }
    var cb = calls[id];
    delete calls[id];
    if (!cb) return;
    if (err !== null) cb(hostError(JSON.parse(err)));
    else cb(null, JSON.parse(res, revive));
  });

  // ---- responses ----
  // Writes the response once; a later attempt only logs the warning of §6.4.
  L.write = function (resp) {
    if (L.current.responded || !R.respond(JSON.stringify(resp))) {
      L.log('warning', 'Unable to write to the response - it has already been written. Make sure respond is called only once and not after the default response was sent.');
      return false;
    }
    L.current.responded = true;
    return true;
  };
  L.internalError = function (err) {
    L.log('error', 'Error in script \'' + L.current.source + '\'. ' + describe(err));
    if (!L.current.responded) L.write({ status: 500, json: { code: 500, error: 'Error: Internal Server Error' } });
  };
  function describe(err) {
    if (err && err.stack) return String(err.name || 'Error') + ': ' + err.message + '\n' + err.stack;
    return L.format(err);
  }

  // ---- timers (§6.2) ----
  function addTimer(fn, ms, args, repeat) {
    if (typeof fn !== 'function') throw new TypeError('The callback argument must be of type function.');
    ms = Number(ms) || 0;
    var id = R.timer(ms);
    var alias = { id: id };
    timers[id] = { fn: fn, args: args, every: repeat ? Math.max(ms, 1) : null, alias: alias };
    return alias;
  }
  function clear(handle) {
    if (handle && typeof handle.id === 'number') {
      delete timers[handle.id];
      R.clearTimer(handle.id);
    }
  }
  g.setTimeout = function (fn, ms) { return addTimer(fn, ms, Array.prototype.slice.call(arguments, 2), false); };
  g.setInterval = function (fn, ms) { return addTimer(fn, ms, Array.prototype.slice.call(arguments, 2), true); };
  g.clearTimeout = clear;
  g.clearInterval = clear;
  g.setImmediate = function (fn) { return addTimer(fn, 0, Array.prototype.slice.call(arguments, 1), false); };
  g.clearImmediate = clear;

  // ---- util.format / inspect (Node-like) ----
  function inspect(v, depth, seen) {
    seen = seen || [];
    if (v === null) return 'null';
    switch (typeof v) {
      case 'undefined': return 'undefined';
      case 'string': return depth === undefined ? v : "'" + v.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n') + "'";
      case 'number': case 'boolean': return String(v);
      case 'bigint': return String(v) + 'n';
      case 'symbol': return v.toString();
      case 'function': return '[Function' + (v.name ? ': ' + v.name : '') + ']';
    }
    if (v instanceof Date) return isNaN(v.getTime()) ? 'Invalid Date' : v.toISOString();
    if (v instanceof Error) return v.stack ? String(v.name) + ': ' + v.message + '\n' + v.stack.replace(/\n$/, '') : '[' + String(v) + ']';
    if (v instanceof RegExp) return String(v);
    if (seen.indexOf(v) >= 0) return '[Circular]';
    var d = depth === undefined ? 0 : depth;
    if (d > 2) return Array.isArray(v) ? '[Array]' : '[Object]';
    seen.push(v);
    var out;
    if (Array.isArray(v)) {
      out = v.length === 0 ? '[]' : '[ ' + v.map(function (x) { return inspect(x, d + 1, seen); }).join(', ') + ' ]';
    } else if (typeof Buffer === 'function' && v instanceof Buffer) {
      out = '<Buffer ' + Array.prototype.map.call(v.subarray(0, 50), function (b) { return (b < 16 ? '0' : '') + b.toString(16); }).join(' ') + (v.length > 50 ? ' ... ' : '') + '>';
    } else {
      var keys = Object.keys(v);
      out = keys.length === 0 ? '{}' : '{ ' + keys.map(function (k) {
        var key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : "'" + k + "'";
        return key + ': ' + inspect(v[k], d + 1, seen);
      }).join(', ') + ' }';
    }
    seen.pop();
    return out;
  }
  L.inspect = function (v) { return inspect(v, 0); };
  L.format = function (f) {
    var args = arguments, i = 1, out;
    if (typeof f !== 'string') {
      return Array.prototype.map.call(args, function (a) { return typeof a === 'string' ? a : inspect(a, 0); }).join(' ');
    }
    out = f.replace(/%[sdifjoO%]/g, function (m) {
      if (m === '%%') return '%';
      if (i >= args.length) return m;
      var a = args[i++];
      switch (m) {
        case '%s': return typeof a === 'string' ? a : (typeof a === 'object' && a !== null ? inspect(a, 1) : String(a));
        case '%d': return typeof a === 'object' && a !== null ? 'NaN' : String(Number(a));
        case '%i': return String(parseInt(a, 10));
        case '%f': return String(parseFloat(a));
        case '%j': try { return JSON.stringify(a); } catch (e) { return '[Circular]'; }
        default: return inspect(a, 0);
      }
    });
    for (; i < args.length; i++) out += ' ' + (typeof args[i] === 'string' ? args[i] : inspect(args[i], 0));
    return out;
  };

  // ---- console (§6.8): stored as the tenant's logs, with the calling script as source ----
  var MAX_LOG = 10000;
  function callerSource() {
    var stack = new Error().stack || '';
    var lines = stack.split('\n');
    for (var i = 0; i < lines.length; i++) {
      var m = /\((\/[^:()]+\.js)[:)]/.exec(lines[i]) || /at (\/[^:()\s]+\.js)/.exec(lines[i]);
      if (m) return m[1];
    }
    return L.current.source;
  }
  L.log = function (level, message, source) {
    if (message.length > MAX_LOG) message = message.slice(0, MAX_LOG - 16) + ' [log truncated]';
    R.log(level, message, source || callerSource());
  };
  function logger(level) {
    return function () { L.log(level, L.format.apply(null, arguments)); };
  }
  g.console = { log: logger('information'), info: logger('information'), warn: logger('warning'), error: logger('error') };

  // ---- statusCodes (§6.2) ----
  g.statusCodes = Object.freeze({
    OK: 200, CREATED: 201, ACCEPTED: 202, NO_CONTENT: 204, MOVED_PERMANANTLY: 301, FOUND: 302, NOT_MODIFIED: 304,
    BAD_REQUEST: 400, UNAUTHORIZED: 401, FORBIDDEN: 403, NOT_FOUND: 404, METHOD_NOT_ALLOWED: 405, CONFLICT: 409,
    GONE: 410, PRECONDITION_FAILED: 412, REQUEST_ENTITY_TOO_LARGE: 413, INTERNAL_SERVER_ERROR: 500,
    BAD_GATEWAY: 502, SERVICE_UNAVAILABLE: 503
  });

  // ---- Buffer basics ----
  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  function utf8Encode(s) {
    var out = [];
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (c >= 0xD800 && c < 0xDC00 && i + 1 < s.length) {
        var d = s.charCodeAt(i + 1);
        if (d >= 0xDC00 && d < 0xE000) { c = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00); i++; }
      }
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xC0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xE0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xF0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return out;
  }
  function utf8Decode(b) {
    var s = '', i = 0;
    while (i < b.length) {
      var c = b[i++];
      if (c >= 0xF0 && i + 2 < b.length + 0) { c = ((c & 7) << 18) | ((b[i++] & 63) << 12) | ((b[i++] & 63) << 6) | (b[i++] & 63); }
      else if (c >= 0xE0) { c = ((c & 15) << 12) | ((b[i++] & 63) << 6) | (b[i++] & 63); }
      else if (c >= 0xC0) { c = ((c & 31) << 6) | (b[i++] & 63); }
      s += String.fromCodePoint(c);
    }
    return s;
  }
  function b64Encode(b) {
    var s = '', i;
    for (i = 0; i + 2 < b.length; i += 3) {
      var n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
      s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
    }
    if (i < b.length) {
      var m = b[i] << 16 | ((i + 1 < b.length ? b[i + 1] : 0) << 8);
      s += B64[m >> 18] + B64[(m >> 12) & 63] + (i + 1 < b.length ? B64[(m >> 6) & 63] : '=') + '=';
    }
    return s;
  }
  function b64Decode(s) {
    s = String(s).replace(/[^A-Za-z0-9+/\-_]/g, '').replace(/-/g, '+').replace(/_/g, '/');
    var out = [], bits = 0, acc = 0;
    for (var i = 0; i < s.length; i++) {
      acc = (acc << 6) | B64.indexOf(s[i]);
      bits += 6;
      if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 255); }
    }
    return out;
  }
  function encode(s, enc) {
    switch ((enc || 'utf8').toLowerCase()) {
      case 'utf8': case 'utf-8': return utf8Encode(s);
      case 'base64': return b64Decode(s);
      case 'hex': var o = []; for (var i = 0; i + 1 < s.length; i += 2) o.push(parseInt(s.substr(i, 2), 16)); return o;
      case 'ascii': case 'binary': case 'latin1': return Array.prototype.map.call(s, function (c) { return c.charCodeAt(0) & 255; });
      default: throw new TypeError('Unknown encoding: ' + enc);
    }
  }
  class Buffer extends Uint8Array {
    constructor(a, enc) {
      if (typeof a === 'string') { var bytes = encode(a, enc); super(bytes.length); this.set(bytes); }
      else if (typeof a === 'number') super(a);
      else super(a || 0);
    }
    static from(a, enc) { return new Buffer(a, enc); }
    static alloc(n, fill) { var b = new Buffer(n); if (fill !== undefined) b.fill(typeof fill === 'number' ? fill : 0); return b; }
    static isBuffer(b) { return b instanceof Buffer; }
    static byteLength(s, enc) { return typeof s === 'string' ? encode(s, enc).length : s.length; }
    static concat(list) {
      var n = list.reduce(function (a, b) { return a + b.length; }, 0), out = new Buffer(n), at = 0;
      list.forEach(function (b) { out.set(b, at); at += b.length; });
      return out;
    }
    toString(enc) {
      switch ((enc || 'utf8').toLowerCase()) {
        case 'utf8': case 'utf-8': return utf8Decode(this);
        case 'base64': return b64Encode(this);
        case 'hex': return Array.prototype.map.call(this, function (b) { return (b < 16 ? '0' : '') + b.toString(16); }).join('');
        case 'ascii': case 'binary': case 'latin1': return String.fromCharCode.apply(null, Array.prototype.slice.call(this));
        default: throw new TypeError('Unknown encoding: ' + enc);
      }
    }
    toJSON() { return { type: 'Buffer', data: Array.prototype.slice.call(this) }; }
    equals(o) { if (o.length !== this.length) return false; for (var i = 0; i < o.length; i++) if (o[i] !== this[i]) return false; return true; }
    slice(a, b) { return new Buffer(this.subarray(a, b)); }
    write(s, offset, enc) { var b = encode(s, enc); this.set(b.slice(0, this.length - (offset || 0)), offset || 0); return b.length; }
  }
  g.Buffer = Buffer;
  L.b64Encode = b64Encode;
  L.b64Decode = b64Decode;
  L.utf8Encode = utf8Encode;

  // ---- process ----
  g.process = {
    env: {},
    version: 'v0.10.40',
    versions: { node: '0.10.40' },
    platform: 'linux',
    nextTick: function (fn) { var args = Array.prototype.slice.call(arguments, 1); Promise.resolve().then(function () { fn.apply(null, args); }); }
  };

  // ---- require (§6.9): shared modules, Node-style built-ins, mobileservice-config ----
  var cache = {};
  function dirOf(p) { return p.slice(0, p.lastIndexOf('/')) || '/'; }
  function normalize(from, id) {
    var parts = (id.charAt(0) === '/' ? id : dirOf(from) + '/' + id).split('/'), out = [];
    parts.forEach(function (p) {
      if (p === '..') out.pop();
      else if (p !== '.' && p !== '') out.push(p);
    });
    return '/' + out.join('/');
  }
  // `compiled`: the wrapper function already compiled by the host (packages, from bytecode).
  function evaluate(path, text, compiled) {
    var module = { exports: {}, id: path, filename: path, loaded: false };
    cache[path] = module;
    // Roost's own built-ins (`node:` paths) receive the library as an argument; nothing else does.
    var own = path.slice(0, 5) === 'node:';
    var wrapper = compiled || R.compile('(function (exports, require, module, __filename, __dirname' + (own ? ', __roost_lib' : '') + ') {' + text + '\n})', path);
    wrapper.call(module.exports, module.exports, makeRequire(path), module, path, dirOf(path), own ? L : undefined);
    module.loaded = true;
    return module.exports;
  }
  L.evaluate = evaluate;
  // Node built-ins Roost does not provide: requiring one names it (and the package asking for it).
  var NODE_BUILTINS = ['fs', 'path', 'os', 'child_process', 'net', 'http', 'https', 'stream', 'zlib', 'tls', 'dgram',
    'dns', 'cluster', 'readline', 'vm', 'worker_threads', 'string_decoder', 'punycode', 'tty', 'module', 'v8',
    'perf_hooks', 'http2', 'inspector', 'async_hooks', 'constants', 'domain', 'repl', 'sys'];
  function packageOf(path) {
    var m = /^\/node_modules\/((?:@[^\/]+\/)?[^\/]+)/.exec(path);
    return m ? m[1] : null;
  }
  function moduleError(message, code) {
    var e = new Error(message);
    e.code = code;
    return e;
  }
  function makeRequire(from) {
    return function require(id) {
      if (typeof id !== 'string' || id === '') throw new TypeError('The module id must be a non-empty string.');
      if (id === 'mobileservice-config') return L.config.config;
      // Shared modules of the service (`../shared/x` from a script).
      if ((id.charAt(0) === '.' || id.charAt(0) === '/') && !packageOf(from)) {
        var path = normalize(from, id);
        var lower = path.toLowerCase().replace(/\.js$/, '');
        if (cache[lower + '.js']) return cache[lower + '.js'].exports;
        var m = /^\/shared\/(.+)$/.exec(lower);
        var src = m ? R.module('shared/' + m[1]) : null;
        if (src !== null && src !== undefined) return evaluate(lower + '.js', src);
      }
      // The tenant's packages: relative paths inside a package, then node_modules (nested first).
      var builtin = id.replace(/^node:/, '');
      if (id.slice(0, 5) !== 'node:') {
        var found = R.resolve(from, id);
        if (found) {
          if (cache[found[0]]) return cache[found[0]].exports;
          return evaluate(found[0], null, found[1]);
        }
      }
      // Roost's built-ins.
      if (/^[a-z_-]+$/.test(builtin)) {
        if (cache['node:' + builtin]) return cache['node:' + builtin].exports;
        if (builtin === 'buffer') return { Buffer: g.Buffer };
        if (builtin === 'timers') return { setTimeout: g.setTimeout, clearTimeout: g.clearTimeout, setInterval: g.setInterval, clearInterval: g.clearInterval, setImmediate: g.setImmediate, clearImmediate: g.clearImmediate };
        var text = R.module(builtin);
        if (text !== null && text !== undefined) return evaluate('node:' + builtin, text);
        if (NODE_BUILTINS.indexOf(builtin) >= 0) {
          var pkg = packageOf(from);
          throw moduleError((pkg ? "Package '" + pkg + "' requires" : from + ' requires') + " the Node built-in '" + builtin +
            "', which Roost does not provide (it provides util, events, querystring, url, assert, crypto, buffer and timers).", 'MODULE_NOT_FOUND');
        }
      }
      var inPackage = packageOf(from);
      throw moduleError("Cannot find module '" + id + "'" + (inPackage ? " (required by package '" + inPackage + "')" : '') +
        ". Scripts can require shared modules ('../shared/<name>'), the service's npm packages (package.json), 'mobileservice-config', 'request', 'roost-auth' and the built-ins util, events, querystring, url, assert, crypto, buffer and timers.", 'MODULE_NOT_FOUND');
    };
  }
  L.makeRequire = makeRequire;

  __roost_entry('__roost_boot', function (configJson, source) {
    var c = JSON.parse(configJson);
    L.current.source = source;
    // Table and job scripts may require at their top level (`var util = require('../shared/util')`).
    g.require = makeRequire(source);
    L.config.env = c.env || {};
    L.config.config = c.config || {};
    g.process.env = Object.assign({}, L.config.env);
  });

  // CommonJS modules (APIs, startup): evaluated with their own module object.
  __roost_entry('__roost_load', function (source, text) {
    L.current.source = source;
    L.module = evaluate(source.toLowerCase(), text);
  });
})(globalThis);
