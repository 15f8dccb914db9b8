// A Facebook Login receiver for Roost's identity tests: the parts of Facebook's OAuth 2.0 dialog and
// Graph API that a server doing Facebook Login calls, with their checks and their error shapes, on
// 127.0.0.1. Facebook itself cannot be reached from the test machines; this is what stands where
// graph.facebook.com and www.facebook.com would (Roost's `facebook_dialog_url`/`facebook_graph_url`).
//
//   node facebook.mjs '{"port":0,"apps":[{"app_id":"1001","app_secret":"s","redirect_uris":["http://…"]}]}'
//
// Prints one line `{"base":"http://127.0.0.1:PORT"}` once it listens. Paths may carry a Graph API
// version (`/v21.0/me`). What it does, as Facebook does:
//   GET  /dialog/oauth?client_id&redirect_uri&state&scope&display  the login page (the redirect URI must
//        be one the app registered); POST /dialog/oauth/confirm with `login` signs in as that person and
//        redirects back with a single-use `code` and the `state` (and Facebook's `#_=_` fragment).
//   GET  /oauth/access_token?client_id&client_secret&redirect_uri&code   a code for a user access token;
//        ?grant_type=fb_exchange_token&client_id&client_secret&fb_exchange_token   a long-lived token for
//        a token of the same app.
//   GET  /debug_token?input_token&access_token=<app id>|<app secret>   what a token is (its app, user,
//        validity).
//   GET  /me?fields&access_token&appsecret_proof   the person (`appsecret_proof`, the HMAC-SHA256 of the
//        token keyed with the app secret, is required, as "Require App Secret" in an app's settings).
// For tests: POST /__test/apps {"app_id","app_secret","redirect_uris"} registers an app (or replaces
// it); POST /__test/token {"app_id","login"} answers the user access token an app's native SDK
// would hold for that person; GET /__test/calls counts the requests by path.
// A person's id is app-scoped, as Facebook's are: the same login has another id in another app.
import http from 'node:http';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const config = JSON.parse(process.argv[2] || '{}');
const apps = new Map((config.apps || []).map((a) => [a.app_id, a]));
const pending = new Map(); // login request id -> {app, redirect_uri, state}
const codes = new Map(); // code -> {app, redirect_uri, login, expires}
const tokens = new Map(); // access token -> {app, login, expires, long}
const calls = {};

const scopedId = (app, login) => BigInt('0x' + createHash('sha256').update(`${app}\0${login}`).digest('hex').slice(0, 13)).toString().slice(0, 16);
const fresh = () => 'EAA' + randomBytes(24).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function oauthError(res, status, code, message) {
  res.writeHead(status, { 'content-type': 'application/json', 'www-authenticate': `OAuth "Facebook Platform" "invalid_request" "${message}"` });
  res.end(JSON.stringify({ error: { message, type: 'OAuthException', code, fbtrace_id: randomBytes(8).toString('base64url') } }));
}

