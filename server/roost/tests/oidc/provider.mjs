// A real OpenID provider for Roost's identity tests: oidc-provider (certified) on 127.0.0.1, with its
// development login and consent pages (any login name is an account; its subject is that name).
//
//   node provider.mjs '{"port":0,"clients":[{"client_id":"roost","client_secret":"s","redirect_uris":["http://…"]}]}'
//
// Prints one line `{"issuer":"http://127.0.0.1:PORT","kid":"…"}` once it listens. Each start makes a
// new RSA signing key (restarting on the same port rotates the key). For tests that need crafted
// tokens, `POST /__test/sign` with `{"claims":{…},"mode":"rs256"|"none"|"hs256-public"|"foreign","kid"?}`
// answers a JWT: signed with the provider's key, unsigned, HMAC-signed with the provider's public key
// (the algorithm-confusion attack), or signed with a key the provider never published.
import Provider from 'oidc-provider';
import * as jose from 'jose';
import http from 'node:http';
import { randomUUID } from 'node:crypto';

const config = JSON.parse(process.argv[2] || '{}');
const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
const kid = randomUUID();
const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
const foreign = await jose.generateKeyPair('RS256', { extractable: true });

const server = http.createServer();
await new Promise((resolve) => server.listen(config.port || 0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: config.clients || [],
  jwks: { keys: [privateJwk] },
  cookies: { keys: ['roost-test-cookie-key'] },
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => false },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, email: `${id}@example.test`, email_verified: true, name: `User ${id}` }; } };
  },
});
provider.proxy = false;

const sign = async (body) => {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: issuer, iat: now, exp: now + 300, ...body.claims };
  switch (body.mode || 'rs256') {
    case 'rs256':
      return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: body.kid || kid, typ: 'JWT' }).sign(privateKey);
    case 'foreign':
      return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(foreign.privateKey);
    case 'none':
      return new jose.UnsecuredJWT(claims).encode();
    case 'hs256-public': {
      const secret = new TextEncoder().encode(await jose.exportSPKI(publicKey));
      return new jose.SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' }).sign(secret);
    }
    default:
      throw new Error(`unknown mode ${body.mode}`);
  }
};

const callback = provider.callback();
server.on('request', async (req, res) => {
  if (req.method === 'POST' && req.url === '/__test/sign') {
    let text = '';
    for await (const chunk of req) text += chunk;
    try {
      const jwt = await sign(JSON.parse(text));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jwt, publicJwk }));
    } catch (e) {
      res.writeHead(400).end(String(e));
    }
    return;
  }
  callback(req, res);
});
process.stdout.write(JSON.stringify({ issuer, kid }) + '\n');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
