// ---- push (protocol.md §7.1, Notification Hubs mode): sends go to the host's durable outbox ----
// push.send(tags, props, [options], {success, error}) and push.webpush|gcm|apns.send(tags, payload,
// [options], {success, error}); a trailing function(err, result) works as the callbacks too, and the
// callbacks object's other members are options (ttl, urgency, topic). `success` gets
// {id, queued, skipped} once every notification is stored; an error without an `error` callback is
// logged and fails the request (500), as in Mobile Services. The rules are the host's (push/send.rs,
// push/scripts.rs for the registration methods).
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
  // The host's answer to the script's callbacks: an error without an `error` callback is logged and
  // fails the request.
  function answer(c, doing) {
    return function (err, result) {
      if (err) {
        if (c.error) return c.error(err);
        L.log('error', 'Error ' + doing + ': ' + err.message);
        return L.internalError(err);
      }
      if (c.success) c.success(result);
    };
  }
  function sender(platform) {
    return function (tags, payload, options, callbacks) {
      if (callbacks === undefined && callbacksOf(options)) { callbacks = options; options = undefined; }
      var c = callbacksOf(callbacks) || {};
      var opts = optionsOf([options, callbacks]);
      L.hostCall('push.send', { platform: platform, tags: tags === undefined ? null : tags, payload: payload === undefined ? null : payload, options: opts }, answer(c, 'sending push notification'));
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
  // Registration management (Notification Hubs' methods, on the tenant's stored registrations): the
  // last argument is the callback (function(err, result) or {success, error}); options before it
  // ({top, skip}, templateName) are optional.
  function registrations(fixed, build) {
    return function () {
      var args = Array.prototype.slice.call(arguments);
      var c = args.length && callbacksOf(args[args.length - 1]) ? callbacksOf(args.pop()) : {};
      var action;
      try { action = build.apply(null, [optionsOf(args.slice(fixed))].concat(args.slice(0, fixed))); } catch (e) { action = null; }
      L.hostCall('push.registrations', { action: action }, answer(c, 'managing push registrations'));
    };
  }
  function list(o, extra) {
    var a = { kind: 'list', top: typeof o.top === 'number' ? o.top : null, skip: typeof o.skip === 'number' ? o.skip : null };
    Object.keys(extra || {}).forEach(function (k) { a[k] = extra[k]; });
    return a;
  }
  function platformMethods(platform, byHandle) {
    var out = {
      send: sender(platform),
      createNativeRegistration: registrations(2, function (o, handle, tags) { return { kind: 'create', platform: platform, handle: handle, tags: tags === undefined ? null : tags, template: null, template_name: null }; }),
      createTemplateRegistration: registrations(3, function (o, handle, tags, template) {
        return { kind: 'create', platform: platform, handle: handle, tags: tags === undefined ? null : tags, template: template === undefined ? null : template, template_name: typeof o.templateName === 'string' ? o.templateName : null };
      }),
    };
    out[byHandle] = registrations(1, function (o, handle) { return list(o, { platform: platform, handle: String(handle) }); });
    return out;
  }
  var push = {
    send: sender('template'),
    createRegistrationId: registrations(0, function () { return { kind: 'create_id' }; }),
    getRegistration: registrations(1, function (o, id) { return { kind: 'get', id: String(id) }; }),
    deleteRegistration: registrations(1, function (o, id) { return { kind: 'delete', id: String(id) }; }),
    createOrUpdateRegistration: registrations(1, function (o, r) { return { kind: 'put', registration: r, create: true }; }),
    updateRegistration: registrations(1, function (o, r) { return { kind: 'put', registration: r, create: false }; }),
    listRegistrations: registrations(0, function (o) { return list(o); }),
    listRegistrationsByTag: registrations(1, function (o, tag) { return list(o, { tag: String(tag) }); }),
    webpush: platformMethods('webpush', 'listRegistrationsByEndpoint'),
    gcm: platformMethods('gcm', 'listRegistrationsByGcmRegistrationId'),
    apns: platformMethods('apns', 'listRegistrationsByToken'),
    wns: windows('wns', wnsNames),
    mpns: windows('mpns', ['send', 'sendToast', 'sendTile', 'sendFlipTile', 'sendRaw']),
  };
  g.push = push;
})(globalThis);
