// require('url'): parse, format, resolve (legacy Node API).
var qs = require('querystring');
exports.parse = function (s, parseQuery) {
  var m = /^(?:([a-z][a-z0-9+.-]*:)?\/\/(?:([^@\/?#]*)@)?([^:\/?#]*)(?::(\d+))?)?([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(String(s)) || [];
  var search = m[6] || null;
  var r = {
    protocol: m[1] ? m[1].toLowerCase() : null, slashes: m[3] !== undefined ? true : null, auth: m[2] || null,
    hostname: m[3] || null, port: m[4] || null, pathname: m[5] || (m[3] ? '/' : null),
    search: search, hash: m[7] || null, href: String(s)
  };
  r.host = r.hostname ? r.hostname + (r.port ? ':' + r.port : '') : null;
  r.query = parseQuery ? qs.parse(search ? search.slice(1) : '') : (search ? search.slice(1) : null);
  r.path = (r.pathname || '') + (search || '');
  return r;
};
exports.format = function (o) {
  if (typeof o === 'string') o = exports.parse(o);
  var search = o.search || (o.query && typeof o.query === 'object' && Object.keys(o.query).length ? '?' + qs.stringify(o.query) : '');
  var host = o.host || (o.hostname ? o.hostname + (o.port ? ':' + o.port : '') : '');
  return (o.protocol ? o.protocol + (o.protocol.slice(-1) === ':' ? '' : ':') : '') + (host ? '//' + (o.auth ? o.auth + '@' : '') + host : '') + (o.pathname || '') + search + (o.hash || '');
};
exports.resolve = function (from, to) {
  var t = exports.parse(to);
  if (t.protocol) return to;
  var f = exports.parse(from);
  var base = (f.protocol || '') + (f.host ? '//' + f.host : '');
  if (to.charAt(0) === '/') return base + to;
  var dir = (f.pathname || '/').replace(/[^\/]*$/, '');
  var parts = (dir + to).split('/'), out = [];
  parts.forEach(function (p, i) { if (p === '..') out.pop(); else if (p !== '.' && (p !== '' || i === 0 || i === parts.length - 1)) out.push(p); });
  return base + out.join('/');
};
