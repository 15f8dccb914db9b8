// Custom APIs (protocol §6.10): verb exports and `exports.register(api)` routes with Express path
// parameters, per-route permissions (§5.2), an Express-3-like request and response.
(function (g) {
  'use strict';
  var L = __roost_lib;
  var VERBS = ['get', 'post', 'put', 'patch', 'delete'];
  var REASONS = {
    200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found', 304: 'Not Modified',
    400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict',
    410: 'Gone', 412: 'Precondition Failed', 413: 'Request Entity Too Large', 415: 'Unsupported Media Type', 418: "I'm a teapot",
    500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable'
  };

  // Express path syntax: '/title/:title', optional ':x?', '*'.
  function compile(path) {
    if (path.charAt(0) !== '/') path = '/' + path;
    var keys = [];
    var re = path.replace(/\/$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/(\/)?:(\w+)(\?)?/g, function (_, slash, key, opt) {
      keys.push(key);
      return (opt ? '(?:/([^/]+))?' : '/([^/]+)');
    }).replace(/\*/g, '(.*)');
    return { path: path, keys: keys, re: new RegExp('^' + re + '/?$', 'i') };
  }

  L.enterApi = function (input) {
    var m = L.module || {};
    var routes = [];
    VERBS.concat(['del']).forEach(function (v) {
      if (typeof m[v] === 'function') routes.push({ verb: v === 'del' ? 'delete' : v, route: compile('/'), key: '/', handler: m[v] });
    });
    if (typeof m.register === 'function') {
      var api = {};
      VERBS.concat(['del', 'all']).forEach(function (v) {
        api[v] = function (path, handler) {
          var hs = Array.prototype.slice.call(arguments, 1).filter(function (h) { return typeof h === 'function'; });
          if (typeof path !== 'string' || hs.length === 0) throw new Error('api.' + v + ' expects a path and a handler.');
          var verb = v === 'del' ? 'delete' : v;
          routes.push({ verb: verb, route: compile(path), key: path, handler: hs[hs.length - 1] });
        };
      });
      m.register(api);
    }
    var method = input.method.toLowerCase();
    var sub = input.path || '/';
    var matching = routes.filter(function (r) { return r.route.re.test(sub); });
    if (matching.length === 0) return L.write({ status: 404, json: { code: 404, error: 'Error: Not Found' } });
    var route = null;
    matching.forEach(function (r) { if (route === null && (r.verb === method || r.verb === 'all')) route = r; });
    if (route === null) {
      var allow = [];
      matching.forEach(function (r) { var v = r.verb.toUpperCase(); if (allow.indexOf(v) < 0) allow.push(v); });
      return L.write({ status: 405, headers: [['Allow', allow.join(', ')]] });
    }
    // The route's permission (§5.2) is the host's decision, made in Rust.
    if (!L.R.apiAllowed(route.key, method)) return L.write({ status: 401, json: { code: 401, error: 'Error: Unauthorized' } });
    var params = {};
    var match = route.route.re.exec(sub);
    route.route.keys.forEach(function (k, i) { if (match[i + 1] !== undefined) params[k] = decodeURIComponent(match[i + 1]); });
    var headers = input.headers || {};
    var req = {
      method: input.method,
      url: input.url,
      originalUrl: input.url,
      path: sub,
      query: input.query || {},
      params: params,
      body: input.body,
      headers: headers,
      user: L.user(input.user),
      service: { tables: g.tables, push: g.push, mssql: g.mssql, config: L.config.config },
      get: function (name) { return headers[String(name).toLowerCase()]; },
      header: function (name) { return headers[String(name).toLowerCase()]; },
      param: function (name) { return params[name] !== undefined ? params[name] : req.query[name]; }
    };
    var res = response();
    req.respond = function (status, body) { return res.send(status, body); };
    route.handler(req, res);
  };

  function response() {
    var headers = {};   // lower-case name -> [name, value]
    var res = { statusCode: 200 };
    function write(status, extra) {
      var hs = Object.keys(headers).map(function (k) { return headers[k]; });
      var r = { status: status, headers: hs };
      Object.keys(extra).forEach(function (k) { r[k] = extra[k]; });
      L.write(r);
    }
    function isStatus(x) { return typeof x === 'number' || (typeof x === 'string' && /^\d{3}$/.test(x)); }
    res.set = res.header = res.setHeader = function (name, value) {
      if (name && typeof name === 'object') { Object.keys(name).forEach(function (k) { res.set(k, name[k]); }); return res; }
      headers[String(name).toLowerCase()] = [String(name), String(value)];
      return res;
    };
    res.get = res.getHeader = function (name) { var h = headers[String(name).toLowerCase()]; return h && h[1]; };
    res.type = function (t) { return res.set('Content-Type', t.indexOf('/') < 0 ? ({ json: 'application/json', html: 'text/html', text: 'text/plain' }[t] || t) : t); };
    res.status = function (code) { res.statusCode = Number(code); return res; };
    res.send = function (a, b) {
      var status = res.statusCode, body = a;
      if (arguments.length >= 2) {
        if (isStatus(a)) { status = Number(a); body = b; }
        else if (isStatus(b)) { status = Number(b); body = a; }
      } else if (typeof a === 'number') {
        status = a;
        body = undefined;
        if (!res.get('Content-Type')) res.set('Content-Type', 'text/plain');
        return write(status, { text: REASONS[status] || String(status) });
      }
      if (body === undefined || body === null) return write(status, {});
      if (body instanceof Buffer) {
        if (!res.get('Content-Type')) res.set('Content-Type', 'application/octet-stream');
        return write(status, { base64: body.toString('base64') });
      }
      if (typeof body === 'object') {
        if (!res.get('Content-Type')) res.set('Content-Type', 'application/json');
        return write(status, { json: JSON.parse(JSON.stringify(body)) });
      }
      if (!res.get('Content-Type')) res.set('Content-Type', 'text/html');
      return write(status, { text: String(body) });
    };
    res.json = function (a, b) {
      var status = res.statusCode, body = a;
      if (arguments.length >= 2) { if (isStatus(a)) { status = Number(a); body = b; } else { status = Number(b); } }
      if (!res.get('Content-Type')) res.set('Content-Type', 'application/json');
      return write(status, { json: body === undefined ? null : JSON.parse(JSON.stringify(body)) });
    };
    res.end = function (data) {
      if (data === undefined || data === null) return write(res.statusCode, {});
      if (data instanceof Buffer) return write(res.statusCode, { base64: data.toString('base64') });
      return write(res.statusCode, { text: String(data) });
    };
    return res;
  }
})(globalThis);
