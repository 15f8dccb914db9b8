// ---- push (protocol.md §7.1, Notification Hubs mode): sends go to the host's durable outbox ----
// push.send(tags, props, [options], {success, error}) and push.webpush|gcm|apns.send(tags, payload,
// [options], {success, error}); a trailing function(err, result) works as the callbacks too, and the
// callbacks object's other members are options (ttl, urgency, topic). `success` gets
// {id, queued, skipped} once every notification is stored; an error without an `error` callback is
// logged and fails the request (500), as in Mobile Services. The rules are the host's (push/send.rs).
(function (g) {
  'use strict';
  var L = __roost_lib;
  function callbacksOf(x) {
    if (typeof x === 'function') return { success: function (r) { x(null, r); }, error: function (e) { x(e); } };
    if (x && typeof x === 'object' && (typeof x.success === 'function' || typeof x.error === 'function')) return x;
    return null;
  }
  function optionsOf(list) {
    var out = {};
    list.forEach(function (o) {
      if (!o || typeof o !== 'object') return;
      Object.keys(o).forEach(function (k) { if (k !== 'success' && k !== 'error') out[k] = o[k]; });
    });
    return out;
  }
  function sender(platform) {
    return function (tags, payload, options, callbacks) {
      if (callbacks === undefined && callbacksOf(options)) { callbacks = options; options = undefined; }
      var c = callbacksOf(callbacks) || {};
      var opts = optionsOf([options, callbacks]);
      L.hostCall('push.send', { platform: platform, tags: tags === undefined ? null : tags, payload: payload === undefined ? null : payload, options: opts }, function (err, result) {
        if (err) {
          if (c.error) return c.error(err);
          L.log('error', 'Error sending push notification: ' + err.message);
          return L.internalError(err);
        }
        if (c.success) c.success(result);
      });
    };
  }
  // Windows push (WNS, MPNS): every send method answers a clear error through its callbacks.
  function windows(platform, names) {
    var send = sender(platform), out = {};
    names.forEach(function (name) {
      out[name] = function () {
        var last = arguments[arguments.length - 1];
        send(null, {}, undefined, callbacksOf(last) ? last : undefined);
      };
    });
    return out;
  }
  var wnsNames = ['send', 'sendRaw', 'sendBadge'];
  ['sendToastText0', 'sendToastImageAndText0', 'sendTileSquareText0', 'sendTileWideText0'].forEach(function (p) {
    for (var i = 1; i <= 4; i++) wnsNames.push(p + i);
  });
  wnsNames.push('sendTileSquareBlock', 'sendTileSquareImage', 'sendTileWideImage');
  g.push = { send: sender('template'), webpush: { send: sender('webpush') }, gcm: { send: sender('gcm') }, apns: { send: sender('apns') }, wns: windows('wns', wnsNames), mpns: windows('mpns', ['send', 'sendToast', 'sendTile', 'sendFlipTile', 'sendRaw']) };
})(globalThis);
