#!/usr/bin/env node
// A real OpenID provider for the lua-msal specs: the `oidc-provider` npm package
// (panva, certified OpenID implementation), configured for the flows lua-msal
// runs in `protocol_mode = "oidc"`. Loopback only; nothing here talks to the
// network beyond 127.0.0.1.
//
// Usage:  node oidc_server.js [port] [--port-file FILE]
//   port  from argv, else env OIDC_PORT, else 0 (the kernel picks one). The
//         chosen port is printed as "oidc_server listening on http://127.0.0.1:P"
//         and, with --port-file (or env OIDC_PORT_FILE), written to FILE
//         (atomically, after the server accepts connections).
// Env:    OIDC_AT_TTL (access tokens, default 300 s), OIDC_RT_TTL (refresh
//         tokens, 86400), OIDC_IDT_TTL (id tokens, 3600), OIDC_DEVICE_TTL (device
//         codes, 600), OIDC_DEVICE_INTERVAL (polling interval advertised by the
//         device authorization endpoint, 1 s), OIDC_DEBUG=1 (log every request
//         and server-side error on stderr), OIDC_AT_ALG=ES256 (the API's access
//         tokens signed with a P-256 key, published beside the RSA one). Signing
//         keys are fresh per start: restarting on the same port rotates them.
//
// Endpoints (issuer http://127.0.0.1:P; all listed in
// /.well-known/openid-configuration):
//   /auth  /token  /jwks  /me (userinfo)  /device/auth (device authorization)
//   /device (user code entry)  /token/revocation  /session/end (logout)
//   /__test/require_interaction?token=RT (POST; test hook: later refreshes of
//   that grant answer interaction_required, as Entra does after a policy change)
//
// Clients:
//   lua-msal-public        public (token_endpoint_auth_method none), native app:
//                          redirect URIs http://127.0.0.1, http://localhost and
//                          http://[::1], each with or without the trailing "/",
//                          on ANY port (RFC 8252 section 7.3); the path must
//                          match exactly. Grants: authorization_code,
//                          refresh_token, device_code.
//   lua-msal-confidential  secret "s3cret" sent as client_secret_post (what MSAL
//                          does) or client_secret_basic; same loopback redirect
//                          URIs (any port) plus client_credentials.
//   lua-msal-certificate   private_key_jwt: client assertions signed with the key
//                          of spec/support/certs/client.crt (test only); same
//                          redirect URIs and grants as lua-msal-confidential.
//   PKCE (S256 only) is required on every authorization request, for both.
//
// Scopes: openid profile email offline_access, plus api.read api.write of the
// resource (audience) https://api.example.test. Asking for api.* without a
// `resource` parameter defaults the resource to that API, so MSAL-style scope
// lists work; its access tokens are RS256 JWTs (aud = the resource, scope =
// granted api scopes) verifiable with /jwks. Without api scopes the access token
// is opaque and only good for /me. Client credentials: scope=api.read (resource
// defaulted the same way, or resource=https://api.example.test explicitly).
// ID tokens carry the profile/email claims directly (conformIdTokenClaims off),
// so an id_token alone names the user: sub = login name, name, preferred_username,
// email.
//
// Refresh tokens: issued when the client may use refresh_token and the granted
// scope includes offline_access (see the prompt quirk below); rotated on every
// use, the old one then consumed.
//
// QUIRKS worth knowing (oidc-provider behaviour, not ours):
//   * oidc-provider drops offline_access at /auth unless prompt contains
//     "consent" (OIDC Core 11). MSAL never sends that, so this server adds
//     "consent" to the prompt of every GET /auth asking for offline_access:
//     the consent page then shows on EVERY interactive sign-in that asks for
//     offline_access. prompt=none is left alone: no refresh token from a
//     prompt=none request. A POST /auth is not rewritten.
//   * Only prompt values "none", "login" and "consent" exist; select_account is
//     removed from GET /auth (see above), any other value is invalid_request.
//   * Unknown scopes are silently ignored, not rejected; that includes Entra-style
//     "https://api.example.test/api.read" and ".../.default" (you then get an
//     opaque token without the API). Use "api.read" (+ resource=...) here.
//   * The token response `scope` names what the access token is for: only the
//     API scopes (e.g. "api.read") for an API token, the OIDC scopes for an
//     opaque /me token; never both.
//   * The device-code grant must be the RFC 8628 URN
//     (urn:ietf:params:oauth:grant-type:device_code); msal-node's short form
//     "device_code" (which Entra accepts) is unsupported_grant_type here.
//   * The `claims` request parameter must have an "id_token" or "userinfo"
//     member; one with only "access_token" (MSAL's xms_cc capabilities alone) is
//     invalid_request at /auth. At /token `claims` is ignored.
//   * Reusing a rotated (consumed) refresh token is invalid_grant AND revokes the
//     whole grant: the newest refresh token dies with it.
//   * A confidential client must authenticate one way only: client_secret in the
//     body, or HTTP Basic, never both ("only be provided using one mechanism").
//   * Error responses are plain RFC 6749 JSON ({error, error_description}); no
//     error_codes/suberror (that's what entra_server.js is for).
//   * oidc-provider 9 prints "Unsupported runtime. Use Node.js v22.x" on node 20;
//     it works (this file is tested on node 20); it is only a warning.
//
// AUTOMATING THE BROWSER PAGES (devInteractions; what a Playwright script does).
// Cookies matter (the interaction is bound to the browser session), so keep one
// browser context for the whole dance. Pages are plain HTML without scripts,
// except the form_post and verification_uri_complete auto-submit pages. The
// web-font @import of the stock pages is stripped, so nothing leaves loopback.
// Form actions are absolute URLs (http://127.0.0.1:P/...). spec/providers_spec.lua
// walks both flows below with curl, so this description is tested.
//  Authorization code flow:
//   1. GET /auth?client_id=...&response_type=code&redirect_uri=...&scope=...
//      &code_challenge=...&code_challenge_method=S256&state=...[&nonce=...]
//      -> 303 to /interaction/<uid>
//   2. Login page, GET /interaction/<uid> (<title>Sign-in</title>, <h1>Sign-in</h1>):
//        <form autocomplete="off" action="http://127.0.0.1:P/interaction/<uid>" method="post">
//          <input type="hidden" name="prompt" value="login"/>
//          <input required type="text" name="login">       any user name; becomes `sub`
//          <input required type="password" name="password"> anything (required, ignored)
//          <button type="submit" class="login login-submit">Sign-in</button>
//      Playwright: await page.fill('input[name=login]', 'alice');
//                  await page.fill('input[name=password]', 'x');
//                  await page.click('button[type=submit]');
//      (login_hint=... pre-fills the login field). Skipped while the browser
//      session (cookie _session) is signed in, unless prompt=login.
//      -> 303 to /auth/<uid> (resume) -> 303 to /interaction/<uid2>
//   3. Consent page, GET /interaction/<uid2> (<h1>Authorize</h1>): lists the
//      scopes (and "the client is asking to have offline access ..."),
//        <form autocomplete="off" action="http://127.0.0.1:P/interaction/<uid2>" method="post">
//          <input type="hidden" name="prompt" value="consent"/>
//          <button autofocus type="submit" class="login login-submit">Continue</button>
//      Playwright: await page.click('button[type=submit]');
//      Shown whenever the grant lacks a requested scope AND on every request
//      asking for offline_access (see the prompt quirk above). Tell the pages
//      apart by input[name=prompt]'s value ("login" / "consent").
//   4. -> 303 to /auth/<uid2> -> 303 to redirect_uri?code=...&state=...&iss=...
//      (query), or a self-submitting form POST to redirect_uri for
//      response_mode=form_post. Playwright sees a navigation to the loopback URL.
//   Each page also has a "[ Cancel ]" link, GET /interaction/<uid>/abort ->
//   redirect_uri?error=access_denied&...
//  Device flow (user side), after POST /device/auth returned user_code:
//   1. GET /device -> <form id="op.deviceInputForm" method="post"
//      action="http://127.0.0.1:P/device"> with hidden xsrf and text user_code;
//      the submit button sits outside the form:
//      <button type="submit" form="op.deviceInputForm">Continue</button>.
//      GET /device?user_code=XXXX-XXXX (verification_uri_complete) auto-posts
//      that form instead (a tiny script).
//   2. Confirm page (<h1>Confirm Device</h1>): <form id="op.deviceConfirmForm">
//      (hidden xsrf, user_code, confirm=yes); "Continue" is button[autofocus];
//      "[ Abort ]" is button[name=abort] (the device then gets access_denied).
//   3. -> the login page (step 2 above; resumes at /device/<uid>, not /auth/<uid>)
//      -> the consent page (step 3) -> /device/<uid2>:
//   4. "Sign-in Success" page (<h1>Sign-in Success</h1>); the device's next poll
//      of /token gets the tokens.
//  Logout: GET /session/end?client_id=...&post_logout_redirect_uri=...[&id_token_hint=...]
//   With a signed-in browser session: "Do you want to sign-out" page, a form
//   id="op.logoutForm" (action .../session/end/confirm, hidden xsrf) and
//   button[name=logout][value=yes] "Yes, sign me out". Without a session: an
//   auto-submitting form to the same place. Either way -> 303 to
//   post_logout_redirect_uri (a registered loopback URI, any port).
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const http = require("http");
const path = require("path");

