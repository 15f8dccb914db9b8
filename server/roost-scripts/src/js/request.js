// require('request'): outbound HTTP through the host (per-tenant allow list; private addresses refused).
var L = __roost_lib;
function normalize(uri, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  var params = {};
  if (typeof uri === 'object' && uri !== null) { params = uri; } else { params = options || {}; params.uri = uri; }
  if (typeof options === 'object' && options !== null && typeof uri === 'string') { params = options; params.uri = uri; }
  return { opts: params, cb: callback || params.callback };
}
function request(uri, options, callback) {
  var n = normalize(uri, options, callback), o = n.opts, cb = n.cb;
  var url = o.uri || o.url;
  if (url && typeof url === 'object') url = url.href;
  if (typeof url !== 'string') throw new Error('options.uri is a required argument');
  if (o.qs) url += (url.indexOf('?') >= 0 ? '&' : '?') + require('querystring').stringify(o.qs);
  var headers = {};
  Object.keys(o.headers || {}).forEach(function (k) { headers[k] = String(o.headers[k]); });
  var body = o.body;
  if (o.json !== undefined && o.json !== false && typeof o.json === 'object') { body = JSON.stringify(o.json); headers['content-type'] = headers['content-type'] || 'application/json'; }
  else if (o.json === true && body !== undefined && typeof body === 'object') { body = JSON.stringify(body); headers['content-type'] = headers['content-type'] || 'application/json'; }
  if (o.form) { body = typeof o.form === 'string' ? o.form : require('querystring').stringify(o.form); headers['content-type'] = 'application/x-www-form-urlencoded'; }
  if (o.json) headers.accept = headers.accept || 'application/json';
  var args = { method: (o.method || 'GET').toUpperCase(), url: url, headers: headers, body: body === undefined ? null : (body instanceof Uint8Array ? Buffer.from(body).toString() : String(body)), timeoutMs: o.timeout || null };
  L.hostCall('http.request', args, function (err, res) {
    if (!cb) return;
    if (err) return cb(err);
    var b = res.body;
    if (o.json) { try { b = JSON.parse(b); } catch (e) { } }
    else if (o.encoding === null) b = Buffer.from(res.bodyBase64 || '', 'base64');
    var response = { statusCode: res.status, headers: res.headers, body: b };
    cb(null, response, b);
  });
}
['get', 'post', 'put', 'patch', 'head'].forEach(function (m) {
  request[m] = function (uri, options, callback) {
    var n = normalize(uri, options, callback);
    n.opts.method = m.toUpperCase();
    return request(n.opts, n.cb);
  };
});
request.del = request['delete'] = function (uri, options, callback) { var n = normalize(uri, options, callback); n.opts.method = 'DELETE'; return request(n.opts, n.cb); };
module.exports = request;
