// The query object (protocol §6.5, queryjs) and the `tables` global with its table objects (§6.6).
(function (g) {
  'use strict';
  var L = __roost_lib;

  // An OData literal of a JavaScript value (§3.7: strings quoted with '' doubling, dates as datetime'…').
  function literal(v) {
    if (v === null || v === undefined) return 'null';
    if (v instanceof Date) return "datetime'" + v.toISOString() + "'";
    switch (typeof v) {
      case 'string': return "'" + v.replace(/'/g, "''") + "'";
      case 'number': return isFinite(v) ? String(v) : 'null';
      case 'boolean': return String(v);
    }
    throw new Error("The value '" + String(v) + "' cannot be used in a query.");
  }
  L.literal = literal;
  function predicateArg(v) {
    if (v instanceof Date) return { $date: v.toISOString() };
    if (Array.isArray(v)) return v.map(predicateArg);
    return v;
  }

  function Query(tableName, context) {
    this._table = tableName;
    this._context = context;
    this._filters = [];
    this._selections = [];
    this._projection = null;
    this._ordering = [];
    this._skip = null;
    this._take = null;
    this._includeTotalCount = false;
    this._version = 0;
  }
  Query.prototype.where = function (cond) {
    var args = Array.prototype.slice.call(arguments, 1), text;
    if (typeof cond === 'function') {
      text = L.R.translate(cond.toString(), JSON.stringify(args.map(predicateArg)));
    } else if (typeof cond === 'string') {
      var i = 0;
      text = '(' + cond.replace(/\?/g, function () { return literal(args[i++]); }) + ')';
    } else if (cond && typeof cond === 'object') {
      var parts = Object.keys(cond).map(function (k) { return '(' + k + ' eq ' + literal(cond[k]) + ')'; });
      if (parts.length === 0) return this;
      text = parts.length === 1 ? parts[0] : '(' + parts.join(' and ') + ')';
    } else {
      throw new Error('Expected a predicate function, an OData string or an object in the call to where.');
    }
    this._filters.push(text);
    this._version++;
    return this;
  };
  Query.prototype.select = function (p) {
    if (typeof p === 'function') {
      this._projection = p;
    } else {
      var self = this;
      Array.prototype.forEach.call(arguments, function (a) {
        if (typeof a !== 'string') throw new Error('Expected a string or a function in the call to select.');
        a.split(',').forEach(function (n) { n = n.trim(); if (n) self._selections.push(n); });
      });
    }
    this._version++;
    return this;
  };
  function order(asc) {
    return function () {
      var self = this;
      Array.prototype.forEach.call(arguments, function (a) {
        if (typeof a !== 'string') throw new Error('Expected a string in the call to ' + (asc ? 'orderBy' : 'orderByDescending') + '.');
        self._ordering.push({ name: a, ascending: asc });
      });
      this._version++;
      return this;
    };
  }
  Query.prototype.orderBy = order(true);
  Query.prototype.orderByDescending = order(false);
  Query.prototype.skip = function (n) {
    if (typeof n !== 'number' || n < 0 || n % 1) throw new Error('Expected a non-negative integer in the call to skip.');
    this._skip = n; this._version++; return this;
  };
  Query.prototype.take = function (n) {
    if (typeof n !== 'number' || n < 0 || n % 1) throw new Error('Expected a non-negative integer in the call to take.');
    this._take = n; this._version++; return this;
  };
  Query.prototype.includeTotalCount = function () { this._includeTotalCount = true; this._version++; return this; };
  Query.prototype.getComponents = function () {
    return {
      // Each filter is a unit: a client's `a or b` must never bind to a script's `and owner eq …`.
      filters: this._filters.length ? '(' + this._filters.map(function (f) { return '(' + f + ')'; }).join(' and ') + ')' : null,
      selections: this._selections.slice(),
      projection: this._projection,
      ordering: this._ordering.map(function (o) { return { name: o.name, ascending: o.ascending }; }),
      skip: this._skip,
      take: this._take,
      table: this._table,
      context: this._context,
      includeTotalCount: this._includeTotalCount,
      version: this._version
    };
  };
  Query.prototype.setComponents = function (c) {
    this._filters = c.filters ? [c.filters] : [];
    this._selections = (c.selections || []).slice();
    this._projection = c.projection || null;
    this._ordering = (c.ordering || []).slice();
    this._skip = c.skip === undefined ? null : c.skip;
    this._take = c.take === undefined ? null : c.take;
    this._table = c.table || this._table;
    this._context = c.context;
    this._includeTotalCount = !!c.includeTotalCount;
    this._version++;
    return this;
  };
  Query.prototype.toOData = function () {
    var c = this.getComponents(), q = [];
    if (c.filters) q.push('$filter=' + c.filters);
    if (c.ordering.length) q.push('$orderby=' + c.ordering.map(function (o) { return o.name + (o.ascending ? '' : ' desc'); }).join(','));
    if (c.skip) q.push('$skip=' + c.skip);
    if (c.take !== null) q.push('$top=' + c.take);
    if (c.selections.length) q.push('$select=' + c.selections.join(','));
    if (c.includeTotalCount) q.push('$inlinecount=allpages');
    return '/' + c.table + (q.length ? '?' + q.join('&') : '');
  };
  // What the host runs: filters, ordering, paging, selection.
  L.queryArgs = function (q) {
    return {
      filters: q._filters.slice(),
      ordering: q._ordering.map(function (o) { return [o.name, o.ascending]; }),
      selections: q._selections.slice(),
      skip: q._skip,
      take: q._take,
      includeTotalCount: q._includeTotalCount
    };
  };
  // `select(function)` runs on each row afterwards (`this` is the row).
  L.project = function (q, rows) {
    if (!q._projection) return rows;
    var out = rows.map(function (r) { return q._projection.call(r); });
    if (rows.totalCount !== undefined) out.totalCount = rows.totalCount;
    return out;
  };
  L.Query = Query;

  // ---- options of table operations (§6.4, §6.6) ----
  L.normalizeSystemProperties = function (list) {
    return list.map(function (p) {
      var s = String(p).toLowerCase().replace(/^__/, '');
      return { createdat: 'createdAt', updatedat: 'updatedAt', version: 'version', deleted: 'deleted', '*': '*' }[s] || String(p);
    });
  };
  L.checkOptions = function (options, allowConflict, allowIncludeDeleted, where) {
    if (options === undefined || options === null) return null;
    var message = "Invalid callback options passed to '" + where + "'. Callback options must be an object with at least one " +
      (allowConflict ? "'success', 'error' or 'conflict'" : "'success' or 'error'") +
      " property of type 'function' or a systemProperties property of type 'Array'.";
    if (typeof options !== 'object' || Array.isArray(options)) throw new Error(message);
    var useful = false;
    Object.keys(options).forEach(function (k) {
      var v = options[k];
      if (k === 'success' || k === 'error' || (k === 'conflict' && allowConflict)) {
        if (typeof v !== 'function') throw new Error(message);
        useful = true;
      } else if (k === 'systemProperties') {
        if (!Array.isArray(v)) throw new Error(message);
        useful = true;
      } else if (k === 'includeDeleted' && allowIncludeDeleted) {
        if (typeof v !== 'boolean') throw new Error(message);
        useful = true;
      } else {
        throw new Error(message);
      }
    });
    if (!useful) throw new Error(message);
    return options;
  };

  // ---- tables (§6.6): no permissions, no scripts, no default $top, no cap ----
  function failed(op, table, what) { return new Error("Operation '" + op + "' on table '" + table + "' failed. " + what); }
  function finish(options, err, value) {
    if (err) {
      if (options && options.error) return options.error(err);
      // §6.6: an error without an error callback fails the current request with 500.
      return L.internalError(err);
    }
    if (options && options.success) options.success(value);
  }
  function Table(name, info) {
    this._name = name;
    this._info = info || {};
  }
  function notNull(args) {
    for (var i = 0; i < args.length; i++) if (args[i] === null || args[i] === undefined) throw new Error('Arguments to table operations cannot be null or undefined.');
  }
  Table.prototype.getTableName = function () { return this._name; };
  Table.prototype.read = function (query, options) {
    if (!(query instanceof Query)) { options = query; query = new Query(this._name); }
    if (query._table.toLowerCase() !== this._name.toLowerCase()) {
      throw new Error("Cannot get the results of a query for table '" + query._table + "' via table '" + this._name + "'.");
    }
    options = L.checkOptions(options, false, true, 'read');
    var args = L.queryArgs(query);
    args.table = this._name;
    args.systemProperties = options && options.systemProperties ? L.normalizeSystemProperties(options.systemProperties) : [];
    args.includeDeleted = !!(options && options.includeDeleted);
    L.hostCall('table.read', args, function (err, res) {
      if (err) return finish(options, err);
      var rows = res.results;
      if (res.count !== undefined && res.count !== null) rows.totalCount = res.count;
      finish(options, null, L.project(query, rows));
    });
  };
  Table.prototype.insert = function (item, options) {
    notNull([item]);
    if (typeof item !== 'object' || Array.isArray(item)) throw failed('insert', this._name, "The parameter 'item' must be an object.");
    options = L.checkOptions(options, false, false, 'insert');
    L.hostCall('table.insert', { table: this._name, item: item, systemProperties: sys(options) }, function (err, res) {
      if (!err) Object.keys(res).forEach(function (k) { item[k] = res[k]; });
      finish(options, err, item);
    });
  };
  function sys(options) { return options && options.systemProperties ? L.normalizeSystemProperties(options.systemProperties) : []; }
  Table.prototype.update = function (item, options) {
    notNull([item]);
    if (typeof item !== 'object' || Array.isArray(item) || item.id === undefined || item.id === null) {
      throw failed('update', this._name, "The parameter 'item' must be an object with an 'id' property.");
    }
    options = L.checkOptions(options, true, false, 'update');
    var self = this;
    L.hostCall('table.update', { table: this._name, item: item, systemProperties: sys(options) }, function (err, res) {
      if (err && err.statusCode === 412 && options && options.conflict) {
        item.__version = err.__body && err.__body.__version;
        return options.conflict(err.__body);
      }
      if (!err) Object.keys(res).forEach(function (k) { item[k] = res[k]; });
      finish(options, err, item);
    });
    return self;
  };
  Table.prototype.del = function (itemOrId, options) {
    notNull([itemOrId]);
    var id = itemOrId, version = null;
    if (typeof itemOrId === 'object') {
      if (itemOrId.id === undefined || itemOrId.id === null) throw failed('del', this._name, "The parameter 'item' must be an object with an 'id' property.");
      id = itemOrId.id;
      version = itemOrId.__version || null;
    }
    if (typeof id !== 'string' && typeof id !== 'number') throw failed('del', this._name, 'The id argument is invalid.');
    options = L.checkOptions(options, true, false, 'del');
    L.hostCall('table.del', { table: this._name, id: id, version: version }, function (err) {
      if (err && err.statusCode === 412 && options && options.conflict) return options.conflict(err.__body);
      finish(options, err, null);
    });
  };
  Table.prototype.lookup = function (id, options) {
    notNull([id]);
    if (typeof id !== 'string' && typeof id !== 'number') throw failed('lookup', this._name, 'The id argument is invalid.');
    options = L.checkOptions(options, false, false, 'lookup');
    L.hostCall('table.lookup', { table: this._name, id: id, systemProperties: sys(options) }, function (err, res) {
      finish(options, err, res);
    });
  };
  ['where', 'select', 'orderBy', 'orderByDescending', 'skip', 'take', 'includeTotalCount'].forEach(function (m) {
    Table.prototype[m] = function () {
      var q = new Query(this._name), table = this;
      q.read = function (options) { return table.read(q, options); };
      return q[m].apply(q, arguments);
    };
  });
  L.Table = Table;

  g.tables = {
    getTable: function (name) {
      if (typeof name !== 'string' || name.trim() === '') throw new Error('Table name cannot be null or empty.');
      return new Table(name);
    }
  };

  // ---- mssql (§6.7, R10): T-SQL subset rewritten by the host ----
  function sqlCall(op) {
    return function (sql, params, options) {
      if (typeof sql !== 'string' || sql.trim() === '') throw new Error('The sql statement must be a non-empty string.');
      if (options === undefined && params && typeof params === 'object' && !Array.isArray(params) && !(params instanceof Date) &&
          (typeof params.success === 'function' || typeof params.error === 'function')) {
        options = params;
        params = [];
      }
      if (params === undefined || params === null) params = [];
      if (!Array.isArray(params)) params = [params];
      var wire = params.map(function (p) {
        if (p instanceof Date) return { $date: p.toISOString() };
        if (p instanceof Uint8Array) return { $bytes: L.b64Encode(p) };
        return p;
      });
      L.hostCall('mssql.' + op, { sql: sql, params: wire }, function (err, sets) {
        if (err) {
          if (options && options.error) return options.error(err);
          L.log('error', 'Error occurred executing query: ' + err.message);
          return L.internalError(err);
        }
        if (!options || !options.success) return;
        // One call per result set; `more` tells whether another follows.
        sets.forEach(function (set, i) {
          var more = i < sets.length - 1;
          if (op === 'queryRaw') options.success({ meta: set.meta, rows: set.rows }, more);
          else options.success(set.rows, more);
        });
      });
    };
  }
  g.mssql = { query: sqlCall('query'), queryRaw: sqlCall('queryRaw') };

})(globalThis);
