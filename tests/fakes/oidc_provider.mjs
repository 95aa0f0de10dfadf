// A real OpenID provider for the tests: the npm package oidc-provider (the certified implementation), configured by
// the test (tests/fakes/oidc.py starts it) and listening on 127.0.0.1 only.
//
//   node oidc_provider.mjs CONFIG.json
//
// CONFIG: {"modules": the node_modules folder oidc-provider was installed into, "port": N,
//          "clients": [oidc-provider client metadata, ...], "usersFile": a JSON file read at every sign-in,
//          "endSession": true|false (advertise end_session_endpoint, RP-initiated logout)}
// usersFile: {"alice": {"password": "...", "claims": {"email": "...", "groups": ["lab-admins"], ...}}, ...}
// The test may rewrite it between sign-ins (a person moved to another group).
//
// The sign-in page is this script's own (the package's development pages take any password): it checks the
// password against usersFile. Consent is given at once, as a homelab provider does for its own applications.
// Prints one line, "ready ISSUER", once it listens.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { default: Provider } = await import(pathToFileURL(join(config.modules, 'oidc-provider', 'lib', 'index.js')));

const issuer = `http://127.0.0.1:${config.port}`;
const users = () => JSON.parse(readFileSync(config.usersFile, 'utf8'));
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-signing-key', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name', 'given_name', 'family_name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: config.endSession !== false,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `<h1>Sign out of the test IdP?</h1>${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<h1>Signed out of the test IdP</h1>');
      },
    },
  },
  // The package's own pages load a web font from the internet; these load nothing.
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>${escape(out.error)}</h1><p>${escape(out.error_description || '')}</p>`);
  },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const user = users()[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...user.claims };
      },
    };
  },
});

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test IdP: ${escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>${body}</body></html>`;
}

function signInPage(uid, error) {
  return page('sign in', `<h1>Test IdP</h1>${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Username <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in to the test IdP</button></form>`);
}

async function readForm(ctx) {
  let body = '';
  for await (const chunk of ctx.req) body += chunk;
  return new URLSearchParams(body);
}

// The interaction pages, in front of the provider's own routes.
provider.use(async (ctx, next) => {
  if (ctx.path === '/favicon.ico') {
    ctx.status = 204; // a browser asks on every page; a 404 there would read as an error in the e2e tests
    return undefined;
  }
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { uid, prompt, params, session } = details;
  ctx.set('Cache-Control', 'no-store');
  if (prompt.name === 'login' && ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = signInPage(uid);
    return undefined;
  }
  if (prompt.name === 'login' && ctx.method === 'POST' && match[2]) {
    const form = await readForm(ctx);
    const user = users()[form.get('username')];
    if (!user || user.password !== form.get('password')) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = signInPage(uid, 'Wrong username or password.');
      return undefined;
    }
    const to = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: form.get('username') } }, {
      mergeWithLastSubmission: false,
    });
    return ctx.redirect(to);
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const to = await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId: await grant.save() } }, {
      mergeWithLastSubmission: true,
    });
    return ctx.redirect(to);
  }
  ctx.throw(400, `unexpected interaction ${prompt.name} ${ctx.method}`);
  return undefined;
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
