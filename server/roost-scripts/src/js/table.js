// Table scripts (protocol §6.3, §6.4): the `request` object with execute/respond, held responses and
// the misuse errors; jobs (§6.11) and startup (§6.12) entries.
(function (g) {
  'use strict';
  var L = __roost_lib;

  // `user` (§5.6): its identities (the provider's key → userId, the provider's claims and access
  // token, which the host opened from the token's credentials claim) only through getIdentities.
  function user(u) {
    var o = { level: u.level };
    if (u.userId !== undefined && u.userId !== null) o.userId = u.userId;
    var identities = u.identities === undefined ? null : u.identities;
    Object.defineProperty(o, 'getIdentities', {
      enumerable: false,
      value: function (options) {
        var copy = identities === null ? null : JSON.parse(JSON.stringify(identities));
        if (options && typeof options === 'object' && typeof options.success === 'function') return options.success(copy);
        L.log('warning', 'The synchronous and callback forms of getIdentities are deprecated; pass {success, error}.');
        if (typeof options === 'function') return options(null, copy);
        return copy;
      }
    });
    return o;
  }
  L.user = user;

  function errorResponse(err) {
    var body = err.__body;
    if (body === undefined) body = { code: err.statusCode || 500, error: 'Error: ' + err.message };
    return { status: err.statusCode || 500, json: body };
  }

  function enterTable(input) {
    var op = input.operation, entryName = op;
    var entry = g[entryName];
    if (typeof entry !== 'function') throw new Error("The script does not define a function named '" + entryName + "'.");
    var tableName = input.table;
    g.tables.current = new L.Table(tableName);
    var conflictAllowed = (op === 'update' || op === 'del') && input.versioned;
    var st = { executed: false, reexecute: false, responded: false, held: null, releaseWhenDone: false };
    var request = {
      operation: op,
      parameters: input.parameters || {},
      systemProperties: input.systemProperties || [],
      includeDeleted: !!input.includeDeleted,
      undelete: !!input.undelete
    };
    var first, query = null, item = null, results = null;
    if (op === 'read') {
      query = new L.Query(tableName);
      var q = input.query;
      if (q.filter) query._filters.push(q.filter);
      query._ordering = q.ordering.map(function (o) { return { name: o[0], ascending: o[1] }; });
      query._selections = q.selections || [];
      query._skip = q.skip;
      query._take = q.take;
      query._includeTotalCount = !!q.includeTotalCount;
      if (q.id !== undefined && q.id !== null) query.id = q.id;
      first = query;
    } else if (op === 'del') {
      first = input.id;
    } else {
      item = input.item;
      first = item;
    }

    function successResponse() {
      switch (op) {
        case 'insert': return { status: 201, json: item };
        case 'update': return { status: 200, json: item };
        case 'del': return { status: 204 };
        case 'read':
          if (query.id !== undefined) {
            if (results.length > 1) throw new Error('Cannot return more than one item for a query by id.');
            if (results.length === 0) return { status: 404, json: { code: 404, error: "Error: An item with id '" + query.id + "' does not exist." } };
            return { status: 200, json: results[0] };
          }
          if (query._includeTotalCount) return { status: 200, json: { results: Array.prototype.slice.call(results), count: results.totalCount } };
          return { status: 200, json: Array.prototype.slice.call(results) };
      }
    }
    function release(make) {
      try {
        L.write(make());
      } catch (e) {
        L.internalError(e);
      }
    }

    request.execute = function (options) {
      if (st.responded) throw new Error('Execute cannot be called after respond has been called.');
      if (st.executed && !st.reexecute) throw new Error('Execute cannot be called more than once.');
      options = L.checkOptions(options, conflictAllowed, op === 'read' && input.softDelete, 'execute');
      st.executed = true;
      st.reexecute = false;
      st.held = null;
      var args = {
        operation: op,
        systemProperties: options && options.systemProperties ? L.normalizeSystemProperties(options.systemProperties) : request.systemProperties,
        includeDeleted: options && options.includeDeleted !== undefined ? options.includeDeleted : request.includeDeleted
      };
      if (op === 'read') { args.query = L.queryArgs(query); args.id = query.id; }
      else if (op === 'del') { args.id = first; args.version = st.version === undefined ? input.version : st.version; }
      else { args.item = item; }
      L.hostCall('execute', args, function (err, res) {
        if (err) {
          if (err.statusCode === 412 && options && options.conflict) {
            var server = err.__body;
            if (item) item.__version = server && server.__version;
            else st.version = server && server.__version;
            st.reexecute = true;
            st.held = function () { return errorResponse(err); };
            return options.conflict(server);
          }
          if (options && options.error) {
            st.held = function () { return errorResponse(err); };
            return options.error(err);
          }
          return release(function () { return errorResponse(err); });
        }
        if (op === 'read') {
          results = res.results;
          if (res.count !== undefined && res.count !== null) results.totalCount = res.count;
          var projected = L.project(query, results);
          results = projected;
        } else if (item) {
          Object.keys(res).forEach(function (k) { item[k] = res[k]; });
        }
        if (options && options.success) {
          st.held = successResponse;
          if (st.releaseWhenDone) { st.releaseWhenDone = false; return release(successResponse); }
          return op === 'read' ? options.success(results) : options.success();
        }
        release(successResponse);
      });
    };

    request.respond = function (status, body) {
      if (st.responded) throw new Error('Respond cannot be called more than once.');
      if (arguments.length === 0) {
        if (!st.executed) throw new Error('Execute must be called before respond.');
        st.responded = true;
        if (st.held) return release(st.held);
        st.releaseWhenDone = true;
        return;
      }
      if (arguments.length === 1 && status instanceof Error) {
        st.responded = true;
        var json = JSON.parse(JSON.stringify(status));
        return L.write({ status: status.statusCode || 500, json: json });
      }
      if (typeof status !== 'number' || status % 1 !== 0 || status < 100 || status > 599) {
        throw new Error('Invalid parameters passed to respond. The first parameter must be a valid status code.');
      }
      st.responded = true;
      var resp = { status: status };
      if (body !== undefined) resp.json = body === null ? null : JSON.parse(JSON.stringify(body));
      L.write(resp);
    };

    entry.apply(null, [first, user(input.user), request]);
  }

  function enterJob(name) {
    var entry = g[name];
    if (typeof entry !== 'function') throw new Error("The script does not define a function named '" + name + "'.");
    entry.apply(null, []);
  }

  function enterStartup() {
    var m = L.module;
    if (!m || typeof m.startup !== 'function') {
      L.write({ status: 200 });
      return;
    }
    var context = { tables: g.tables, push: g.push, mssql: g.mssql, config: L.config.config };
    var called = false;
    m.startup(context, function done(err) {
      if (called) return;
      called = true;
      if (err) L.log('error', "'startup' of 'startup.js' failed with error: " + L.format(err));
      L.write({ status: err ? 500 : 200 });
    });
  }

  // extensions/push.js (§6.12): `register(registration, context, done)` may edit the registration;
  // done() saves it as left, done(error) fails the PUT with 500.
  function enterPushRegister(input) {
    var m = L.module;
    var registration = input.registration;
    if (!m || typeof m.register !== 'function') return L.write({ status: 200, json: registration });
    var context = { user: user(input.user), tables: g.tables, push: g.push, mssql: g.mssql };
    var called = false;
    m.register(registration, context, function done(err) {
      if (called) return;
      called = true;
      if (err) {
        L.log('error', 'Registration script failed with error-' + L.format(err));
        return L.write({ status: 500, json: { code: 500, error: 'Error: Internal Server Error' } });
      }
      L.write({ status: 200, json: JSON.parse(JSON.stringify(registration === undefined ? null : registration)) });
    });
  }

  __roost_entry('__roost_enter', function (kind, inputJson) {
    var input = JSON.parse(inputJson, L.revive);
    L.current.source = input.source || L.current.source;
    if (kind === 'table') return enterTable(input);
    if (kind === 'api') return L.enterApi(input);
    if (kind.indexOf('job:') === 0) return enterJob(kind.slice(4));
    if (kind === 'startup') return enterStartup();
    if (kind === 'push.register') return enterPushRegister(input);
    throw new Error('Unknown script entry ' + kind);
  });
})(globalThis);
