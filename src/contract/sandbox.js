// The sandbox bootstrap: evaluated once per contract runtime, before the contract's module.
// It receives the host's native functions, hardens the realm and returns the exports of the
// built-in modules. Nothing here is reachable by the contract except those exports.
//
// Hardening, in order:
//  1. code generation from strings is gone: `eval`, `Function` and the constructors of
//     async, generator and async-generator functions (reachable as `.constructor`) throw;
//     `WebAssembly`, `Atomics`, `WeakRef` and `FinalizationRegistry` are removed;
//  2. determinism: `Math.random()`, `Date.now()`, `Date()` and argument-less `new Date()` ask
//     the host first, which refuses them inside `apply`;
//  3. a few inherited properties (`constructor`, `toString`, `name`, `message`, ...) become
//     accessors so that assigning them on an object still works once prototypes are frozen;
//  4. every intrinsic reachable from the global object, and the built-in module exports, is
//     frozen: a contract cannot pollute a prototype for a later call.
(function (natives) {
  'use strict';
  const G = globalThis;
  const O = Object;
  const freeze = O.freeze;
  const getOwnPropertyDescriptor = O.getOwnPropertyDescriptor;
  const defineProperty = O.defineProperty;
  const getPrototypeOf = O.getPrototypeOf;
  const objectKeys = O.keys;
  const objectIs = O.is;
  const hasOwn = O.hasOwn;
  const apply = Reflect.apply;
  const construct = Reflect.construct;
  const ownKeys = Reflect.ownKeys;
  const ErrorC = Error;
  const TypeErrorC = TypeError;
  const PromiseC = Promise;
  const promiseResolve = PromiseC.resolve;
  const promiseReject = PromiseC.reject;
  const StringC = String;
  const isArray = Array.isArray;
  const isView = ArrayBuffer.isView;
  const objectToString = O.prototype.toString;
  const propertyIsEnumerable = O.prototype.propertyIsEnumerable;
  const getOwnPropertySymbols = O.getOwnPropertySymbols;
  const ProxyC = Proxy;
  const SetC = Set;
  const setHas = Set.prototype.has;
  const setAdd = Set.prototype.add;
  const dateGetTime = Date.prototype.getTime;
  const regexpSource = getOwnPropertyDescriptor(RegExp.prototype, 'source').get;
  const regexpFlags = getOwnPropertyDescriptor(RegExp.prototype, 'flags').get;
  const mapProto = Map.prototype;
  const setProto = Set.prototype;
  const mapSize = getOwnPropertyDescriptor(mapProto, 'size').get;
  const setSize = getOwnPropertyDescriptor(setProto, 'size').get;
  const mapGet = mapProto.get;
  const mapHas = mapProto.has;
  const mapEntries = mapProto.entries;
  const setValues = setProto.values;
  const functionToString = Function.prototype.toString;

  // 1. No code generation from strings.
  const functionProtos = [
    [getPrototypeOf(function () {}), 'Function'],
    [getPrototypeOf(async function () {}), 'AsyncFunction'],
    [getPrototypeOf(function* () {}), 'GeneratorFunction'],
    [getPrototypeOf(async function* () {}), 'AsyncGeneratorFunction'],
  ];
  for (const [proto, name] of functionProtos) {
    const refused = function () {
      throw new TypeErrorC(name + ' constructor is not available in a contract: code generation from strings is disabled');
    };
    defineProperty(refused, 'name', { value: name });
    defineProperty(refused, 'prototype', { value: proto, writable: false });
    defineProperty(proto, 'constructor', { value: refused, writable: false, configurable: true });
  }
  for (const name of ['eval', 'Function', 'WebAssembly', 'Atomics', 'WeakRef', 'FinalizationRegistry']) {
    delete G[name];
  }

  // 2. Determinism inside apply().
  const nondeterministic = natives.nondeterministic;
  const mathRandom = Math.random;
  defineProperty(Math, 'random', {
    value: function random() { nondeterministic('Math.random()'); return apply(mathRandom, Math, []); },
    writable: true, configurable: true,
  });
  const DateC = Date;
  const dateNow = DateC.now;
  defineProperty(DateC, 'now', {
    value: function now() { nondeterministic('Date.now()'); return apply(dateNow, DateC, []); },
    writable: true, configurable: true,
  });
  const SafeDate = new ProxyC(DateC, freeze({
    apply(target, thisArg, args) {
      nondeterministic('Date()');
      return apply(target, thisArg, args);
    },
    construct(target, args, newTarget) {
      if (args.length === 0) nondeterministic('new Date()');
      return construct(target, args, newTarget === SafeDate ? target : newTarget);
    },
  }));
  defineProperty(DateC.prototype, 'constructor', { value: SafeDate, writable: true, configurable: true });
  defineProperty(G, 'Date', { value: SafeDate, writable: true, configurable: true });

  // 3. Assignments that would hit a frozen inherited property define an own one instead.
  function enableOverride(obj, prop) {
    const d = getOwnPropertyDescriptor(obj, prop);
    if (!d || !('value' in d) || !d.configurable) return;
    const value = d.value;
    defineProperty(obj, prop, {
      get: function () { return value; },
      set: function (v) {
        if (this === obj) {
          throw new TypeErrorC("Cannot assign to read only property '" + StringC(prop) + "' of a built-in object");
        }
        defineProperty(this, prop, { value: v, writable: true, enumerable: true, configurable: true });
      },
      enumerable: d.enumerable,
      configurable: false,
    });
  }
  const overridable = [
    [O.prototype, ['constructor', 'toString', 'valueOf', 'toLocaleString', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable']],
    [Array.prototype, ['constructor', 'toString', 'toLocaleString']],
    [getPrototypeOf(function () {}), ['constructor', 'toString']],
    [PromiseC.prototype, ['constructor']],
    [ErrorC.prototype, ['constructor', 'name', 'message', 'toString']],
  ];
  for (const E of [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError, G.AggregateError, G.InternalError]) {
    if (typeof E === 'function') overridable.push([E.prototype, ['constructor', 'name', 'message']]);
  }
  for (const [obj, props] of overridable) {
    for (const p of props) enableOverride(obj, p);
  }

  // The built-in modules.
  function hostCall(fn, a, b) {
    try {
      return apply(promiseResolve, PromiseC, [fn(a, b)]);
    } catch (e) {
      return apply(promiseReject, PromiseC, [e]);
    }
  }
  const indexGet = natives.indexGet;
  const indexList = natives.indexList;
  const oplogLength = natives.oplogLength;
  const oplogGet = natives.oplogGet;
  const listOplogKeys = natives.listOplogs;
  class ContractIndex {
    constructor(pubkey) { this.pubkey = pubkey; }
    list(prefix, opts) { return hostCall(indexList, prefix, opts); }
    get(path) { return hostCall(indexGet, path); }
  }
  class ContractOplog {
    constructor(pubkey) { this.pubkey = pubkey; freeze(this); }
    getLength() { return hostCall(oplogLength, this.pubkey); }
    get(seq) { return hostCall(oplogGet, this.pubkey, seq); }
  }
  const local = natives.localOplog();
  const contract = {
    index: freeze(new ContractIndex(natives.indexPubkey())),
    oplog: typeof local === 'string' ? new ContractOplog(local) : undefined,
    isWriter: typeof local === 'string',
    listOplogs: function listOplogs() {
      const keys = listOplogKeys();
      const out = [];
      for (let i = 0; i < keys.length; i++) out[i] = new ContractOplog(keys[i]);
      return out;
    },
  };

  const nativeGenUUID = natives.genUUID;
  const util = { genUUID: function genUUID() { return nativeGenUUID(); } };

  // assert: Node's strict assert (what JS Vitra 0.1.3 used), failures thrown as plain Errors
  // (as they crossed 0.1.3's sandbox boundary), so acks read "Error: <message>".
  function inspect(v, depth) {
    depth = depth || 0;
    if (typeof v === 'string') return "'" + v + "'";
    if (typeof v === 'number') return objectIs(v, -0) ? '-0' : StringC(v);
    if (typeof v === 'bigint') return StringC(v) + 'n';
    if (typeof v === 'symbol') return apply(Symbol.prototype.toString, v, []);
    if (typeof v === 'function') return '[Function: ' + (v.name || '(anonymous)') + ']';
    if (v === null || typeof v !== 'object') return StringC(v);
    if (depth > 1) return isArray(v) ? '[Array]' : '[Object]';
    if (isArray(v)) {
      const parts = [];
      for (let i = 0; i < v.length; i++) parts[i] = inspect(v[i], depth + 1);
      return parts.length ? '[ ' + parts.join(', ') + ' ]' : '[]';
    }
    const keys = objectKeys(v);
    const parts = [];
    for (let i = 0; i < keys.length; i++) parts[i] = keys[i] + ': ' + inspect(v[keys[i]], depth + 1);
    return parts.length ? '{ ' + parts.join(', ') + ' }' : '{}';
  }
  function raise(message, generated) {
    if (message instanceof ErrorC) throw message;
    throw new ErrorC(message === undefined ? generated : StringC(message));
  }
  function tag(v) { return apply(objectToString, v, []); }
  function enumerableSymbols(o) {
    const all = getOwnPropertySymbols(o);
    const out = [];
    for (let i = 0; i < all.length; i++) if (apply(propertyIsEnumerable, o, [all[i]])) out.push(all[i]);
    return out;
  }
  function deepStrict(a, b, memo) {
    if (objectIs(a, b)) return true;
    if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
    if (getPrototypeOf(a) !== getPrototypeOf(b)) return false;
    if (tag(a) !== tag(b)) return false;
    for (let i = 0; i < memo.length; i++) {
      if (memo[i][0] === a && memo[i][1] === b) return true;
    }
    memo.push([a, b]);
    try {
      const t = tag(a);
      if (t === '[object Date]') {
        if (!objectIs(apply(dateGetTime, a, []), apply(dateGetTime, b, []))) return false;
      } else if (t === '[object RegExp]') {
        if (apply(regexpSource, a, []) !== apply(regexpSource, b, []) || apply(regexpFlags, a, []) !== apply(regexpFlags, b, [])) return false;
      } else if (a instanceof ErrorC) {
        if (a.message !== b.message || a.name !== b.name) return false;
      } else if (isView(a)) {
        if (a.byteLength !== b.byteLength) return false;
        const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
        const ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
        for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
      } else if (t === '[object Map]') {
        if (apply(mapSize, a, []) !== apply(mapSize, b, [])) return false;
        for (const [k, v] of apply(mapEntries, a, [])) {
          if (!apply(mapHas, b, [k]) || !deepStrict(v, apply(mapGet, b, [k]), memo)) return false;
        }
      } else if (t === '[object Set]') {
        if (apply(setSize, a, []) !== apply(setSize, b, [])) return false;
        const rest = [];
        for (const v of apply(setValues, b, [])) rest.push(v);
        for (const v of apply(setValues, a, [])) {
          let found = -1;
          for (let i = 0; i < rest.length; i++) if (deepStrict(v, rest[i], memo)) { found = i; break; }
          if (found < 0) return false;
          rest.splice(found, 1);
        }
      } else if (t === '[object Number]' || t === '[object String]' || t === '[object Boolean]') {
        if (!objectIs(a.valueOf(), b.valueOf())) return false;
      }
      if (isArray(a) && a.length !== b.length) return false;
      const ka = objectKeys(a);
      const kb = objectKeys(b);
      if (ka.length !== kb.length) return false;
      for (let i = 0; i < ka.length; i++) {
        if (!hasOwn(b, ka[i])) return false;
        if (!deepStrict(a[ka[i]], b[ka[i]], memo)) return false;
      }
      const sa = enumerableSymbols(a);
      const sb = enumerableSymbols(b);
      if (sa.length !== sb.length) return false;
      for (let i = 0; i < sa.length; i++) {
        if (!apply(propertyIsEnumerable, b, [sa[i]])) return false;
        if (!deepStrict(a[sa[i]], b[sa[i]], memo)) return false;
      }
      return true;
    } finally {
      memo.pop();
    }
  }
  function ok(value, message) {
    if (!value) {
      if (arguments.length === 0) raise(undefined, 'No value argument passed to `assert.ok()`');
      raise(message, inspect(value) + ' == true');
    }
  }
  const assert = {
    default: ok,
    ok: ok,
    equal: function equal(actual, expected, message) {
      if (!objectIs(actual, expected)) {
        raise(message, 'Expected values to be strictly equal:\n\n' + inspect(actual) + ' !== ' + inspect(expected) + '\n');
      }
    },
    notEqual: function notEqual(actual, expected, message) {
      if (objectIs(actual, expected)) {
        raise(message, 'Expected "actual" to be strictly unequal to: ' + inspect(expected));
      }
    },
    deepEqual: function deepEqual(actual, expected, message) {
      if (!deepStrict(actual, expected, [])) {
        raise(message, 'Expected values to be strictly deep-equal:\n' + inspect(actual) + '\n\nshould equal\n\n' + inspect(expected));
      }
    },
    notDeepEqual: function notDeepEqual(actual, expected, message) {
      if (deepStrict(actual, expected, [])) {
        raise(message, 'Expected "actual" not to be strictly deep-equal to: ' + inspect(expected));
      }
    },
    fail: function fail(message) {
      raise(message, 'Failed');
    },
  };

  // The transactor passed to apply(): one object, bound by the host to the running apply.
  const txGet = natives.txGet;
  const txPut = natives.txPut;
  const txDelete = natives.txDelete;
  const txSystem = natives.txSystem;
  const tx = {
    get: function get(key) { return txGet(key); },
    put: function put(key, value) { txPut(key, value); },
    delete: function del(key) { txDelete(key); },
    addOplog: function addOplog(opts) { txSystem('addOplog', opts == null ? undefined : opts.pubkey); },
    removeOplog: function removeOplog(opts) { txSystem('removeOplog', opts == null ? undefined : opts.pubkey); },
    setContractSource: function setContractSource(opts) { txSystem('setContractSource', opts == null ? undefined : opts.code); },
  };

  // 4. Freeze everything reachable from the global object and the module exports.
  const seen = new SetC();
  apply(setAdd, seen, [G]); // the global object itself stays extensible
  function harden(root) {
    const todo = [root];
    while (todo.length > 0) {
      const o = todo.pop();
      if ((typeof o !== 'object' && typeof o !== 'function') || o === null) continue;
      if (apply(setHas, seen, [o])) continue;
      apply(setAdd, seen, [o]);
      freeze(o);
      todo.push(getPrototypeOf(o));
      const keys = ownKeys(o);
      for (let i = 0; i < keys.length; i++) {
        const d = getOwnPropertyDescriptor(o, keys[i]);
        if (!d) continue;
        if ('value' in d) todo.push(d.value);
        else { todo.push(d.get); todo.push(d.set); }
      }
    }
  }
  const globalNames = ownKeys(G);
  for (let i = 0; i < globalNames.length; i++) {
    const name = globalNames[i];
    const d = getOwnPropertyDescriptor(G, name);
    if ('value' in d) harden(d.value);
    if (d.configurable) {
      if ('value' in d) defineProperty(G, name, { writable: false, configurable: false });
      else defineProperty(G, name, { configurable: false });
    }
  }
  const modules = { contract, assert, util };
  harden(modules);
  harden(tx);
  harden(natives.emit);
  return freeze({ modules, tx, dateGetTime, functionToString });
})