function json(res, body) {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function issue(app, login, seconds, long) {
  const token = fresh();
  tokens.set(token, { app, login, expires: now() + seconds, long });
  return token;
}

function liveToken(t) {
  const info = tokens.get(t || '');
  return info && info.expires > now() ? info : null;
}

function appOf(params) {
  const app = apps.get(params.get('client_id') || '');
  if (!app) return null;
  const given = Buffer.from(params.get('client_secret') || '');
  const want = Buffer.from(app.app_secret);
  return given.length === want.length && timingSafeEqual(given, want) ? app : null;
}

async function body(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  const path = url.pathname.replace(/^\/v\d+\.\d+(?=\/)/, '');
  const q = url.searchParams;
  calls[path] = (calls[path] || 0) + 1;
  if (req.method === 'GET' && path === '/dialog/oauth') {
    const app = apps.get(q.get('client_id') || '');
    if (!app) return oauthError(res, 400, 101, 'Error validating application. Invalid application ID.');
    if (!app.redirect_uris.includes(q.get('redirect_uri') || '')) {
      return oauthError(res, 400, 191, "URL blocked: This redirect failed because the redirect URI is not whitelisted in the app's Client OAuth Settings.");
    }
    if ((q.get('response_type') || 'code') !== 'code') return oauthError(res, 400, 100, 'Unsupported response_type');
    const id = randomBytes(12).toString('hex');
    pending.set(id, { app: app.app_id, redirect_uri: q.get('redirect_uri'), state: q.get('state'), scope: q.get('scope') || '' });
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(`<!doctype html><title>Log in to Facebook</title><form method="post" action="/dialog/oauth/confirm">` +
      `<input type="hidden" name="request" value="${id}"><input name="login"><button>Continue</button></form>`);
  }
  if (req.method === 'POST' && path === '/dialog/oauth/confirm') {
    const form = new URLSearchParams(await body(req));
    const p = pending.get(form.get('request') || '');
    const login = form.get('login') || '';
    if (!p || !/^[a-z0-9._-]{1,64}$/i.test(login)) return oauthError(res, 400, 100, 'Invalid login request');
    pending.delete(form.get('request'));
    const code = randomBytes(32).toString('base64url');
    codes.set(code, { app: p.app, redirect_uri: p.redirect_uri, login, expires: now() + 600 });
    const back = new URL(p.redirect_uri);
    back.searchParams.set('code', code);
    if (p.state != null) back.searchParams.set('state', p.state);
    res.writeHead(302, { location: back.toString() + '#_=_' });
    return res.end();
  }
  if (req.method === 'GET' && path === '/oauth/access_token') {
    const app = appOf(q);
    if (!app) return oauthError(res, 400, 1, 'Error validating client secret.');
    if (q.get('grant_type') === 'fb_exchange_token') {
      const t = liveToken(q.get('fb_exchange_token'));
      if (!t) return oauthError(res, 400, 190, 'Invalid OAuth access token.');
      if (t.app !== app.app_id) return oauthError(res, 400, 190, 'Error validating access token: the token was not issued to this app.');
      return json(res, { access_token: issue(app.app_id, t.login, 60 * 24 * 3600, true), token_type: 'bearer', expires_in: 5183944 });
    }
    const code = codes.get(q.get('code') || '');
    if (!code || code.expires < now()) return oauthError(res, 400, 100, 'This authorization code has expired.');
    codes.delete(q.get('code')); // single use
    if (code.app !== app.app_id || code.redirect_uri !== q.get('redirect_uri')) {
      return oauthError(res, 400, 100, 'Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request');
    }
    return json(res, { access_token: issue(app.app_id, code.login, 2 * 3600, false), token_type: 'bearer', expires_in: 7200 });
  }
  if (req.method === 'GET' && path === '/debug_token') {
    const [id, secret] = (q.get('access_token') || '').split('|');
    const app = apps.get(id || '');
    if (!app || secret !== app.app_secret) return oauthError(res, 400, 190, 'Invalid OAuth access token signature.');
    const t = liveToken(q.get('input_token'));
    if (!t) return json(res, { data: { error: { code: 190, message: 'Invalid OAuth access token.' }, is_valid: false, scopes: [] } });
    const a = apps.get(t.app);
    return json(res, {
      data: { app_id: t.app, type: 'USER', application: a ? a.name || `App ${t.app}` : '', expires_at: t.expires, is_valid: true, scopes: ['public_profile', 'email'], user_id: scopedId(t.app, t.login) },
    });
  }
  if (req.method === 'GET' && path === '/me') {
    const t = liveToken(q.get('access_token'));
    if (!t) return oauthError(res, 400, 190, 'Invalid OAuth access token.');
    const app = apps.get(t.app);
    const proof = createHmac('sha256', app.app_secret).update(q.get('access_token')).digest('hex');
    if (q.get('appsecret_proof') !== proof) return oauthError(res, 400, 100, 'API calls from the server require an appsecret_proof argument');
    const person = { id: scopedId(t.app, t.login), name: `User ${t.login}`, first_name: 'User', last_name: t.login, email: `${t.login}@facebook.test` };
    const fields = (q.get('fields') || 'id,name').split(',');
    return json(res, Object.fromEntries(Object.entries(person).filter(([k]) => fields.includes(k))));
  }
  if (req.method === 'POST' && path === '/__test/token') {
    const b = JSON.parse(await body(req));
    if (!apps.has(b.app_id)) return oauthError(res, 400, 101, 'Invalid application ID.');
    return json(res, { access_token: issue(b.app_id, b.login, b.expires_in ?? 3600, false), user_id: scopedId(b.app_id, b.login) });
  }
  if (req.method === 'GET' && path === '/__test/calls') return json(res, calls);
  if (req.method === 'POST' && path === '/__test/apps') {
    const a = JSON.parse(await body(req));
    apps.set(a.app_id, a);
    return json(res, a);
  }
  oauthError(res, 404, 803, `Unknown path components: ${path}`);
});

await new Promise((resolve) => server.listen(config.port || 0, '127.0.0.1', resolve));
process.stdout.write(JSON.stringify({ base: `http://127.0.0.1:${server.address().port}` }) + '\n');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
