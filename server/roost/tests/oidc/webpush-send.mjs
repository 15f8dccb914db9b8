// The reference sender of `roost-bench push`: the npm `web-push` library (what Node backends such as
// Parse Server use) encrypting and signing one payload for every subscription in a file, `parallel`
// at a time, with a VAPID key of its own. Its own `sendNotification` speaks only https, so the
// requests it builds (`generateRequestDetails`: the aes128gcm body and the VAPID headers) are sent
// over a keep-alive http agent to the loopback receiver, as its `sendNotification` would send them.
// Prints {"sent", "ms", "cpu_ms"} (the process's CPU time while sending, user and system).
//
//   node webpush-send.mjs '{"subscriptions": "subs.json", "parallel": 64, "payload": "…"}'
import fs from 'node:fs';
import http from 'node:http';
import webpush from 'web-push';

const o = JSON.parse(process.argv[2]);
const subscriptions = JSON.parse(fs.readFileSync(o.subscriptions, 'utf8'));
const parallel = o.parallel || 64;
const keys = webpush.generateVAPIDKeys();
webpush.setVapidDetails('mailto:bench@roost.invalid', keys.publicKey, keys.privateKey);
const agent = new http.Agent({ keepAlive: true, maxSockets: parallel });

function post(details) {
  return new Promise((resolve, reject) => {
    const u = new URL(details.endpoint);
    const req = http.request({ hostname: u.hostname, port: u.port, path: u.pathname, method: details.method, headers: details.headers, agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode >= 200 && res.statusCode < 300 ? resolve() : reject(new Error(`answered ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(details.body);
  });
}

const started = Date.now();
const cpu0 = process.cpuUsage();
let next = 0;
let sent = 0;
async function worker() {
  while (next < subscriptions.length) {
    const sub = subscriptions[next++];
    await post(webpush.generateRequestDetails(sub, o.payload, { TTL: 600 }));
    sent += 1;
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
const cpu = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ sent, ms: Date.now() - started, cpu_ms: Math.round((cpu.user + cpu.system) / 1000) }) + '\n');
agent.destroy();
