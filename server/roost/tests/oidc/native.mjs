// Native push receivers for Roost's push tests, on 127.0.0.1: FCM HTTP v1 with its OAuth 2.0 token
// endpoint, and APNs' provider API over HTTP/2 (cleartext, prior knowledge: Apple's speaks it over
// TLS). Each checks requests as the real service does:
//   - OAuth: the service account's RS256 assertion (RFC 7523) verified with its public key, `iss`
//     the client email, `aud` this token endpoint, the firebase.messaging scope, at most an hour;
//   - FCM: `Authorization: Bearer` a token this endpoint issued, `message.token` present, `data`
//     values strings, `android.ttl` a duration; answers 200 {name}, 404 UNREGISTERED (tokens
//     starting `gone`), 503 + Retry-After to the first two requests of tokens starting `flaky`;
//   - APNs: the ES256 provider token verified with the .p8 key's public key (`kid` the key id, `iss`
//     the team id, `iat` within the hour), `apns-topic` the app's bundle id, `apns-push-type`, a JSON
//     payload of at most 4096 bytes with `aps`; answers 200 + apns-id, 410 Unregistered (tokens
//     starting `dead`), 400 BadDeviceToken (tokens starting `bad0`), 429 to the first request of
//     tokens starting `eeee`.
//
//   node native.mjs '{}'   prints {"fcm","apns","serviceAccount","apnsKey","keyId","teamId","topic"}
//
//   GET /__test/messages  (on the fcm base) every message accepted: [{platform, token, message|payload, headers}]
//   GET /__test/stats     requests by service and answer, token requests, refusals by reason
import http from 'node:http';
import http2 from 'node:http2';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as jose from 'jose';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keyId = 'ABC123DEFG';
const teamId = 'TEAM123456';
const topic = 'com.example.roost';
const clientEmail = 'roost-test@roost-test-project.iam.gserviceaccount.com';
const project = 'roost-test-project';
const messages = [];
const stats = { fcm: {}, apns: {}, tokens: 0, refused: {} };
const issued = new Set();
const seen = new Map();
let fcmBase = '';

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

function json(res, status, value, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
}

function refuse(service, res, status, reason, value) {
  stats.refused[reason] = (stats.refused[reason] || 0) + 1;
  stats[service][status] = (stats[service][status] || 0) + 1;
  json(res, status, value ?? { error: reason });
}

function count(service, status) {
  stats[service][status] = (stats[service][status] || 0) + 1;
}

function bump(key) {
  const n = (seen.get(key) || 0) + 1;
  seen.set(key, n);
  return n;
}

const fcm = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'GET' && url.pathname === '/__test/messages') return json(res, 200, messages);
  if (req.method === 'GET' && url.pathname === '/__test/stats') return json(res, 200, stats);
  const text = await body(req);
  if (req.method === 'POST' && url.pathname === '/token') {
    const form = new URLSearchParams(text);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return refuse('fcm', res, 400, 'unsupported_grant_type', { error: 'unsupported_grant_type' });
    try {
      const { payload, protectedHeader } = await jose.jwtVerify(form.get('assertion') || '', rsa.publicKey, { algorithms: ['RS256'], issuer: clientEmail, audience: `${fcmBase}/token` });
      if (!String(payload.scope || '').split(' ').includes('https://www.googleapis.com/auth/firebase.messaging')) throw new Error('scope');
      if (payload.exp - payload.iat > 3600) throw new Error('lifetime');
      if (protectedHeader.kid !== 'key-1') throw new Error('kid');
    } catch (e) {
      return refuse('fcm', res, 400, `assertion: ${e.code || e.message}`, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
    }
    stats.tokens += 1;
    const token = `ya29.${randomBytes(16).toString('hex')}`;
    issued.add(token);
    return json(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
  }
  const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(url.pathname);
  if (req.method !== 'POST' || !m) return refuse('fcm', res, 404, 'no such route');
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization || '');
  if (!bearer || !issued.has(bearer[1])) return refuse('fcm', res, 401, 'fcm: no valid access token', { error: { code: 401, status: 'UNAUTHENTICATED', message: 'Request had invalid authentication credentials.' } });
  if (m[1] !== project) return refuse('fcm', res, 403, 'fcm: another project', { error: { code: 403, status: 'PERMISSION_DENIED', details: [{ errorCode: 'SENDER_ID_MISMATCH' }] } });
  let message;
  try {
    message = JSON.parse(text).message;
  } catch {
    return refuse('fcm', res, 400, 'fcm: not JSON');
  }
  const invalid = (why) => refuse('fcm', res, 400, `fcm: ${why}`, { error: { code: 400, status: 'INVALID_ARGUMENT', message: why, details: [{ errorCode: 'INVALID_ARGUMENT' }] } });
  if (!message || typeof message.token !== 'string') return invalid('no message.token');
  if (message.data && Object.values(message.data).some((v) => typeof v !== 'string')) return invalid('data values must be strings');
  if (message.android?.ttl !== undefined && !/^\d+(\.\d+)?s$/.test(message.android.ttl)) return invalid('android.ttl is not a duration');
  if (text.length > 4096 + 200) return invalid('message too big');
  const token = message.token;
  if (token.startsWith('gone')) return refuse('fcm', res, 404, 'fcm: unregistered', { error: { code: 404, status: 'NOT_FOUND', message: 'Requested entity was not found.', details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }] } });
  if (token.startsWith('flaky') && bump(token) <= 2) {
    count('fcm', 503);
    return json(res, 503, { error: { code: 503, status: 'UNAVAILABLE' } }, { 'retry-after': '1' });
  }
  count('fcm', 200);
  messages.push({ platform: 'fcm', token, message, at: Date.now() });
  json(res, 200, { name: `projects/${project}/messages/${randomBytes(8).toString('hex')}` });
});

