// require('events'): EventEmitter.
function EventEmitter() { this._events = {}; }
EventEmitter.prototype.on = EventEmitter.prototype.addListener = function (name, fn) {
  if (!this._events) this._events = {};
  (this._events[name] = this._events[name] || []).push(fn);
  return this;
};
EventEmitter.prototype.once = function (name, fn) {
  var self = this;
  function wrapper() { self.removeListener(name, wrapper); fn.apply(self, arguments); }
  wrapper.listener = fn;
  return this.on(name, wrapper);
};
EventEmitter.prototype.removeListener = EventEmitter.prototype.off = function (name, fn) {
  var list = (this._events || {})[name];
  if (list) this._events[name] = list.filter(function (f) { return f !== fn && f.listener !== fn; });
  return this;
};
EventEmitter.prototype.removeAllListeners = function (name) {
  if (name === undefined) this._events = {}; else if (this._events) delete this._events[name];
  return this;
};
EventEmitter.prototype.emit = function (name) {
  var list = ((this._events || {})[name] || []).slice(), args = Array.prototype.slice.call(arguments, 1);
  if (name === 'error' && list.length === 0) throw (args[0] instanceof Error ? args[0] : new Error('Unhandled error event'));
  for (var i = 0; i < list.length; i++) list[i].apply(this, args);
  return list.length > 0;
};
EventEmitter.prototype.listeners = function (name) { return ((this._events || {})[name] || []).slice(); };
EventEmitter.prototype.listenerCount = function (name) { return ((this._events || {})[name] || []).length; };
EventEmitter.prototype.setMaxListeners = function () { return this; };
module.exports = EventEmitter;
module.exports.EventEmitter = EventEmitter;
