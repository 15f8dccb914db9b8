// The portal end to end, against a freshly started Roost: an admin runs a tenant from the browser,
// a mobile client uses it, and a support account sees only monitoring and logs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRoost, launchBrowser, screenshot, startProvider, servePage, startWebPush, output } from '../lib/roost.mjs';
import { join } from 'node:path';

const admin = { email: 'admin@example.com', password: 'correct horse battery', role: 'admin' };
const support = { email: 'support@example.com', password: 'support staff password', role: 'support' };
const tenant = 'shop' + Date.now().toString(36);
let roost, browser, page;
const dialogs = [];

before(async () => {
  roost = await startRoost({ accounts: [admin, support] });
  browser = await launchBrowser();
  const context = await browser.browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  // The app's own errors (expected 401/404 answers also log "Failed to load resource"; those are left out).
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) console.error('console:', m.text()); });
});

after(async () => {
  await browser?.close();
  await roost?.stop();
});

async function signIn(who) {
  await page.goto(`${roost.base}/portal/`);
  await page.fill('input[name=email]', who.email);
  await page.fill('input[name=password]', who.password);
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('header.top .email');
  assert.equal(await page.textContent('header.top .email'), who.email);
}

async function signOut() {
  await page.click('button:has-text("Sign out")');
  await page.waitForSelector('input[name=email]');
}

