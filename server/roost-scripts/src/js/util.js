// require('util'): the parts scripts use.
var L = __roost_lib;
exports.format = L.format;
exports.inspect = L.inspect;
exports.isArray = Array.isArray;
exports.isDate = function (d) { return d instanceof Date; };
exports.isError = function (e) { return e instanceof Error; };
exports.isRegExp = function (r) { return r instanceof RegExp; };
exports.isString = function (s) { return typeof s === 'string'; };
exports.isNumber = function (n) { return typeof n === 'number'; };
exports.isObject = function (o) { return o !== null && typeof o === 'object'; };
exports.isFunction = function (f) { return typeof f === 'function'; };
exports.isUndefined = function (u) { return u === undefined; };
exports.isNullOrUndefined = function (u) { return u === null || u === undefined; };
exports.inherits = function (ctor, superCtor) {
  ctor.super_ = superCtor;
  ctor.prototype = Object.create(superCtor.prototype, { constructor: { value: ctor, enumerable: false, writable: true, configurable: true } });
};
exports.log = function () { console.log(new Date().toISOString() + ' - ' + L.format.apply(null, arguments)); };
exports._extend = function (a, b) { if (b && typeof b === 'object') Object.keys(b).forEach(function (k) { a[k] = b[k]; }); return a; };
