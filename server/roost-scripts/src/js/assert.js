// require('assert'): the common assertions, throwing AssertionError.
var util = require('util');
function AssertionError(options) {
  this.name = 'AssertionError';
  this.actual = options.actual; this.expected = options.expected; this.operator = options.operator;
  this.message = options.message || util.inspect(options.actual) + ' ' + options.operator + ' ' + util.inspect(options.expected);
  this.stack = new Error(this.message).stack;
}
util.inherits(AssertionError, Error);
function fail(actual, expected, message, operator) { throw new AssertionError({ actual: actual, expected: expected, message: message, operator: operator }); }
function deepEqual(a, b, strict) {
  if (strict ? a === b : a == b) return true;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  var ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
  if (ka.length !== kb.length) return false;
  for (var i = 0; i < ka.length; i++) { if (ka[i] !== kb[i] || !deepEqual(a[ka[i]], b[kb[i]], strict)) return false; }
  return true;
}
var assert = module.exports = function ok(value, message) { if (!value) fail(value, true, message, '=='); };
assert.AssertionError = AssertionError;
assert.fail = fail;
assert.ok = assert;
assert.equal = function (a, b, m) { if (a != b) fail(a, b, m, '=='); };
assert.notEqual = function (a, b, m) { if (a == b) fail(a, b, m, '!='); };
assert.strictEqual = function (a, b, m) { if (a !== b) fail(a, b, m, '==='); };
assert.notStrictEqual = function (a, b, m) { if (a === b) fail(a, b, m, '!=='); };
assert.deepEqual = function (a, b, m) { if (!deepEqual(a, b, false)) fail(a, b, m, 'deepEqual'); };
assert.deepStrictEqual = function (a, b, m) { if (!deepEqual(a, b, true)) fail(a, b, m, 'deepStrictEqual'); };
assert.notDeepEqual = function (a, b, m) { if (deepEqual(a, b, false)) fail(a, b, m, 'notDeepEqual'); };
assert.throws = function (fn, expected, m) {
  try { fn(); } catch (e) {
    if (typeof expected === 'function' && expected.prototype !== undefined && !(e instanceof expected)) throw e;
    return;
  }
  fail(undefined, expected, typeof expected === 'string' ? expected : m || 'Missing expected exception.', 'throws');
};
assert.doesNotThrow = function (fn, m) { try { fn(); } catch (e) { fail(e, undefined, m || 'Got unwanted exception: ' + e.message, 'doesNotThrow'); } };
assert.ifError = function (e) { if (e) throw e; };
