// require('querystring'): parse and stringify (form encoding, '+' is a space).
function dec(s) { try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch (e) { return s; } }
exports.unescape = dec;
exports.escape = function (s) { return encodeURIComponent(s); };
exports.parse = exports.decode = function (qs, sep, eq) {
  sep = sep || '&'; eq = eq || '=';
  var out = {};
  if (typeof qs !== 'string' || qs.length === 0) return out;
  qs.split(sep).forEach(function (part) {
    if (!part) return;
    var i = part.indexOf(eq), k = dec(i >= 0 ? part.slice(0, i) : part), v = i >= 0 ? dec(part.slice(i + eq.length)) : '';
    if (Object.prototype.hasOwnProperty.call(out, k)) out[k] = [].concat(out[k], v); else out[k] = v;
  });
  return out;
};
exports.stringify = exports.encode = function (obj, sep, eq) {
  sep = sep || '&'; eq = eq || '=';
  if (!obj || typeof obj !== 'object') return '';
  var enc = function (v) { return encodeURIComponent(typeof v === 'string' ? v : (typeof v === 'number' && isFinite(v)) || typeof v === 'boolean' ? String(v) : ''); };
  return Object.keys(obj).map(function (k) {
    var v = obj[k];
    if (Array.isArray(v)) return v.map(function (x) { return encodeURIComponent(k) + eq + enc(x); }).join(sep);
    return encodeURIComponent(k) + eq + enc(v);
  }).join(sep);
};
