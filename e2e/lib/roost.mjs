// Starts a real Roost (fresh SQLite data folder, or ROOST_E2E_DATABASE_URL) serving the built portal,
// with accounts made by the real CLI, and a headless Debian Chromium driven by playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '..', '..');
export const output = resolve(process.env.E2E_OUTPUT || join(repo, 'e2e', 'output'));

function roostBinary() {
  const candidates = [process.env.ROOST_BIN, join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'release', 'roost')].filter(Boolean);
  const bin = candidates.find((p) => existsSync(p));
  if (!bin) throw new Error(`no roost binary (tried ${candidates.join(', ')}); build it with cargo build --release --bin roost`);
  return bin;
}

export async function startRoost({ accounts = [] } = {}) {
  const bin = roostBinary();
  const data = mkdtempSync(join(tmpdir(), 'roost-e2e-'));
  const env = {
    ...process.env,
    ROOST_DATA: data,
    ROOST_DATABASE_URL: process.env.ROOST_E2E_DATABASE_URL || '',
    // The portal the binary embeds (scripts/e2e builds it before the server), served from a
    // folder that holds no portal: one binary is all a deployment needs.
    ROOST_PORTAL_DIR: '',
    ROOST_ADMIN_TOKEN: 'e2e-platform-token',
    ROOST_LOG: 'warn',
    ROOST_METRICS_FLUSH_MS: '500',
  };
  for (const a of accounts) {
    execFileSync(bin, ['admin', 'create', '--email', a.email, '--role', a.role], { env: { ...env, ROOST_PASSWORD: a.password }, stdio: 'pipe' });
  }
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0'], { env, cwd: data, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const base = await new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`roost did not start: ${out} ${stderr}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); ok(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); fail(new Error(`roost exited (${code}): ${stderr}`)); });
  });
  return {
    base,
    data,
    stderr: () => stderr,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { if (proc.exitCode !== null) r(); else proc.on('exit', r); });
      rmSync(data, { recursive: true, force: true });
    },
  };
}

// Playwright gives each launch a fresh temporary profile (the --user-data-dir of build.md).
export async function launchBrowser() {
  mkdirSync(output, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(output, `${name}.png`), fullPage: true });
}

// The identity tests' real OpenID provider (server/roost/tests/oidc, oidc-provider from npm) on
// 127.0.0.1, with these clients.
export async function startProvider(clients) {
  const { first, stop } = await startPeer('provider.mjs', { port: 0, clients }, 'the OpenID provider', 'ignore');
  return { issuer: first.issuer, port: Number(new URL(first.issuer).port), stop };
}

// One of the API tests' Node peers (server/roost/tests/oidc): started with its JSON argument, its
// first stdout line parsed; `stop` ends it.
async function startPeer(script, argument, what, stderr = 'inherit') {
  const dir = join(repo, 'server', 'roost', 'tests', 'oidc');
  const proc = spawn('node', [script, JSON.stringify(argument)], { cwd: dir, stdio: ['ignore', 'pipe', stderr] });
  const first = await new Promise((ok, fail) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) ok(JSON.parse(out.slice(0, nl)));
    });
    proc.on('exit', (code) => fail(new Error(`${what} exited (${code}): run npm ci in ${dir}`)));
  });
  proc.stdout.resume();
  return {
    first,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { if (proc.exitCode !== null) r(); else proc.on('exit', r); });
    },
  };
}

// One HTML page on its own 127.0.0.1 origin (an app using the service from a browser).
export async function servePage(html) {
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    stop: () => new Promise((r) => server.close(r)),
  };
}

// The push tests' Web Push receiver (server/roost/tests/oidc/webpush.mjs): a push service on 127.0.0.1
// that verifies VAPID and decrypts every message with the subscription's private key.
export async function startWebPush() {
  const { first, stop } = await startPeer('webpush.mjs', { port: 0 }, 'the Web Push receiver');
  const base = first.base;
  return {
    base,
    port: Number(new URL(base).port),
    async subscribe(options = {}) {
      return (await fetch(`${base}/__test/subscribe`, { method: 'POST', body: JSON.stringify(options) })).json();
    },
    async messages() {
      return (await fetch(`${base}/__test/messages`)).json();
    },
    stop,
  };
}
