// A Web Push receiver for Roost's push tests: a push service's part of RFC 8030 on 127.0.0.1, which
// checks each request as a push service does (VAPID per RFC 8292: the ES256 token verified with the
// key in `k=`, its `aud` the endpoint's origin, `exp` within 24 hours, a `sub`; `TTL` present;
// `Content-Encoding: aes128gcm`) and decrypts it (RFC 8291) with the subscription's private key
// using the npm package `http_ece`, so that the test reads what a browser would read.
//
//   node webpush.mjs '{"port":0}'   prints {"base":"http://127.0.0.1:PORT"}
//
// For tests:
//   POST /__test/subscribe {"behaviour"?: "ok" | "gone" | "flaky", "failures"?: n, "delayMs"?: n, "keys"?: {p256dh, auth}}
//        a subscription as a browser's PushManager gives it: {endpoint, keys: {p256dh, auth}}. With
//        `keys` (a page's own), messages are verified but not decrypted: each keeps its `record`
//        (base64url) for the page to decrypt.
//        `gone` answers 410 (the subscription expired); `flaky` answers 503 with `Retry-After: 1` to
//        its first `failures` requests; `delayMs` holds each answer that long.
//   GET  /__test/messages   every message accepted: [{subscription, payload, ttl, urgency, topic, at}]
//   GET  /__test/stats      requests by answer status, and refusals by reason
//   GET  /__test/count      {accepted, first, last}: messages accepted and when (ms), for benchmarks
//
// With {"sample": n} in the start argument (benchmarks), every n-th message is verified and
// decrypted and the others only counted, so that the receiver is not what a sender's speed measures.
import http from 'node:http';
import { createECDH, randomBytes } from 'node:crypto';
import * as jose from 'jose';
import ece from 'http_ece';

const config = JSON.parse(process.argv[2] || '{}');
const subscriptions = new Map(); // id -> {ecdh, auth, behaviour, failures, delayMs, seen}
const messages = [];
const counter = { accepted: 0, first: 0, last: 0 };
let arrivals = 0;
const stats = { byStatus: {}, refused: {} };
let origin = '';

const b64 = (buf) => Buffer.from(buf).toString('base64url');

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

function answer(res, status, text = '', headers = {}) {
  stats.byStatus[status] = (stats.byStatus[status] || 0) + 1;
  res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(text);
}

function refuse(res, status, reason) {
  stats.refused[reason] = (stats.refused[reason] || 0) + 1;
  answer(res, status, reason);
}

async function verifyVapid(req) {
  const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(req.headers.authorization || '');
  if (!m) return 'no vapid authorization';
  const raw = Buffer.from(m[2], 'base64url');
  if (raw.length !== 65 || raw[0] !== 4) return 'k is not a P-256 public key';
  const key = await jose.importJWK({ kty: 'EC', crv: 'P-256', x: b64(raw.subarray(1, 33)), y: b64(raw.subarray(33)) }, 'ES256');
  try {
    const { payload } = await jose.jwtVerify(m[1], key, { algorithms: ['ES256'], audience: origin });
    if (typeof payload.exp !== 'number' || payload.exp > Date.now() / 1000 + 24 * 3600) return 'exp is more than 24 hours ahead';
    if (!/^(mailto:|https:)/.test(payload.sub || '')) return 'sub is no contact';
  } catch (e) {
    return `the vapid token does not verify: ${e.code || e.message}`;
  }
  return null;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'POST' && url.pathname === '/__test/subscribe') {
    const o = JSON.parse((await body(req)).toString() || '{}');
    const id = randomBytes(12).toString('hex');
    const common = { behaviour: o.behaviour || 'ok', failures: o.failures ?? 2, delayMs: o.delayMs || 0, seen: 0 };
    res.writeHead(200, { 'content-type': 'application/json' });
    if (o.keys) {
      // A browser's own keys: the receiver cannot decrypt, and keeps each record for the page to.
      subscriptions.set(id, { ecdh: null, auth: null, ...common });
      return res.end(JSON.stringify({ endpoint: `${origin}/push/${id}`, keys: o.keys }));
    }
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const auth = randomBytes(16);
    subscriptions.set(id, { ecdh, auth, ...common });
    return res.end(JSON.stringify({ endpoint: `${origin}/push/${id}`, keys: { p256dh: b64(ecdh.getPublicKey()), auth: b64(auth) } }));
  }
  if (req.method === 'GET' && url.pathname === '/__test/messages') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(messages));
  }
  if (req.method === 'GET' && url.pathname === '/__test/count') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(counter));
  }
  if (req.method === 'GET' && url.pathname === '/__test/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(stats));
  }
  const m = /^\/push\/([0-9a-f]+)$/.exec(url.pathname);
  if (req.method !== 'POST' || !m) return refuse(res, 404, 'no such subscription');
  const sub = subscriptions.get(m[1]);
  const data = await body(req);
  if (!sub) return refuse(res, 404, 'no such subscription');
  arrivals += 1;
  if (config.sample && arrivals % config.sample !== 0) {
    if (!/^vapid t=/.test(req.headers.authorization || '') || req.headers['content-encoding'] !== 'aes128gcm') return refuse(res, 400, 'not a web push request');
    counter.accepted += 1;
    counter.first = counter.first || Date.now();
    counter.last = Date.now();
    return answer(res, 201);
  }
  const problem = await verifyVapid(req);
  if (problem) return refuse(res, 401, problem);
  if (!/^\d+$/.test(req.headers.ttl || '')) return refuse(res, 400, 'no TTL');
  if (req.headers['content-encoding'] !== 'aes128gcm') return refuse(res, 415, 'not aes128gcm');
  if (data.length > 4096) return refuse(res, 413, 'record larger than 4096 bytes');
  if (!sub.ecdh) {
    counter.accepted += 1;
    messages.push({ subscription: m[1], record: b64(data), ttl: Number(req.headers.ttl), urgency: req.headers.urgency || null, topic: req.headers.topic || null, at: Date.now() });
    return answer(res, 201);
  }
  let payload;
  try {
    payload = ece.decrypt(data, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: b64(sub.auth) }).toString('utf8');
  } catch (e) {
    return refuse(res, 400, `does not decrypt: ${e.message}`);
  }
  sub.seen += 1;
  if (sub.delayMs) await new Promise((r) => setTimeout(r, sub.delayMs));
  if (sub.behaviour === 'gone') return answer(res, 410, 'subscription expired');
  if (sub.behaviour === 'flaky' && sub.seen <= sub.failures) return answer(res, 503, 'try later', { 'retry-after': '1' });
  counter.accepted += 1;
  counter.first = counter.first || Date.now();
  counter.last = Date.now();
  if (!config.sample) messages.push({ subscription: m[1], payload, ttl: Number(req.headers.ttl), urgency: req.headers.urgency || null, topic: req.headers.topic || null, at: Date.now() });
  answer(res, 201, '', { location: `${origin}/message/${randomBytes(6).toString('hex')}` });
});

server.keepAliveTimeout = 30000;
await new Promise((resolve) => server.listen(config.port || 0, '127.0.0.1', resolve));
origin = `http://127.0.0.1:${server.address().port}`;
process.stdout.write(JSON.stringify({ base: origin }) + '\n');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
