// A real OpenID Connect provider (the `oidc-provider` package, OpenID Certified) for the interop tests.
//
// Started by tests/oidc_fixtures.py as `node provider.mjs` with:
//   OIDC_TEST_CLIENTS  JSON list of {client_id, client_secret, redirect_uris} to register
//   OIDC_TEST_ADMIN_TOKEN  bearer token for the /admin/* endpoints below
//   OIDC_TEST_PORT     port to listen on (0 or unset: any free port)
//   OIDC_TEST_EXIT_WITH_STDIN=1  exit when stdin closes (the fixture's pipe), so no provider outlives it
// It listens on 127.0.0.1 and prints one JSON line {"issuer": "http://127.0.0.1:<port>"} when ready.
//
// Provider behaviour: the development login/consent pages (devInteractions: any login and password;
// the login becomes the account), PKCE required, offline_access (with prompt=consent) issues a refresh
// token, refresh tokens rotate on every use, introspection and revocation (RFC 7662 / RFC 7009) on,
// RFC 9207 `iss` in authorization responses (the package always sends it).
//
// Test-only admin endpoints (Authorization: Bearer OIDC_TEST_ADMIN_TOKEN):
//   POST /admin/rotate-keys           new RSA signing key; the old one stays published but unused
//                                     (body {"drop_old": true} unpublishes it). Grants, sessions and
//                                     tokens survive: the provider instance is rebuilt on the same store.
//   POST /admin/access-token-ttl      body {"seconds": N}: lifetime of access tokens issued from now on
//   GET  /admin/keys                  {"kids": [...]} signing key ids, current first
import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const clients = JSON.parse(process.env.OIDC_TEST_CLIENTS || '[]');
const adminToken = process.env.OIDC_TEST_ADMIN_TOKEN || '';
const port = Number(process.env.OIDC_TEST_PORT || 0);
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

if (!adminToken) {
  console.error('OIDC_TEST_ADMIN_TOKEN must be set');
  process.exit(2);
}

let accessTokenTTL = 300;
let signingKeys = [newSigningKey()];

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `k-${crypto.randomBytes(6).toString('hex')}`,
    alg: 'RS256',
    use: 'sig',
  };
}

// The login typed on the development login page is the account id and the subject (`sub`); the
// email is derived from it: `alice` -> alice@example.test, verified unless it starts "unverified".
function claimsFor(login) {
  const email = login.includes('@') ? login : `${login}@example.test`;
  const local = email.split('@')[0];
  return {
    sub: login,
    email,
    email_verified: !local.startsWith('unverified'),
    name: local.replace(/[._-]+/g, ' ').replace(/\b\w/g, (c) => c.toUpperCase()),
    preferred_username: local,
  };
}

function configuration() {
  return {
    clients: clients.map((client) => ({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...client,
    })),
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    features: {
      devInteractions: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    ttl: {
      AccessToken: () => accessTokenTTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 24 * 3600,
    },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return claimsFor(id);
        },
      };
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>oops</title><h1>oops! something went wrong</h1><pre>${
        JSON.stringify(out).replace(/</g, '&lt;')}</pre>`;
    },
  };
}

let provider;
let issuer;

function build() {
  provider = new Provider(issuer, configuration());
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch (error) {
        reject(error);
      }
    });
    req.on('error', reject);
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function admin(req, res) {
  const given = Buffer.from(req.headers.authorization || '');
  const expected = Buffer.from(`Bearer ${adminToken}`);
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    return json(res, 401, { error: 'unauthorized' });
  }
  const path = new URL(req.url, issuer).pathname;
  if (req.method === 'GET' && path === '/admin/keys') {
    return json(res, 200, { kids: signingKeys.map((key) => key.kid) });
  }
  if (req.method === 'POST' && path === '/admin/rotate-keys') {
    const body = await readBody(req);
    const fresh = newSigningKey();
    signingKeys = body.drop_old ? [fresh] : [fresh, ...signingKeys];
    build();
    return json(res, 200, { kids: signingKeys.map((key) => key.kid) });
  }
  if (req.method === 'POST' && path === '/admin/access-token-ttl') {
    const body = await readBody(req);
    const seconds = Number(body.seconds);
    if (!Number.isInteger(seconds) || seconds < 1) return json(res, 400, { error: 'invalid_request' });
    accessTokenTTL = seconds;
    return json(res, 200, { seconds });
  }
  return json(res, 404, { error: 'not_found' });
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/admin/')) {
    admin(req, res).catch((error) => json(res, 500, { error: String(error) }));
    return;
  }
  provider.callback()(req, res);
});

server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  build();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

if (process.env.OIDC_TEST_EXIT_WITH_STDIN === '1') {
  // The test fixture holds our stdin open; when it goes away (even killed), so do we.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
