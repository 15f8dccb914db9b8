// require('crypto'): hashes, HMAC and random bytes, computed by the host. As in Node 0.10 (the
// version Mobile Services ran and `process.version` reports), a string key or data without an
// encoding is 'binary' (one byte per character): the custom-authentication sample relies on it,
// using a `digest('binary')` string as an HMAC key.
var L = __roost_lib;
function toBytes(data, enc) { return data instanceof Uint8Array ? data : Buffer.from(String(data), enc || 'binary'); }
function Hash(alg, key) { this._alg = alg; this._key = key; this._parts = []; }
Hash.prototype.update = function (data, enc) { this._parts.push(toBytes(data, enc)); return this; };
Hash.prototype.digest = function (enc) {
  var data = Buffer.concat(this._parts).toString('base64');
  var key = this._key === null ? undefined : this._key.toString('base64');
  var out = Buffer.from(L.R.digest(this._alg, key, data), 'base64');
  return enc ? out.toString(enc) : out;
};
exports.createHash = function (alg) { return new Hash(String(alg), null); };
exports.createHmac = function (alg, key) { return new Hash(String(alg), toBytes(key)); };
exports.randomBytes = function (n, cb) {
  var b = Buffer.from(L.R.randomBytes(n), 'base64');
  if (typeof cb === 'function') { setTimeout(function () { cb(null, b); }, 0); return; }
  return b;
};
exports.pseudoRandomBytes = exports.randomBytes;
exports.getHashes = function () { return ['md5', 'sha1', 'sha256', 'sha512']; };
