// Prints the portal's figures: the release wasm bundle size (raw and gzip, with the JS glue, the
// editor bundle and the CSS), and the time to first render of the tenant list in headless Chromium
// (navigation start to the list on screen, signed in, 20 tenants; median of 7 cold page loads).
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { startRoost, launchBrowser, repo } from './lib/roost.mjs';

const dist = join(repo, 'portal', 'dist');
const sizes = {};
for (const f of ['portal_bg.wasm', 'portal.js', 'editor.js', 'portal.css', 'index.html', 'boot.js']) {
  const b = readFileSync(join(dist, f));
  sizes[f] = { raw: b.length, gzip: gzipSync(b, { level: 9 }).length };
}
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log('portal bundle (release):');
for (const [f, s] of Object.entries(sizes)) console.log(`  ${f.padEnd(16)} ${kb(s.raw).padStart(10)} raw  ${kb(s.gzip).padStart(10)} gzip`);
const total = Object.values(sizes).reduce((a, s) => ({ raw: a.raw + s.raw, gzip: a.gzip + s.gzip }), { raw: 0, gzip: 0 });
console.log(`  ${'total'.padEnd(16)} ${kb(total.raw).padStart(10)} raw  ${kb(total.gzip).padStart(10)} gzip`);
const start = total.gzip - sizes['editor.js'].gzip;
console.log(`  loaded at start: ${kb(start)} gzip (editor.js loads when the first script editor opens)`);

const admin = { email: 'metrics@example.com', password: 'metrics password', role: 'admin' };
const roost = await startRoost({ accounts: [admin] });
const browser = await launchBrowser();
try {
  for (let i = 0; i < 20; i++) {
    await fetch(`${roost.base}/manage/v1/tenants`, { method: 'POST', headers: { Authorization: 'Bearer e2e-platform-token', 'Content-Type': 'application/json' }, body: JSON.stringify({ name: `tenant${i}` }) });
  }
  const context = await browser.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${roost.base}/portal/`);
  await page.fill('input[name=email]', admin.email);
  await page.fill('input[name=password]', admin.password);
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('#tenant-list');
  const times = [];
  for (let i = 0; i < 7; i++) {
    // A new page in the signed-in context with the HTTP cache disabled: every file is fetched again.
    const p = await context.newPage();
    const cdp = await context.newCDPSession(p);
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    await p.goto(`${roost.base}/portal/`);
    await p.waitForFunction(() => window.__roostTenantsRendered !== undefined, null, { timeout: 20000 });
    times.push(await p.evaluate(() => window.__roostTenantsRendered));
    await p.close();
  }
  times.sort((a, b) => a - b);
  console.log(`time to first render of the tenant list (signed in, 20 tenants, loopback, no cache): median ${times[3].toFixed(0)} ms, min ${times[0].toFixed(0)} ms, max ${times[6].toFixed(0)} ms`);
} finally {
  await browser.close();
  await roost.stop();
}