const API = "https://api.example.test";
const API_SCOPES = ["api.read", "api.write"];

const AT_ALG = process.env.OIDC_AT_ALG === "ES256" ? "ES256" : "RS256";

function intEnv(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number.parseInt(v, 10);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
}

function parseArgs(argv) {
  const out = { port: process.env.OIDC_PORT || "0", portFile: process.env.OIDC_PORT_FILE };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--port-file") out.portFile = argv[++i];
    else out.port = argv[i];
  }
  out.port = Number.parseInt(out.port, 10);
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) throw new Error("bad port");
  return out;
}

const LOOPBACK_REDIRECTS = [
  "http://127.0.0.1", "http://127.0.0.1/",
  "http://localhost", "http://localhost/",
  "http://[::1]", "http://[::1]/",
];

// RFC 8252 section 7.3: a native app's loopback redirect URI may use any port.
// oidc-provider applies that rule itself for application_type "native"; the
// confidential (web) client gets the same leniency from this helper, so tests of
// the auth-code flow with a secret can also use an ephemeral loopback listener.
function loopbackMatch(value, registered) {
  let u;
  try { u = new URL(value); } catch { return false; }
  if (u.protocol !== "http:" || !["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) return false;
  const portless = value.replace(/^(http:\/\/(?:\[::1\]|[^/:?#]+)):\d+/, "$1");
  return registered.includes(portless);
}

// The only account store: every login name is a valid user, its claims derived
// from the name (the devInteractions login page accepts any password).
function account(sub) {
  const local = sub.includes("@") ? sub.split("@")[0] : sub;
  const email = sub.includes("@") ? sub : `${sub}@example.test`;
  const name = local.split(/[._-]+/).filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1)).join(" ") || sub;
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        name,
        given_name: name.split(" ")[0],
        family_name: name.split(" ").slice(1).join(" ") || undefined,
        preferred_username: sub,
        email,
        email_verified: true,
      };
    },
  };
}

function signingJwks() {
  // Fresh keys per run (so a restart on the same port is a key rotation):
  // nothing persistent, nothing checked in. RS256 signs id tokens; with
  // OIDC_AT_ALG=ES256 a P-256 key signs the API's access tokens.
  const key = (type, opts, alg) => ({
    ...crypto.generateKeyPairSync(type, opts).privateKey.export({ format: "jwk" }),
    kid: crypto.randomBytes(8).toString("hex"),
    use: "sig",
    alg,
  });
  const keys = [key("rsa", { modulusLength: 2048 }, "RS256")];
  if (AT_ALG === "ES256") keys.push(key("ec", { namedCurve: "P-256" }, "ES256"));
  return { keys };
}

// The public key of the checked-in, test-only client certificate
// (spec/support/certs/client.crt): lua-msal-certificate's client assertions
// are signed with its key (PS256, or RS256 when asked).
function testClientJwk() {
  const pem = fs.readFileSync(path.join(__dirname, "..", "certs", "client.crt"));
  return crypto.createPublicKey(pem).export({ format: "jwk" });
}

// grantIds whose refresh grants answer interaction_required (see findAccount).
const interactionRequiredGrants = new Set();

function configuration(errors) {
  const ttl = {
    at: intEnv("OIDC_AT_TTL", 300),
    rt: intEnv("OIDC_RT_TTL", 86400),
    idt: intEnv("OIDC_IDT_TTL", 3600),
    device: intEnv("OIDC_DEVICE_TTL", 600),
  };
  const redirects = { redirect_uris: LOOPBACK_REDIRECTS, post_logout_redirect_uris: LOOPBACK_REDIRECTS };
  return {
    clients: [
      {
        client_id: "lua-msal-public",
        client_name: "lua-msal public client",
        application_type: "native",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        response_types: ["code"],
        ...redirects,
      },
      {
        client_id: "lua-msal-confidential",
        client_name: "lua-msal confidential client",
        client_secret: "s3cret",
        application_type: "web",
        token_endpoint_auth_method: "client_secret_post",
        grant_types: ["authorization_code", "refresh_token", "client_credentials"],
        response_types: ["code"],
        ...redirects,
      },
      {
        client_id: "lua-msal-certificate",
        client_name: "lua-msal confidential client with a certificate",
        application_type: "web",
        token_endpoint_auth_method: "private_key_jwt",
        jwks: { keys: [testClientJwk()] },
        grant_types: ["authorization_code", "refresh_token", "client_credentials"],
        response_types: ["code"],
        ...redirects,
      },
    ],
    jwks: signingJwks(),
    // Cookie signing keys: random per run, sessions do not outlive the server.
    cookies: { keys: [crypto.randomBytes(32).toString("base64url")] },
    // A refresh grant of a grant marked by POST /__test/require_interaction
    // fails the way Entra's does after a policy change (MFA, password reset):
    // interaction_required. oidc-provider itself never answers a refresh so.
    findAccount: async (_ctx, sub, token) => {
      if (token && token.kind === "RefreshToken" && interactionRequiredGrants.has(token.grantId)) {
        throw new errors.InteractionRequired("the user must sign in again (marked by /__test/require_interaction)");
      }
      return account(sub);
    },
    claims: {
      openid: ["sub"],
      profile: ["name", "given_name", "family_name", "preferred_username"],
      email: ["email", "email_verified"],
    },
    scopes: ["openid", "profile", "email", "offline_access"],
    // Put scope-derived claims in the id_token even when an access token is
    // issued: MSAL builds its account (username, name) from the id_token alone.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    responseTypes: ["code"],
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      claimsParameter: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      introspection: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // MSAL sends no `resource` parameter; api.* scopes imply the one API.
        defaultResource(ctx, _client, oneOf) {
          if (oneOf) return oneOf;
          const scopes = String(ctx.oidc.params?.scope || "").split(" ");
          return scopes.some((s) => API_SCOPES.includes(s)) ? API : undefined;
        },
        // A code redemption / refresh with no `scope` parameter at all (plain
        // OAuth clients) stays on the granted API; with a scope list, api.* scopes
        // pick the API (defaultResource) and OIDC-only scopes get an opaque
        // token for /me.
        useGrantedResource: (ctx) => !ctx.oidc.params.scope,
        getResourceServerInfo(_ctx, resource) {
          if (resource !== API) throw new errors.InvalidTarget();
          return {
            scope: API_SCOPES.join(" "),
            audience: API,
            accessTokenTTL: ttl.at,
            accessTokenFormat: "jwt",
            jwt: { sign: { alg: AT_ALG } },
          };
        },
      },
    },
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed("refresh_token") && code.scopes.has("offline_access"),
    rotateRefreshToken: true,
    ttl: {
      AccessToken: () => ttl.at,
      ClientCredentials: () => ttl.at,
      IdToken: () => ttl.idt,
      RefreshToken: () => ttl.rt,
      DeviceCode: () => ttl.device,
      AuthorizationCode: () => 60,
      Interaction: () => 600,
      Session: () => 3600,
      Grant: () => ttl.rt,
    },
    // The stock error page also @imports a web font; this one is self-contained.
    renderError(ctx, out) {
      ctx.type = "html";
      ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>` +
        `<h1>oops! something went wrong</h1>` +
        Object.entries(out).map(([k, v]) => `<pre><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</pre>`).join("") +
        `</body></html>`;
    },
  };
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// servers.sh passes the test command's pid: when that process is gone (killed
// with SIGKILL, so its EXIT trap never ran), this server goes too, rather than
// lingering on a loopback port.
function exitWithParent() {
  const pid = Number.parseInt(process.env.MSAL_IDP_WATCH_PID || "", 10);
  if (!(pid > 0)) return;
  setInterval(() => {
    try { process.kill(pid, 0); } catch (e) { if (e.code === "ESRCH") process.exit(0); }
  }, 2000).unref();
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { default: Provider, errors } = await import("oidc-provider");
  const deviceInterval = intEnv("OIDC_DEVICE_INTERVAL", 1);
  const debug = process.env.OIDC_DEBUG === "1";

  // The issuer must carry the real port, so listen first, then build the
  // provider and attach it; nobody can reach the port before it is printed.
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(args.port, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const config = configuration(errors);
  const provider = new Provider(issuer, config);

  // RFC 8252 loopback ports for the web (confidential) client as well.
  const { redirectUriAllowed, postLogoutRedirectUriAllowed } = provider.Client.prototype;
  provider.Client.prototype.redirectUriAllowed = function (value) {
    return redirectUriAllowed.call(this, value) || loopbackMatch(value, this.redirectUris);
  };
  provider.Client.prototype.postLogoutRedirectUriAllowed = function (value) {
    return postLogoutRedirectUriAllowed.call(this, value)
      || loopbackMatch(value, this.postLogoutRedirectUris || []);
  };

  // OIDC Core 11 lets a provider drop offline_access unless prompt=consent, and
  // oidc-provider always does at /auth; MSAL never sends prompt=consent, and
  // Entra (and most real OPs) still issue refresh tokens. So a GET /auth that asks
  // for offline_access gets "consent" added to its prompt. Cost: the consent page
  // shows on every interactive sign-in that asks for offline_access. prompt=none
  // is left alone (no refresh token then). MSAL's prompt=select_account, which
  // this provider does not know (one account per browser session anyway), is
  // dropped instead of failing the request.
  provider.use(async (ctx, next) => {
    if (ctx.method === "GET" && ctx.path === "/auth") {
      const q = new URLSearchParams(ctx.querystring);
      const scopes = (q.get("scope") || "").split(" ");
      const prompts = new Set((q.get("prompt") || "").split(" ").filter(Boolean));
      const before = [...prompts].join(" ");
      prompts.delete("select_account");
      if (scopes.includes("offline_access") && !prompts.has("none")) prompts.add("consent");
      const after = [...prompts].join(" ");
      if (after !== before) {
        if (after) q.set("prompt", after);
        else q.delete("prompt");
        ctx.querystring = q.toString();
      }
    }
    await next();
  });

  // Test hook: POST /__test/require_interaction?token=<refresh token> marks that
  // token's grant, so every later refresh of it is interaction_required (what
  // Entra answers when the user must satisfy a new policy). 204, or 404 for an
  // unknown token. The token rides in the query so the body stays untouched.
  provider.use(async (ctx, next) => {
    if (ctx.path !== "/__test/require_interaction") return next();
    if (ctx.method !== "POST") { ctx.status = 405; return undefined; }
    const token = new URLSearchParams(ctx.querystring).get("token");
    const rt = token ? await provider.RefreshToken.find(token) : undefined;
    if (!rt) { ctx.status = 404; return undefined; }
    interactionRequiredGrants.add(rt.grantId);
    ctx.status = 204;
    return undefined;
  });

  // RFC 8628 lets the server advertise the polling interval (default 5 s);
  // a short one keeps device-flow specs fast.
  provider.on("device_authorization.success", (_ctx, body) => { body.interval = deviceInterval; });

  // The stock pages @import a web font from the internet; strip it so a headless
  // browser driving them never leaves loopback.
  provider.use(async (ctx, next) => {
    await next();
    if (typeof ctx.body === "string" && ctx.body.includes("fonts.googleapis.com")) {
      ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, "");
    }
  });

  if (debug) {
    provider.use(async (ctx, next) => {
      await next();
      process.stderr.write(`oidc_server: ${ctx.method} ${ctx.url} -> ${ctx.status}\n`);
    });
    provider.on("server_error", (_ctx, err) => process.stderr.write(`oidc_server: server_error ${err.stack}\n`));
    for (const ev of ["grant.error", "authorization.error", "end_session.error", "device_authorization.error"]) {
      provider.on(ev, (_ctx, err) => process.stderr.write(`oidc_server: ${ev} ${err.message} ${err.error_description || ""}\n`));
    }
  } else {
    // Server errors are bugs in this file or in a spec's assumptions: always say so.
    provider.on("server_error", (_ctx, err) => process.stderr.write(`oidc_server: server_error ${err.stack}\n`));
  }

  server.on("request", provider.callback());
  exitWithParent();

  if (args.portFile) {
    fs.writeFileSync(`${args.portFile}.tmp`, `${port}\n`);
    fs.renameSync(`${args.portFile}.tmp`, args.portFile);
  }
  process.stdout.write(`oidc_server listening on ${issuer}\n`);

  const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(`oidc_server: ${err.stack || err}\n`);
  process.exit(1);
});