const apns = http2.createServer(async (req, res) => {
  const m = /^\/3\/device\/([0-9a-fA-F]+)$/.exec(req.url);
  const text = await body(req);
  if (req.method !== 'POST' || !m) return refuse('apns', res, 404, 'apns: BadPath', { reason: 'BadPath' });
  const auth = /^bearer (.+)$/.exec(req.headers.authorization || '');
  if (!auth) return refuse('apns', res, 403, 'apns: MissingProviderToken', { reason: 'MissingProviderToken' });
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(auth[1], ec.publicKey, { algorithms: ['ES256'], issuer: teamId });
    if (protectedHeader.kid !== keyId) throw new Error('kid');
    if (typeof payload.iat !== 'number' || Date.now() / 1000 - payload.iat > 3600) return refuse('apns', res, 403, 'apns: ExpiredProviderToken', { reason: 'ExpiredProviderToken' });
  } catch (e) {
    return refuse('apns', res, 403, `apns: InvalidProviderToken ${e.code || e.message}`, { reason: 'InvalidProviderToken' });
  }
  if (req.headers['apns-topic'] !== topic) return refuse('apns', res, 400, 'apns: DeviceTokenNotForTopic', { reason: 'DeviceTokenNotForTopic' });
  if (!['alert', 'background'].includes(req.headers['apns-push-type'])) return refuse('apns', res, 400, 'apns: InvalidPushType', { reason: 'InvalidPushType' });
  if (Buffer.byteLength(text) > 4096) return refuse('apns', res, 413, 'apns: PayloadTooLarge', { reason: 'PayloadTooLarge' });
  let payload;
  try {
    payload = JSON.parse(text);
  } catch {
    return refuse('apns', res, 400, 'apns: PayloadEmpty', { reason: 'PayloadEmpty' });
  }
  if (!payload || typeof payload.aps !== 'object') return refuse('apns', res, 400, 'apns: no aps', { reason: 'PayloadEmpty' });
  const token = m[1];
  if (token.startsWith('dead')) return refuse('apns', res, 410, 'apns: Unregistered', { reason: 'Unregistered', timestamp: Date.now() });
  if (token.startsWith('bad0')) return refuse('apns', res, 400, 'apns: BadDeviceToken', { reason: 'BadDeviceToken' });
  if (token.startsWith('eeee') && bump(token) <= 1) {
    count('apns', 429);
    return json(res, 429, { reason: 'TooManyRequests' });
  }
  count('apns', 200);
  const h = (k) => req.headers[k] ?? null;
  messages.push({ platform: 'apns', token, payload, headers: { pushType: h('apns-push-type'), priority: h('apns-priority'), expiration: h('apns-expiration'), collapseId: h('apns-collapse-id') }, at: Date.now() });
  res.writeHead(200, { 'apns-id': randomBytes(16).toString('hex') });
  res.end();
});

await new Promise((resolve) => fcm.listen(0, '127.0.0.1', resolve));
await new Promise((resolve) => apns.listen(0, '127.0.0.1', resolve));
fcmBase = `http://127.0.0.1:${fcm.address().port}`;
const serviceAccount = {
  type: 'service_account',
  project_id: project,
  private_key_id: 'key-1',
  private_key: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }),
  client_email: clientEmail,
  client_id: '1234567890',
  // Roost asks the token endpoint its server settings name, never the key file's.
  token_uri: 'http://127.0.0.1:9/never-asked',
};
process.stdout.write(
  JSON.stringify({
    fcm: fcmBase,
    apns: `http://127.0.0.1:${apns.address().port}`,
    serviceAccount: JSON.stringify(serviceAccount),
    apnsKey: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }),
    keyId,
    teamId,
    topic,
  }) + '\n',
);
process.on('SIGTERM', () => process.exit(0));
