// The reference provider for crates/server/benches/oidc.rs: Node's certified
// `oidc-provider`, configured like Wardgate's provider so that the two can be driven by the
// same load generator.
//
//   node provider.mjs CLIENT_SECRET REDIRECT_URI
//
// Prints one JSON line on stdout once it listens: {"issuer": "http://127.0.0.1:PORT"}.
//
// Equivalence with Wardgate:
// - ES256 for ID tokens and access tokens (one EC P-256 key, made at start);
// - access tokens are JWTs (RFC 9068, `typ: at+jwt`) for every grant: resource indicators
//   with a default resource whose format is 'jwt';
// - refresh tokens are opaque, issued on every code grant and rotated on every use
//   (a reused one revokes the grant, as in Wardgate);
// - PKCE S256; client_secret_basic; the same lifetimes (access 5 min, ID token 5 min, code
//   1 min, refresh 12 h);
// - the person signs in once (a fixed account, no password: the bench measures the
//   protocol, not the sign-in) and first-party consent is granted in the same interaction;
//   later authorization requests carry the session cookies and get a code at once.
//
// Storage: everything in memory, in a plain Map (see `MapAdapter`). The package's own
// development adapter is an LRU capped at 1000 entries that also rewrites a grant's whole
// member list on every token it saves, which grows with every rotation of a long refresh
// chain; it would lose live tokens and slow down quadratically here, so it is not used.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const [clientSecret, redirectUri] = process.argv.slice(2);
if (!clientSecret || !redirectUri) {
  console.error('usage: node provider.mjs CLIENT_SECRET REDIRECT_URI');
  process.exit(2);
}

const RESOURCE = 'urn:wardgate:bench:api';
const ACCOUNT = 'rsmith';

/** In-memory storage with no cap and O(1) work per operation. */
const store = new Map();
const grants = new Map();
const uids = new Map();

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, expiresAt });
    if (payload.grantId) {
      let members = grants.get(payload.grantId);
      if (!members) {
        members = new Set();
        grants.set(payload.grantId, members);
      }
      members.add(key);
    }
    if (this.model === 'Session' && payload.uid) {
      uids.set(payload.uid, id);
    }
  }

  async find(id) {
    const key = this.key(id);
    const found = store.get(key);
    if (!found) return undefined;
    if (found.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return found.payload;
  }

  async findByUid(uid) {
    const id = uids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const found = store.get(this.key(id));
    if (found) found.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) store.delete(key);
    grants.delete(grantId);
  }
}

const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const configuration = {
  adapter: MapAdapter,
  clients: [
    {
      client_id: 'bench',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  claims: {
    // Wardgate's ID tokens carry these five whatever the scope.
    openid: ['sub', 'acr', 'amr', 'auth_time', 'sid'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
  },
  acrValues: ['urn:wardgate:aal2'],
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({
      sub,
      name: 'Rita Smith',
      preferred_username: 'rsmith',
      email: 'rsmith@example.org',
    }),
  }),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: 'api',
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  pkce: { required: () => true },
  // Wardgate issues a refresh token with every code grant and rotates it on every use.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 300,
    AuthorizationCode: 60,
    ClientCredentials: 300,
    IdToken: 300,
    RefreshToken: 12 * 3600,
    Grant: 12 * 3600,
    Session: 12 * 3600,
    Interaction: 3600,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
};

// The issuer names the port, which is known once the server listens.
const server = http.createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, configuration);

/** The sign-in and consent pages, answered without a person: a fixed account, all scopes. */
async function interaction(req, res) {
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session, grantId } = details;
    if (prompt.name === 'login') {
      // What Wardgate records for a passphrase and an authenticator app.
      const login = { accountId: ACCOUNT, acr: 'urn:wardgate:aal2', amr: ['pwd', 'otp', 'mfa'] };
      await provider.interactionFinished(req, res, { login }, { mergeWithLastSubmission: false });
      return;
    }
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const saved = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId: saved } }, { mergeWithLastSubmission: true });
  } catch (e) {
    res.statusCode = 500;
    res.end(String(e));
  }
}

const handle = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res);
  } else {
    handle(req, res);
  }
});
server.keepAliveTimeout = 60_000;
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