// Replaces the editor's text as one input (no auto-closing brackets or auto-indent).
async function setEditorText(text) {
  await page.click('.editor .cm-content');
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

async function tenantPost(key, body) {
  const r = await fetch(`${roost.base}/t/${tenant}/tables/orders`, {
    method: 'POST',
    headers: { 'X-ZUMO-APPLICATION': key, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

let appKey;

test('a wrong password is refused with the server message', async () => {
  await page.goto(`${roost.base}/portal/`);
  await page.fill('input[name=email]', admin.email);
  await page.fill('input[name=password]', 'not the password');
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('.note.error');
  assert.match(await page.textContent('.note.error'), /e-mail or password is wrong/);
  await screenshot(page, '01-sign-in');
});

test('an admin signs in and creates a tenant', async () => {
  await signIn(admin);
  await page.waitForSelector('text=No tenants yet.');
  await page.fill('input[name=tenant-name]', tenant);
  await page.click('button:has-text("Create tenant")');
  await page.waitForSelector(`#tenant-list a:has-text("${tenant}")`);
  await screenshot(page, '02-tenants');
});

test('the admin creates a table and sets its insert permission', async () => {
  await page.click(`#tenant-list a:has-text("${tenant}")`);
  await page.waitForSelector('#dashboard');
  await page.click('nav.tabs a:has-text("Data")');
  await page.waitForSelector('text=No tables yet.');
  await page.fill('input[name=table-name]', 'orders');
  await page.click('button:has-text("Create table")');
  await page.waitForSelector('#table-list a:has-text("orders")');
  await screenshot(page, '03-data');
  await page.click('#table-list a:has-text("orders")');
  await page.click('nav.tabs a:has-text("Permissions")');
  await page.selectOption('select[name=perm-insert]', 'public');
  await page.click('button:has-text("Save permissions")');
  await page.waitForSelector('text=Permissions saved');
  await screenshot(page, '04-permissions');
  await page.click('nav.tabs a:has-text("Data")');
  await page.waitForSelector('#table-list');
  const row = await page.textContent('#table-list tbody tr');
  assert.match(row, /orders.*public/s, 'the tables list shows the new insert permission');
});

test('the admin writes an insert script: a syntax error shows at its line, then it saves', async () => {
  await page.goto(`${roost.base}/portal/#/t/${tenant}/data/orders/script/insert`);
  await page.waitForSelector('.editor .cm-content');
  await setEditorText('function insert(item, user, request) {\n    item.source = ;\n    request.execute();\n}\n');
  await page.waitForSelector('text=Unsaved changes');
  await page.click('button.primary:has-text("Save")');
  await page.waitForSelector('.note.error');
  assert.match(await page.textContent('.note.error'), /line 2/);
  await page.waitForSelector('.cm-lint-marker-error');
  const marked = await page.evaluate(() => {
    const marker = document.querySelector('.cm-lint-marker-error');
    const gutter = marker.closest('.cm-gutterElement');
    return gutter ? gutter.getBoundingClientRect().top : null;
  });
  const line2 = await page.evaluate(() => document.querySelectorAll('.cm-content .cm-line')[1].getBoundingClientRect().top);
  assert.ok(Math.abs(marked - line2) < 4, `the error marker sits on line 2 (${marked} vs ${line2})`);
  // The text is still there after the failed save.
  assert.match(await page.textContent('.cm-content'), /item\.source = ;/);
  await screenshot(page, '05-script-error');
  await setEditorText("function insert(item, user, request) {\n    item.source = 'portal-script';\n    console.log('inserting order %s', item.title);\n    request.execute();\n}\n");
  await page.click('button.primary:has-text("Save")');
  await page.waitForSelector('text=Saved /table/orders.insert.js');
  assert.equal(await page.locator('.cm-lint-marker-error').count(), 0);
  assert.equal(await page.locator('text=Unsaved changes').count(), 0);
  await screenshot(page, '06-script');
  // Leaving with unsaved changes asks first.
  await page.click('.editor .cm-content');
  await page.keyboard.press('Control+End');
  await page.keyboard.insertText('// draft\n');
  await page.waitForSelector('text=Unsaved changes');
  const before = dialogs.length;
  await page.click('nav.tabs a:has-text("Configure")');
  await page.waitForSelector('button:has-text("Show keys")');
  assert.ok(dialogs.slice(before).some((m) => /unsaved changes/i.test(m)), `asked before leaving: ${dialogs}`);
});

test('the keys are shown on request; a client inserts with the application key', async () => {
  await page.click('nav.tabs a:has-text("Configure")');
  await page.click('button:has-text("Show keys")');
  appKey = (await page.textContent('#application-key')).trim();
  assert.equal(appKey.length > 20, true);
  await screenshot(page, '07-configure');
  const r = await tenantPost(appKey, { title: 'first order', quantity: 3 });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.source, 'portal-script');
});

test('Browse shows the row with the field the script added', async () => {
  await page.click('nav.tabs a:has-text("Data")');
  await page.click('#table-list a:has-text("orders")');
  await page.waitForSelector('#rows');
  const table = await page.textContent('#rows');
  assert.match(table, /first order/);
  assert.match(table, /portal-script/);
  // The OData filter box narrows the rows.
  await page.fill('input[name=filter]', "title eq 'nothing like it'");
  await page.click('button:has-text("Apply")');
  await page.waitForSelector('text=0 rows');
  await page.fill('input[name=filter]', 'quantity gt 2');
  await page.click('button:has-text("Apply")');
  await page.waitForSelector('#rows >> text=first order');
  await screenshot(page, '08-browse');
  // Insert, edit and delete rows from the browser (no script runs for these).
  await page.fill('input[name=filter]', '');
  await page.click('button:has-text("Apply")');
  await page.click('button:has-text("Insert row")');
  await page.fill('textarea[name=row-json]', '{"title": "typed in the portal", "quantity": 1}');
  await page.click('button:has-text("Save row")');
  await page.waitForSelector('text=Row inserted');
  await page.waitForSelector('#rows >> text=typed in the portal');
  const row = page.locator('#rows tr', { hasText: 'typed in the portal' });
  await row.locator('button:has-text("Edit")').click();
  const text = await page.inputValue('textarea[name=row-json]');
  await page.fill('textarea[name=row-json]', text.replace('typed in the portal', 'edited in the portal'));
  await page.click('button:has-text("Save row")');
  await page.waitForSelector('#rows >> text=edited in the portal');
  assert.equal(await page.locator('#rows >> text=portal-script').count(), 1, 'only the client insert ran the script');
  await page.locator('#rows tr', { hasText: 'edited in the portal' }).locator('button:has-text("Delete")').click();
  await page.waitForSelector('text=Deleted row');
  // The note shows before the rows reload: wait for the reload to drop the row (times out if it stays).
  await page.waitForSelector('#rows >> text=edited in the portal', { state: 'detached' });
  assert.equal(await page.locator('#rows >> text=edited in the portal').count(), 0);
  // A bad filter shows the server's message.
  await page.fill('input[name=filter]', 'quantity eq');
  await page.click('button:has-text("Apply")');
  await page.waitForSelector('.note.error');
});

test('Logs shows the script console line', async () => {
  await page.click('nav.tabs a:has-text("Logs")');
  await page.waitForSelector('#logs >> text=inserting order first order');
  assert.match(await page.textContent('#logs'), /\/table\/orders\.insert\.js/);
  await screenshot(page, '09-logs');
});

test('shared modules, custom APIs and jobs are written and run from the browser', async () => {
  await page.goto(`${roost.base}/portal/#/t/${tenant}/shared`);
  await page.fill('input[name=new-script]', 'greet');
  await page.click('button:has-text("New module")');
  await page.waitForSelector('.editor .cm-content >> text=exports.hello');
  await page.click('button.primary:has-text("Save")');
  await page.waitForSelector('text=Saved /shared/greet.js');
  await screenshot(page, '10-shared');

  await page.goto(`${roost.base}/portal/#/t/${tenant}/api`);
  await page.fill('input[name=new-script]', 'hello');
  await page.click('button:has-text("New API")');
  await page.waitForSelector('.editor .cm-content');
  await setEditorText("var greet = require('../shared/greet');\nexports.get = function (request, response) {\n    response.send(200, { message: greet.hello(request.query.who) });\n};\n");
  await page.selectOption('select[name=api-perm-get]', 'public');
  await page.click('button.primary:has-text("Save")');
  await page.waitForSelector('text=Saved /api/hello.js');
  await screenshot(page, '11-api');
  const r = await fetch(`${roost.base}/t/${tenant}/api/hello?who=portal`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { message: 'Hello, portal' });
  const post = await fetch(`${roost.base}/t/${tenant}/api/hello`, { method: 'POST' });
  assert.equal(post.status, 405, 'only GET is exported');

  await page.goto(`${roost.base}/portal/#/t/${tenant}/scheduler`);
  await page.fill('input[name=new-script]', 'tidy');
  await page.click('button:has-text("New job")');
  await page.waitForSelector('.editor .cm-content >> text=tidy ran');
  await page.fill('input[name=interval]', '2');
  await page.selectOption('select[name=unit]', 'hour');
  await page.click('button.primary:has-text("Save")');
  await page.waitForSelector('text=Saved /scheduler/tidy.js');
  await page.waitForSelector('.script-list a:has-text("tidy")');
  await page.click('button:has-text("Run once")');
  await page.waitForSelector('#job-runs >> text=succeeded');
  await screenshot(page, '12-scheduler');
  const script = await fetch(`${roost.base}/manage/v1/tenants/${tenant}/scripts/job/tidy`, { headers: { Authorization: 'Bearer e2e-platform-token' } }).then((x) => x.json());
  assert.deepEqual({ interval: script.schedule.interval, unit: script.schedule.unit, enabled: script.schedule.enabled }, { interval: 2, unit: 'hour', enabled: false });
});

test('npm packages are installed from Configure and required by scripts', async () => {
  await page.goto(`${roost.base}/portal/#/t/${tenant}/configure`);
  await page.waitForSelector('textarea[name=package-json]');
  await page.fill('textarea[name=package-json]', '{"dependencies": {"underscore": "^1.13.0"}}');
  await page.click('button:has-text("Save and install")');
  await page.waitForSelector('text=Packages installed', { timeout: 60000 });
  assert.match(await page.textContent('#packages'), /underscore\s*1\.13\./);
  await screenshot(page, '13-packages');
  await page.goto(`${roost.base}/portal/#/t/${tenant}/api/hello`);
  await page.waitForSelector('.editor .cm-content >> text=greet');
  await setEditorText("var _ = require('underscore');\nexports.get = function (request, response) {\n    response.send(200, { keys: _.keys({ a: 1, b: 2 }) });\n};\n");
  await page.click('button.primary:has-text("Save")');
  await page.waitForSelector('text=Saved /api/hello.js');
  const r = await fetch(`${roost.base}/t/${tenant}/api/hello`);
  assert.deepEqual(await r.json(), { keys: ['a', 'b'] });
});

test('a provider added in the Identity view signs a user in through the web client popup', async () => {
  // A real OpenID provider on 127.0.0.1 (the identity tests' oidc-provider) and a page of the app on
  // another origin, which opens the popup as MobileServices.Web.js does and waits for postMessage.
  const redirect = `${roost.base}/t/${tenant}/login/local`;
  const op = await startProvider([{ client_id: 'roost-web', client_secret: 'portal-secret', redirect_uris: [redirect] }]);
  const app = await servePage(`<!DOCTYPE html><html><body><button id="login">Log in</button><script>
    window.result = null;
    window.addEventListener('message', function (e) { window.result = { origin: e.origin, data: JSON.parse(e.data) }; });
    document.getElementById('login').onclick = function () {
      window.open(${JSON.stringify(roost.base)} + '/t/${tenant}/login/local?completion_type=postMessage&completion_origin=' + encodeURIComponent(location.origin), 'login');
    };
  </script></body></html>`);
  try {
    // The admin lets the service reach the loopback provider, and the page's origin use it.
    const patch = await fetch(`${roost.base}/manage/v1/tenants/${tenant}/settings`, {
      method: 'PATCH',
      headers: { Authorization: 'Bearer e2e-platform-token', 'Content-Type': 'application/json' },
      body: JSON.stringify({ outbound_allow: [`127.0.0.1:${op.port}`], cors_origins: ['localhost', '127.0.0.1'] }),
    });
    assert.equal(patch.status, 200, await patch.text());
    await page.goto(`${roost.base}/portal/#/t/${tenant}/identity`);
    await page.waitForSelector('text=No identity provider yet');
    await page.fill('input[name=provider-name]', 'local');
    await page.selectOption('select[name=provider-kind]', 'oidc');
    await page.fill('input[name=discovery-url]', `${op.issuer}/.well-known/openid-configuration`);
    await page.fill('input[name=client-id]', 'roost-web');
    await page.fill('input[name=client-secret]', 'portal-secret');
    await page.click('button:has-text("Save provider")');
    await page.waitForSelector('text=Saved provider local');
    // The secret is write-only: only its last characters come back.
    assert.equal((await page.textContent('#providers tr[data-provider=local] td.secret')).trim(), '…cret');
    assert.ok(!(await page.content()).includes('portal-secret'));
    await screenshot(page, '14-identity');

    const client = await browser.browser.newContext();
    const appPage = await client.newPage();
    await appPage.goto(app.url);
    const [popup] = await Promise.all([appPage.waitForEvent('popup'), appPage.click('#login')]);
    // The provider's own sign-in and consent pages, in the popup.
    await popup.waitForSelector('input[name=login]');
    await popup.fill('input[name=login]', 'ivy');
    await popup.fill('input[name=password]', 'anything');
    await popup.click('button[type=submit]');
    await popup.waitForSelector('button[type=submit]');
    await popup.click('button[type=submit]');
    await appPage.waitForFunction(() => window.result !== null, null, { timeout: 15000 });
    const result = await appPage.evaluate(() => window.result);
    assert.equal(result.origin, roost.base.replace(/\/$/, ''));
    assert.equal(result.data.type, 'LoginCompleted');
    assert.equal(result.data.error, null);
    assert.equal(result.data.oauth.user.userId, 'local:ivy');
    // The token it received is a user of the service.
    const asUser = { 'X-ZUMO-APPLICATION': appKey, 'X-ZUMO-AUTH': result.data.oauth.authenticationToken };
    const me = await fetch(`${roost.base}/t/${tenant}/api/hello`, { headers: asUser });
    assert.equal(me.status, 200);
    await client.close();

    // Revoking from the Identity view ends that token.
    await page.click('button:has-text("Revoke all user tokens")');
    await page.waitForSelector('text=is revoked');
    const after = await fetch(`${roost.base}/t/${tenant}/api/hello`, { headers: asUser });
    assert.equal(after.status, 401);
    await page.click('#providers tr[data-provider=local] button:has-text("Remove")');
    await page.waitForSelector('text=Removed provider local');
  } finally {
    await op.stop();
    await app.stop();
  }
});

test('the Push view shows a registration, sends a test with a live status and deletes it', async () => {
  // A push service on 127.0.0.1 that verifies VAPID and decrypts with the subscription's private
  // key. Headless Chromium's PushManager needs Google's push service (no network here), so the
  // subscription is the receiver's, registered through the §7.2 endpoints as a page would.
  const rx = await startWebPush();
  const manage = (method, path, body) => fetch(`${roost.base}/manage/v1${path}`, {
    method, headers: { Authorization: 'Bearer e2e-platform-token', 'Content-Type': 'application/json' }, body: body && JSON.stringify(body),
  });
  try {
    let r = await manage('PATCH', `/tenants/${tenant}/settings`, { outbound_allow: [`127.0.0.1:${rx.port}`] });
    assert.equal(r.status, 200, await r.text());
    r = await manage('POST', `/tenants/${tenant}/tables`, { name: 'alerts' });
    assert.equal(r.status, 201, await r.text());
    const script = "function insert(item, user, request) { request.execute({ success: function () { push.send('orders', { message: item.text }, { success: function () { request.respond(); }, error: function (e) { request.respond(500, { error: e.message }); } }); } }); }";
    r = await manage('PUT', `/tenants/${tenant}/scripts/table/alerts.insert`, { body: script });
    assert.equal(r.status, 200, await r.text());
    const sub = await rx.subscribe();
    const client = { 'X-ZUMO-APPLICATION': appKey, 'Content-Type': 'application/json', 'X-ZUMO-INSTALLATION-ID': 'e2e-device' };
    r = await fetch(`${roost.base}/t/${tenant}/push/registrationids`, { method: 'POST', headers: client });
    assert.equal(r.status, 201);
    const id = r.headers.get('location').split('/').pop();
    r = await fetch(`${roost.base}/t/${tenant}/push/registrations/${id}`, {
      method: 'PUT', headers: client, body: JSON.stringify({ platform: 'webpush', deviceId: sub.endpoint, keys: sub.keys, tags: ['orders'] }),
    });
    assert.equal(r.status, 204, await r.text());
    // A table insert script sends; the receiver decrypts what arrived.
    r = await fetch(`${roost.base}/t/${tenant}/tables/alerts`, { method: 'POST', headers: client, body: JSON.stringify({ text: 'Order shipped' }) });
    assert.equal(r.status, 201, await r.text());
    const arrived = async (n) => {
      for (let i = 0; i < 100; i++) {
        const m = await rx.messages();
        if (m.length >= n) return m;
        await new Promise((ok) => setTimeout(ok, 100));
      }
      return rx.messages();
    };
    let messages = await arrived(1);
    assert.equal(messages.length, 1);
    assert.deepEqual(JSON.parse(messages[0].payload), { message: 'Order shipped' });

    const vapid = await (await fetch(`${roost.base}/t/${tenant}/push/vapidkey`)).json();
    await page.goto(`${roost.base}/portal/#/t/${tenant}/push`);
    await page.waitForSelector(`#registrations tr[data-registration="${id}"]`);
    assert.equal((await page.textContent('#vapid-key')).trim(), vapid.publicKey);
    assert.equal((await page.textContent(`#registrations tr[data-registration="${id}"] td.tags`)).trim(), 'orders, e2e-device');
    assert.match(await page.textContent('#fcm-status'), /Not configured/);
    // Filters: a tag no registration has, then the registration's own.
    await page.fill('input[name=tag]', 'nobody');
    await page.click('button:has-text("Filter")');
    await page.waitForSelector('#no-registrations');
    await page.fill('input[name=tag]', 'orders');
    await page.selectOption('select[name=platform]', 'webpush');
    await page.click('button:has-text("Filter")');
    await page.waitForSelector(`#registrations tr[data-registration="${id}"]`);
    // A test notification to the tag: its counts update live until it is delivered.
    await page.fill('input[name=test-target]', 'orders');
    await page.fill('input[name=test-message]', 'From the portal');
    await page.click('button:has-text("Send")');
    await page.waitForFunction(() => /1 delivered/.test(document.querySelector('#test-status')?.textContent || '') && /0 waiting/.test(document.querySelector('#test-status').textContent), null, { timeout: 15000 });
    messages = await arrived(2);
    assert.deepEqual(JSON.parse(messages[1].payload), { message: 'From the portal' });
    await page.waitForFunction(() => document.querySelectorAll('#sends tbody tr').length >= 2);
    // Credentials are checked: a file that is no service account is refused with the server's reason.
    await page.fill('textarea[name=service-account]', '{"type": "user"}');
    await page.click('button:has-text("Save FCM credentials")');
    await page.waitForSelector('p.note.error');
    assert.match(await page.textContent('#fcm-status'), /Not configured/);
    await screenshot(page, '15-push');
    await page.click(`#registrations tr[data-registration="${id}"] button:has-text("Delete")`);
    await page.waitForSelector('#no-registrations');
    r = await fetch(`${roost.base}/t/${tenant}/push/registrations?platform=webpush&deviceId=${encodeURIComponent(sub.endpoint)}`, { headers: client });
    assert.deepEqual(await r.json(), []);
  } finally {
    await rx.stop();
  }
});

test("a page's own WebCrypto keys register through §7.2 and decrypt a script's push in the page", async () => {
  // The browser half headless Chromium's PushManager cannot give here (it refuses subscribe, and its
  // push service is Google's): the page makes a subscription's keys as a browser does (P-256 ECDH
  // and a 16-byte auth secret, WebCrypto), registers them from its own origin through §7.2, and
  // decrypts (RFC 8291, in the page) the record the receiver kept of a table script's push.send.
  const rx = await startWebPush();
  const app = await servePage(`<!DOCTYPE html><html><body><script>
    const b64 = (u8) => btoa(String.fromCharCode(...u8)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
    const unb64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
    const cat = (...parts) => { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let i = 0; for (const p of parts) { out.set(p, i); i += p.length; } return out; };
    const text = (s) => new TextEncoder().encode(s);
    async function hkdf(salt, ikm, info, bytes) {
      const key = await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
      return new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, bytes * 8));
    }
    let keys, uaPublic, auth;
    window.makeKeys = async () => {
      keys = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
      uaPublic = new Uint8Array(await crypto.subtle.exportKey('raw', keys.publicKey));
      auth = crypto.getRandomValues(new Uint8Array(16));
      return { p256dh: b64(uaPublic), auth: b64(auth) };
    };
    window.register = async (base, appKey, subscription) => {
      const h = { 'X-ZUMO-APPLICATION': appKey, 'Content-Type': 'application/json' };
      const r = await fetch(base + '/push/registrationids', { method: 'POST', headers: h });
      const id = r.headers.get('Location').split('/').pop();
      const put = await fetch(base + '/push/registrations/' + id, { method: 'PUT', headers: h,
        body: JSON.stringify({ platform: 'webpush', deviceId: subscription.endpoint, keys: subscription.keys, tags: ['orders'] }) });
      return { id, status: put.status };
    };
    window.decrypt = async (record) => {
      const m = unb64(record);
      const salt = m.slice(0, 16), idlen = m[20], asPublic = m.slice(21, 21 + idlen), body = m.slice(21 + idlen);
      const peer = await crypto.subtle.importKey('raw', asPublic, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
      const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: peer }, keys.privateKey, 256));
      const ikm = await hkdf(auth, shared, cat(text('WebPush: info\\0'), uaPublic, asPublic), 32);
      const cek = await hkdf(salt, ikm, text('Content-Encoding: aes128gcm\\0'), 16);
      const nonce = await hkdf(salt, ikm, text('Content-Encoding: nonce\\0'), 12);
      const key = await crypto.subtle.importKey('raw', cek, 'AES-GCM', false, ['decrypt']);
      const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonce }, key, body));
      let end = plain.length - 1;
      while (end > 0 && plain[end] === 0) end--;
      if (plain[end] !== 2) throw new Error('not the last record of a message');
      return new TextDecoder().decode(plain.slice(0, end));
    };
  </script></body></html>`);
  const manage = (method, path, body) => fetch(`${roost.base}/manage/v1${path}`, {
    method, headers: { Authorization: 'Bearer e2e-platform-token', 'Content-Type': 'application/json' }, body: body && JSON.stringify(body),
  });
  try {
    const r = await manage('PATCH', `/tenants/${tenant}/settings`, { outbound_allow: [`127.0.0.1:${rx.port}`], cors_origins: ['localhost', '127.0.0.1'] });
    assert.equal(r.status, 200, await r.text());
    const client = await browser.browser.newContext();
    const appPage = await client.newPage();
    await appPage.goto(app.url);
    const keys = await appPage.evaluate(() => window.makeKeys());
    const subscription = await rx.subscribe({ keys });
    const registered = await appPage.evaluate(([base, key, sub]) => window.register(base, key, sub), [`${roost.base}/t/${tenant}`, appKey, subscription]);
    assert.equal(registered.status, 204);
    // The alerts table's insert script (the previous test) sends to the tag.
    const ins = await fetch(`${roost.base}/t/${tenant}/tables/alerts`, {
      method: 'POST', headers: { 'X-ZUMO-APPLICATION': appKey, 'Content-Type': 'application/json' }, body: JSON.stringify({ text: 'Decrypted by the page' }),
    });
    assert.equal(ins.status, 201, await ins.text());
    let messages = [];
    for (let i = 0; i < 100 && messages.length === 0; i++) {
      messages = (await rx.messages()).filter((m) => m.record);
      if (messages.length === 0) await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.equal(messages.length, 1);
    const plain = await appPage.evaluate((record) => window.decrypt(record), messages[0].record);
    assert.deepEqual(JSON.parse(plain), { message: 'Decrypted by the page' });
    await client.close();
  } finally {
    await rx.stop();
    await app.stop();
  }
});

test('an admin downloads a backup from Scale and restores it as a new tenant', async () => {
  const api = (method, path, body) => fetch(`${roost.base}/manage/v1${path}`, {
    method, headers: { Authorization: 'Bearer e2e-platform-token', 'Content-Type': 'application/json' }, body: body && JSON.stringify(body),
  });
  await page.goto(`${roost.base}/portal/#/t/${tenant}/scale`);
  await page.waitForSelector('#backup-download');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#backup-download')]);
  const file = join(output, 'backup.roostbak');
  await download.saveAs(file);
  const copy = 'restored' + Date.now().toString(36);
  await page.setInputFiles('#restore-form input[type=file]', file);
  await page.fill('#restore-form input[type=text]', copy);
  await page.click('#restore-form button[type=submit]');
  await page.waitForSelector('.note:has-text("Restored")', { timeout: 20000 });
  await screenshot(page, '20-backups');
  // The copy answers the same rows, with the original's keys.
  const rows = (t) => fetch(`${roost.base}/t/${t}/tables/orders?__systemproperties=*&$orderby=id`, { headers: { 'X-ZUMO-APPLICATION': appKey } }).then(async (r) => [r.status, await r.text()]);
  const [a, b] = [await rows(tenant), await rows(copy)];
  assert.equal(a[0], 200, a[1]);
  assert.deepEqual(b, a);
  assert.equal((await api('DELETE', `/tenants/${copy}`)).status, 204);
});

test('the dashboard shows the calls just made; the platform view sorts by errors; a rate-limited tenant shows its hits', async () => {
  const api = (method, path, body) => fetch(`${roost.base}/manage/v1${path}`, {
    method, headers: { Authorization: 'Bearer e2e-platform-token', 'Content-Type': 'application/json' }, body: body && JSON.stringify(body),
  });
  const before = await api('GET', `/tenants/${tenant}/dashboard?range=1h`).then((r) => r.json());
  const read = (path) => fetch(`${roost.base}/t/${tenant}${path}`, { headers: { 'X-ZUMO-APPLICATION': appKey } }).then((r) => r.status);
  for (let i = 0; i < 5; i++) assert.equal(await read('/tables/orders'), 200);
  for (let i = 0; i < 3; i++) assert.equal(await read('/tables/missing'), 404);
  const want = before.totals.requests + 8;
  await page.goto(`${roost.base}/portal/#/t/${tenant}/dashboard`);
  await page.waitForFunction((n) => Number(document.querySelector('#api-calls')?.textContent) >= n, want, { timeout: 20000 });
  const errors = Number(await page.textContent('#errors'));
  assert.ok(errors >= 3, `errors shown: ${errors}`);
  // The chart's last bars hold those requests; their titles say so in words.
  const titles = await page.locator('#requests-chart g.bar title').allTextContents();
  assert.ok(titles.some((t) => /[1-9]\d* requests, [1-9]\d* errors/.test(t)), titles.join(' | '));
  assert.match(await page.textContent('#top'), /tables\/orders/);
  await screenshot(page, '16-dashboard');
  // A second tenant on the free tier (20 requests a second), hammered past its rate.
  const limited = 'limited' + Date.now().toString(36);
  assert.equal((await api('POST', '/tenants', { name: limited })).status, 201);
  assert.equal((await api('POST', `/tenants/${limited}/tables`, { name: 'items', permissions: { read: 'public' } })).status, 201);
  assert.equal((await api('PUT', `/tenants/${limited}/tier`, { tier: 'free' })).status, 200);
  const statuses = await Promise.all(Array.from({ length: 80 }, () => fetch(`${roost.base}/t/${limited}/tables/items`).then((r) => r.status)));
  assert.ok(statuses.includes(429), statuses.join(','));
  // The platform view lists both tenants; sorted by errors, ours (the 404s) comes first.
  await page.click('header.top a:has-text("Monitoring")');
  await page.waitForSelector(`#platform-tenants tr[data-tenant="${limited}"]`);
  await page.click('button[data-sort=errors]');
  assert.match(await page.textContent('button[data-sort=errors]'), /▼/);
  await page.waitForFunction((t) => document.querySelector('#platform-tenants tbody tr')?.dataset.tenant === t, tenant);
  await page.waitForFunction((t) => Number(document.querySelector(`#platform-tenants tr[data-tenant="${t}"] .limit-hits`)?.textContent) > 0, limited, { timeout: 20000 });
  await screenshot(page, '17-monitoring');
  // The limited tenant's dashboard shows its rate-limit hits.
  await page.click(`#platform-tenants a:has-text("${limited}")`);
  await page.waitForFunction(() => Number(document.querySelector('#limit-hits')?.textContent) > 0, null, { timeout: 20000 });
  assert.match(await page.textContent('#limits'), /rate/);
  await screenshot(page, '18-rate-limited');
  await page.click('nav.tabs a:has-text("Scale")');
  await page.waitForSelector('#tier-name');
  assert.equal(await page.textContent('#tier-name'), 'free');
  await screenshot(page, '19-scale');
  assert.equal((await api('DELETE', `/tenants/${limited}`)).status, 204);
  // Back to the first tenant's keys for the next test.
  await page.goto(`${roost.base}/portal/#/t/${tenant}/configure`);
  await page.click('button:has-text("Show keys")');
  await page.waitForSelector('#application-key');
});

test('regenerating the application key refuses the old one', async () => {
  await page.click('nav.tabs a:has-text("Configure")');
  await page.click('button:has-text("Regenerate application key")');
  await page.waitForSelector('text=The application key was regenerated');
  const newKey = (await page.textContent('#application-key')).trim();
  assert.notEqual(newKey, appKey);
  // Insert is public now; a read needs the application key.
  const read = (key) => fetch(`${roost.base}/t/${tenant}/tables/orders`, { headers: { 'X-ZUMO-APPLICATION': key } }).then((r) => r.status);
  assert.equal(await read(appKey), 401, 'the old key is refused');
  assert.equal(await read(newKey), 200, 'the new key works');
  await signOut();
});

test('support sees monitoring and logs, never data or scripts', async () => {
  await signIn(support);
  await page.waitForSelector(`#tenant-list a:has-text("${tenant}")`);
  assert.equal(await page.locator('button:has-text("Create tenant")').count(), 0);
  await page.click(`#tenant-list a:has-text("${tenant}")`);
  await page.waitForSelector('#dashboard');
  const tabs = await page.locator('nav.tabs a').allTextContents();
  assert.deepEqual(tabs, ['Dashboard', 'Monitor', 'Logs', 'Scale']);
  await page.click('nav.tabs a:has-text("Monitor")');
  await page.waitForSelector('#monitor');
  await screenshot(page, '14-support-monitor');
  await page.goto(`${roost.base}/portal/#/t/${tenant}/data/orders`);
  await page.waitForSelector('text=This view is not available to your role.');
  await page.goto(`${roost.base}/portal/#/t/${tenant}/logs`);
  await page.waitForSelector('#logs >> text=inserting order first order');
  await screenshot(page, '15-support-logs');
  // The API refuses support on data, scripts, keys and settings, with the session cookie.
  const statuses = await page.evaluate(async (t) => {
    const s = await fetch('/manage/v1/session').then((r) => r.json());
    const get = (p) => fetch(`/manage/v1${p}`).then((r) => r.status);
    const post = (p, body) => fetch(`/manage/v1${p}`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token }, body: JSON.stringify(body) }).then((r) => r.status);
    return {
      tables: await get(`/tenants/${t}/tables`),
      rows: await get(`/tenants/${t}/tables/orders/rows`),
      scripts: await get(`/tenants/${t}/scripts`),
      tenant: await get(`/tenants/${t}`),
      insert: await post(`/tenants/${t}/tables/orders/rows`, { title: 'x' }),
      logs: await get(`/tenants/${t}/logs`),
      monitor: await get(`/tenants/${t}/monitor`),
      dashboard: await get(`/tenants/${t}/dashboard?range=24h`),
      platform: await get('/monitor'),
      tier: await fetch(`/manage/v1/tenants/${t}/tier`, { method: 'PUT', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token }, body: JSON.stringify({ tier: 'standard' }) }).then((r) => r.status),
    };
  }, tenant);
  assert.deepEqual(statuses, { tables: 403, rows: 403, scripts: 403, tenant: 403, insert: 403, logs: 200, monitor: 200, dashboard: 200, platform: 200, tier: 403 });
  // Support watches the platform view too.
  await page.click('header.top a:has-text("Monitoring")');
  await page.waitForSelector(`#platform-tenants tr[data-tenant="${tenant}"]`);
});

test('an admin deletes a tenant after typing its name', async () => {
  await signOut();
  await signIn(admin);
  const row = page.locator('#tenant-list tr', { hasText: tenant });
  await row.locator('button:has-text("Delete")').click();
  await page.fill('input[name=confirm-name]', 'not-the-name');
  await page.click('button:has-text("Delete for good")');
  await page.waitForSelector(`text=Type '${tenant}' to delete it.`);
  await page.fill('input[name=confirm-name]', tenant);
  await page.click('button:has-text("Delete for good")');
  await page.waitForSelector(`text=Deleted ${tenant}`);
  await page.waitForSelector('text=No tenants yet.');
  const r = await fetch(`${roost.base}/t/${tenant}/tables/orders`);
  assert.equal(r.status, 404);
});
