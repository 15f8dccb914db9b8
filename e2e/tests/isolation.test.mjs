// Issue 11, the portal takeover: a signed-in admin opens a tenant's HTML page on the portal's own
// origin (the default single listener). The page's script tries what once worked: read the session's
// CSRF token, create an admin account, read every tenant's master key. It must still render and run,
// and every one of those attempts must fail.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRoost, launchBrowser, screenshot } from '../lib/roost.mjs';

const admin = { email: 'iso-admin@example.com', password: 'correct horse battery', role: 'admin' };
const tenant = 'iso' + Date.now().toString(36);
const token = 'e2e-platform-token';
let roost, browser, page;

const ATTACK = `exports.get = function (req, res) {
  res.set('Content-Type', 'text/html; charset=utf-8');
  res.send(200, '<!DOCTYPE html><html><body><h1 id="title">A tenant page</h1><pre id="out">running</pre><script>' +
    '(async function () {' +
    '  var out = { origin: String(window.origin) };' +
    '  try { var s = await fetch("/manage/v1/session", { credentials: "include" }); out.session = s.status; out.csrf = (await s.json()).csrf_token || null; }' +
    '  catch (e) { out.session = "refused: " + e.name; }' +
    '  try { var a = await fetch("/manage/v1/accounts", { method: "POST", credentials: "include", headers: { "Content-Type": "application/json", "X-CSRF-Token": out.csrf || "" },' +
    '    body: JSON.stringify({ email: "evil@example.com", password: "evil password 123", role: "admin" }) }); out.create = a.status; }' +
    '  catch (e) { out.create = "refused: " + e.name; }' +
    '  try { var t = await fetch("/manage/v1/tenants/${tenant}", { credentials: "include" }); out.keys = t.status + " " + (await t.text()).slice(0, 80); }' +
    '  catch (e) { out.keys = "refused: " + e.name; }' +
    '  try { out.cookie = document.cookie; } catch (e) { out.cookie = "refused: " + e.name; }' +
    '  document.getElementById("out").textContent = JSON.stringify(out);' +
    '  document.body.setAttribute("data-done", "1");' +
    '})();' +
    '</script></body></html>');
};`;

async function manage(method, path, body) {
  const r = await fetch(`${roost.base}/manage/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

before(async () => {
  roost = await startRoost({ accounts: [admin] });
  browser = await launchBrowser();
  const context = await browser.browser.newContext({ viewport: { width: 1000, height: 700 } });
  page = await context.newPage();
  page.setDefaultTimeout(10000);
  assert.equal((await manage('POST', '/tenants', { name: tenant })).status, 201);
  const put = await manage('PUT', `/tenants/${tenant}/scripts/api/page`, { body: ATTACK, permissions: { routes: { '*': { permission: 'public' } } } });
  assert.equal(put.status, 200, JSON.stringify(put.body));
});

after(async () => {
  await browser?.close();
  await roost?.stop();
});

test('a tenant page opened by a signed-in admin cannot act as the portal', async () => {
  await page.goto(`${roost.base}/portal/`);
  await page.fill('input[name=email]', admin.email);
  await page.fill('input[name=password]', admin.password);
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('header.top .email');

  await page.goto(`${roost.base}/t/${tenant}/api/page`);
  // The page renders and its own script runs (the sandbox allows scripts)...
  assert.equal(await page.textContent('#title'), 'A tenant page');
  await page.waitForSelector('body[data-done="1"]');
  const out = JSON.parse(await page.textContent('#out'));
  await screenshot(page, 'isolation-tenant-page');
  // ...in an opaque origin: nothing of /manage/v1 is readable and nothing was created.
  assert.equal(out.origin, 'null', JSON.stringify(out));
  assert.match(String(out.session), /^refused/, JSON.stringify(out));
  assert.equal(out.csrf, undefined, JSON.stringify(out));
  assert.match(String(out.create), /^refused/, JSON.stringify(out));
  assert.match(String(out.keys), /^refused/, JSON.stringify(out));
  assert.doesNotMatch(String(out.keys), /master_key/);
  assert.doesNotMatch(String(out.cookie), /roost_session/);
  const accounts = await manage('GET', '/accounts');
  assert.equal(accounts.status, 200);
  assert.ok(!accounts.body.some((a) => a.email === 'evil@example.com'), JSON.stringify(accounts.body));

  // The admin's session still works in the portal afterwards.
  await page.goto(`${roost.base}/portal/`);
  await page.waitForSelector('header.top .email');
  assert.equal(await page.textContent('header.top .email'), admin.email);
});
