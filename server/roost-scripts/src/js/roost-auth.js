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
