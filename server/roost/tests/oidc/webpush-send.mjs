// The reference sender of `roost-bench push`: the npm `web-push` library (what Node backends such as
// Parse Server use) sending one payload to every subscription in a file, `parallel` at a time, with
// a VAPID key of its own. Prints {"sent", "ms"}.
//
//   node webpush-send.mjs '{"subscriptions": "subs.json", "parallel": 64, "payload": "…"}'
import fs from 'node:fs';
import webpush from 'web-push';

const o = JSON.parse(process.argv[2]);
const subscriptions = JSON.parse(fs.readFileSync(o.subscriptions, 'utf8'));
const keys = webpush.generateVAPIDKeys();
webpush.setVapidDetails('mailto:bench@roost.invalid', keys.publicKey, keys.privateKey);
const started = Date.now();
let next = 0;
let sent = 0;
async function worker() {
  while (next < subscriptions.length) {
    const sub = subscriptions[next++];
    await webpush.sendNotification(sub, o.payload, { TTL: 600 });
    sent += 1;
  }
}
await Promise.all(Array.from({ length: o.parallel || 64 }, worker));
process.stdout.write(JSON.stringify({ sent, ms: Date.now() - started }) + '\n');
