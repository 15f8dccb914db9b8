// require('roost-auth'): tokens for a service's own accounts (custom authentication), minted and
// signed by the host with the service's key, as its login endpoints would (protocol §5.3).
var L = __roost_lib;
// createToken(userId, [{ claims: {…}, lifetimeSeconds: n }]) -> the X-ZUMO-AUTH token (a string).
exports.createToken = function (userId, options) {
  if (typeof userId !== 'string' || userId === '') throw new TypeError('createToken needs a user id (for example "Custom:" + username).');
  var o = options || {};
  var claims = o.claims === undefined ? {} : o.claims;
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) throw new TypeError('options.claims must be an object.');
  var lifetime = o.lifetimeSeconds === undefined ? 30 * 24 * 3600 : Number(o.lifetimeSeconds);
  return L.R.mintToken(userId, JSON.stringify(claims), lifetime);
};
// hashPassword(password, callback(err, hash)): an argon2id PHC string, computed by the host.
exports.hashPassword = function (password, callback) {
  if (typeof password !== 'string') throw new TypeError('hashPassword needs the password as a string.');
  if (typeof callback !== 'function') throw new TypeError('hashPassword needs a callback(err, hash).');
  L.hostCall('password.hash', { password: password }, callback);
};
// verifyPassword(password, hash, callback(err, matches)): whether the password matches the hash.
exports.verifyPassword = function (password, hash, callback) {
  if (typeof password !== 'string' || typeof hash !== 'string') throw new TypeError('verifyPassword needs the password and the hash as strings.');
  if (typeof callback !== 'function') throw new TypeError('verifyPassword needs a callback(err, matches).');
  L.hostCall('password.verify', { password: password, hash: hash }, callback);
};
