#!/usr/bin/env node
// A scriptable, Entra-ID-like authority for the lua-msal specs: the Microsoft-only
// parts of the protocol (client_info, AADSTS error shapes with suberror/claims,
// refresh_in, FOCI, instance discovery, tenant-relative issuers) that a standard
// OpenID provider does not have. Plain node http, no dependencies, loopback only.
//
// Usage:  node entra_server.js [port] [--port-file FILE]
//   port from argv, else env ENTRA_PORT, else 0 (kernel-chosen). Prints
//   "entra_server listening on http://127.0.0.1:P"; with --port-file (or env
//   ENTRA_PORT_FILE) writes P to FILE once connections are accepted.
//   ENTRA_DEBUG=1 logs every request on stderr.
//
// ── Protocol endpoints (B = http://127.0.0.1:P, T = any tenant segment:
//    common, organizations, consumers, a tenant GUID or a domain name) ──────────
//   GET  B/T/v2.0/.well-known/openid-configuration   discovery; issuer is
//        B/{tenantid}/v2.0 for common/organizations/consumers (the literal
//        placeholder, as Entra does) and B/<tenant id>/v2.0 otherwise (domain
//        names listed in config.tenant_domains map to their GUID).
//   GET  B/T/discovery/v2.0/keys                     JWKS (one RS256 key, made at start)
//   GET  B/T/discovery/instance?api-version=1.1&authorization_endpoint=...
//        instance discovery: tenant_discovery_endpoint + metadata (aliases) for
//        this host; an authorization_endpoint on another host gets
//        400 invalid_instance (AADSTS50049) unless config.instance_metadata says
//        otherwise.
//   GET  B/T/oauth2/v2.0/authorize                   auto-consent: no page, the
//        user is the config.users entry whose upn is login_hint, else the first; answers with a 302
//        to redirect_uri (response_mode query/fragment) or an auto-submitting
//        form (form_post) carrying code, state, client_info (when client_info=1
//        was asked for), session_state.
//   POST B/T/oauth2/v2.0/devicecode                  device authorization (Entra
//        shape: user_code, device_code, verification_uri, expires_in, interval,
//        message; no verification_uri_complete unless config says so)
//   GET|POST B/devicelogin                           the user side of the device
//        flow: a form (field "otc" = user code, optional "login" = upn,
//        "deny=1" to decline). POST approves at once.
//   POST B/T/oauth2/v2.0/token                       grants authorization_code
//        (PKCE S256/plain checked when a challenge was sent), refresh_token,
//        device_code (short form and URN), client_credentials (scope must be
//        <resource>/.default), urn:ietf:params:oauth:grant-type:jwt-bearer
//        (on-behalf-of: requested_token_use=on_behalf_of, assertion = a user's
//        access token issued here; answers for that user).
//   GET  B/T/oauth2/v2.0/logout                      302 to post_logout_redirect_uri.
//   GET  B/oidc/userinfo                             a protected resource: with
//        "Authorization: Bearer <access token issued here>" 200 {sub, oid, tid,
//        name, preferred_username, email}; else 401 + WWW-Authenticate (script a
//        claims challenge with endpoint "userinfo", status 401 and a header).
//
// Token responses look like Entra's: token_type Bearer, scope (requested scopes
// minus openid/profile/offline_access/email, in request order; config.default_scope
// when that leaves nothing), expires_in, ext_expires_in, refresh_in (when
// configured), access_token (opaque, unique), refresh_token (a new one each time,
// when offline_access was requested), id_token (when openid was requested; RS256
// with the JWKS key: ver 2.0, iss, aud = client_id, tid, oid, sub,
// preferred_username, name, nonce when the authorize request had one, auth_time
// when it had max_age, iat, nbf, exp), client_info (base64url {"uid","utid"}, only when the request had
// client_info=1, as Entra does), foci "1" for clients in config.families.
// Refresh tokens stay valid after use (Entra behaviour) unless
// config.rt_single_use; a revoked or expired one is AADSTS700082 bad_token; a
// refresh token of another client is client_mismatch unless both are in the
// family. Every response carries x-ms-request-id and echoes client-request-id.
//
// ── Control API (JSON; not logged; all under B/__control) ──────────────────────
//   POST /__control/reset            forget queue, request log, codes, tokens and
//                                    config changes (the signing key stays).
//   POST /__control/next  ENTRY | [ENTRY...]   queue scripted answers; each
//        request takes the first queued entry whose endpoint (and `when`)
//        match. ENTRY fields:
//     endpoint   "token" | "devicecode" | "authorize" | "discovery" | "instance"
//                | "keys" | "logout" | "devicelogin" | "userinfo" | "any"  (required)
//     count      answer this many requests with it (default 1)
//     when       {param: value} all of which the request's form/query must have,
//                e.g. {"grant_type":"refresh_token"}
//     canned     name of a canned error (below); fills status/body/headers
//     status, body (JSON), headers ({name: value}, e.g. {"Retry-After":"5"})
//                -- an explicit answer; with `canned`, these override/merge
//     raw        a string sent verbatim as the body (non-JSON, truncated JSON...)
//     truncate   true: announce more bytes than sent, then cut the connection
//     drop       true: close the connection without answering
//     delay_ms   wait this long before answering (or dropping)
//     override   no status/body: do the real work, then merge these fields into
//                the success response (null deletes one), e.g.
//                {"scope":"a b","refresh_in":60,"refresh_token":null}; works for
//                token, devicecode, discovery, instance, keys; for authorize
//                they are the redirect parameters (e.g. {"state":"x"})
//     id_token_claims  with a real success: merged into the id_token's claims
//                before signing (e.g. {"nonce":"wrong"}, {"aud":"other"})
//     redirect_params  authorize only: redirect back with exactly these (plus
//                state unless given), e.g. {"error":"interaction_required",...}
//   GET  /__control/next             the entries still queued
//   GET  /__control/requests[?endpoint=token]   the request log: [{seq, time,
//        method, path, endpoint, tenant, query, headers (lower-case), form
//        (parsed x-www-form-urlencoded body; repeated keys become arrays),
//        body (raw text), scripted (true when a queued entry answered)}]
//   DELETE /__control/requests       clear the log only
//   GET  /__control/config, POST /__control/config {...}   read / merge (shallow:
//   a given key replaces the whole value) settings:
//     expires_in (3600), ext_expires_in (= expires_in when null), refresh_in
//     (null = not sent), refresh_token_lifetime (86400 s; older refresh tokens
//     fail with bad_token), refresh_token_expires_in (null = not sent),
//     id_token_lifetime (3600), families (["client id", ...] in FOCI family "1"),
//     rt_single_use (false), issue_refresh_token (true), default_scope
//     ("User.Read"), device_interval (1), device_expires_in (900),
//     device_verification_uri_complete (false), client_secrets
//     ({"lua-msal-confidential":"s3cret"}: these clients must authenticate),
//     users ([{upn, name, oid, tid, guests}], the first is the default;
//     guests: {"<tenant id>": {oid, name}} makes the user a guest of those
//     tenants: a token request to such a tenant (by id or listed domain)
//     gets an id token of that tenant (its tid, iss, oid, name, sub), while
//     client_info still names the home tenant, as Entra does),
//     tenant_domains ({"example.com": <tid>}), instance_metadata (null = this
//     host and localhost:P as aliases; or a full metadata array)
//   POST /__control/device {"user_code": "...", "action": "approve"|"deny",
//        "upn": optional}   finish a pending device flow without a form post
//   POST /__control/revoke {"refresh_token": "..."} or {} (all)  refresh tokens
//        then fail with bad_token (AADSTS700082), like an expired one.
//
// ── Canned errors (`"canned": NAME`; Entra's body: error, error_description
//    "AADSTSnnn: ... Trace ID: ... Correlation ID: ... Timestamp: ...",
//    error_codes [nnn], timestamp, trace_id, correlation_id, error_uri, plus
//    suberror/claims where shown). Extra fields: `claims` (string) and
//    `retry_after` (seconds) override those parts. ───────────────────────────────
//   bad_token             400 invalid_grant, suberror bad_token, 700082 (expired RT)
//   invalid_grant         400 invalid_grant, no suberror, 70000
//   mfa_required          400 invalid_grant, suberror basic_action, 50076, claims
//                         '{"access_token":{"capolids":{"essential":true,"values":["00000000-0000-0000-cccc-000000000003"]}}}'
//   interaction_required  400 interaction_required, 50079
//   consent_required      400 invalid_grant, suberror consent_required, 65001
//                         (what the token endpoint sends; the authorize endpoint
//                         would say error=consent_required)
//   invalid_client        401 invalid_client, 7000218 (no secret/assertion)
//   invalid_client_secret 401 invalid_client, 7000215 (wrong secret)
//   client_mismatch       400 invalid_grant, suberror client_mismatch, 70000 (FOCI)
//   invalid_scope         400 invalid_scope, 70011
//   temporarily_unavailable  503 temporarily_unavailable, 90033 (no Retry-After
//                         unless retry_after is given)
//   throttled             429 temporarily_unavailable-like throttle, 90055,
//                         header Retry-After: 5 (or retry_after)
//   authorization_pending 400 authorization_pending, 70016 (device flow)
//   expired_token         400 expired_token, 70019 (device code expired)
//   authorization_declined 400 authorization_declined, 70020 (user said no)
//   bad_verification_code 400 bad_verification_code, 70021 (unknown device code)
//   invalid_request       400 invalid_request, 900144
//   server_error          500 server_error, 50000
//   GET /__control/canned lists the names; the texts are in CANNED below.
//   The server itself answers with these shapes too (unknown/revoked/expired
//   refresh token, bad PKCE verifier 501481, reused code 54005, missing secret,
//   pending device code...), so scripting is only needed to force them.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const http = require("http");

const DEFAULT_TENANT = "00000000-0000-0000-bbbb-000000000002";
const OIDC_SCOPES = new Set(["openid", "profile", "offline_access", "email"]);
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function defaultConfig() {
  return {
    expires_in: 3600,
    ext_expires_in: null,
    refresh_in: null,
    refresh_token_lifetime: 86400,
    refresh_token_expires_in: null,
    id_token_lifetime: 3600,
    families: [],
    rt_single_use: false,
    issue_refresh_token: true,
    default_scope: "User.Read",
    device_interval: 1,
    device_expires_in: 900,
    device_verification_uri_complete: false,
    client_secrets: { "lua-msal-confidential": "s3cret" },
    users: [
      { upn: "test.user@example.com", name: "Test User", oid: "00000000-0000-0000-aaaa-000000000001", tid: DEFAULT_TENANT },
    ],
    tenant_domains: { "example.com": DEFAULT_TENANT },
    instance_metadata: null,
  };
}

// ── helpers ──────────────────────────────────────────────────────────────────
const b64u = (buf) => Buffer.from(buf).toString("base64url");
const guid = () => crypto.randomUUID();
const now = () => Math.floor(Date.now() / 1000);
let tokenSeq = 0;
// Opaque but readable in logs: kind, sequence, randomness.
const opaque = (kind) => `${kind}.${++tokenSeq}.${crypto.randomBytes(24).toString("base64url")}`;

function formToObject(params) {
  const out = {};
  for (const [k, v] of params) {
    if (k in out) out[k] = [].concat(out[k], v);
    else out[k] = v;
  }
  return out;
}

function parseArgs(argv) {
  const out = { port: process.env.ENTRA_PORT || "0", portFile: process.env.ENTRA_PORT_FILE };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--port-file") out.portFile = argv[++i];
    else out.port = argv[i];
  }
  out.port = Number.parseInt(out.port, 10);
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) throw new Error("bad port");
  return out;
}

// ── the server's state (everything /__control/reset forgets, except the key) ─
const key = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const kid = b64u(crypto.randomBytes(20));
let state;
function resetState() {
  state = {
    config: defaultConfig(),
    queue: [],
    log: [],
    seq: 0,
    codes: new Map(), // authorization code -> {client_id, redirect_uri, challenge, method, scope, nonce, user, client_info}
    devices: new Map(), // device_code -> {user_code, client_id, scope, status, user, expires_at}
    refreshTokens: new Map(), // refresh token -> {client_id, scope, user, issued_at, revoked, used}
    accessTokens: new Map(), // access token -> {client_id, scope, user (absent for app tokens), expires_at}
  };
}
resetState();

function jwks() {
  const jwk = key.publicKey.export({ format: "jwk" });
  return { keys: [{ kty: "RSA", use: "sig", kid, x5t: kid, n: jwk.n, e: jwk.e }] };
}

function signJwt(claims) {
  const header = { typ: "JWT", alg: "RS256", kid };
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
  const sig = crypto.sign("sha256", Buffer.from(input), key.privateKey);
  return `${input}.${b64u(sig)}`;
}

function findUser(hint) {
  const users = state.config.users;
  if (hint) {
    const h = String(hint).toLowerCase();
    const u = users.find((x) => x.upn.toLowerCase() === h);
    if (u) return u;
  }
  return users[0];
}

// Entra's `sub` is pairwise (per user and app): derive one that is stable.
const pairwiseSub = (user, clientId) =>
  b64u(crypto.createHash("sha256").update(`${user.oid}|${clientId}`).digest()).slice(0, 43);

const clientInfo = (user) => b64u(JSON.stringify({ uid: user.oid, utid: user.tid }));

function tenantIdFor(tenant) {
  const t = tenant.toLowerCase();
  if (["common", "organizations", "consumers"].includes(t)) return "{tenantid}";
  if (GUID_RE.test(t)) return t;
  return state.config.tenant_domains[t] || tenant;
}

// ── canned AADSTS errors ─────────────────────────────────────────────────────
const MFA_CLAIMS = '{"access_token":{"capolids":{"essential":true,"values":["00000000-0000-0000-cccc-000000000003"]}}}';
const CANNED = {
  bad_token: { status: 400, error: "invalid_grant", suberror: "bad_token", code: 700082,
    text: "The refresh token has expired due to inactivity. The token was issued on 2024-01-01T00:00:00.0000000Z and was inactive for 90.00:00:00." },
  invalid_grant: { status: 400, error: "invalid_grant", code: 70000,
    text: "The request was denied because one or more scopes requested are unauthorized or expired. The user must first sign in and grant the client application access to the requested scope." },
  mfa_required: { status: 400, error: "invalid_grant", suberror: "basic_action", code: 50076, claims: MFA_CLAIMS,
    text: "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access 'api://lua-msal-test'." },
  interaction_required: { status: 400, error: "interaction_required", code: 50079,
    text: "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access 'api://lua-msal-test'." },
  consent_required: { status: 400, error: "invalid_grant", suberror: "consent_required", code: 65001,
    text: "The user or administrator has not consented to use the application with ID 'lua-msal-public' named 'lua-msal'. Send an interactive authorization request for this user and resource." },
  invalid_client: { status: 401, error: "invalid_client", code: 7000218,
    text: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'." },
  invalid_client_secret: { status: 401, error: "invalid_client", code: 7000215,
    text: "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'lua-msal-confidential'." },
  client_mismatch: { status: 400, error: "invalid_grant", suberror: "client_mismatch", code: 70000,
    text: "The refresh token was issued to a single client, and the request came from a different client." },
  invalid_scope: { status: 400, error: "invalid_scope", code: 70011,
    text: "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid." },
  temporarily_unavailable: { status: 503, error: "temporarily_unavailable", code: 90033,
    text: "A transient error has occurred. Please try again." },
  throttled: { status: 429, error: "temporarily_unavailable", code: 90055, retry_after: 5,
    text: "TenantThrottlingError - There are too many incoming requests. Please try again later." },
  authorization_pending: { status: 400, error: "authorization_pending", code: 70016,
    text: "OAuth 2.0 device flow error. Authorization is pending. Continue polling." },
  expired_token: { status: 400, error: "expired_token", code: 70019,
    text: "Verification code expired." },
  authorization_declined: { status: 400, error: "authorization_declined", code: 70020,
    text: "The end user declined the authorization request." },
  bad_verification_code: { status: 400, error: "bad_verification_code", code: 70021,
    text: "The device code is not recognized." },
  invalid_request: { status: 400, error: "invalid_request", code: 900144,
    text: "The request body must contain the following parameter: 'grant_type'." },
  server_error: { status: 500, error: "server_error", code: 50000,
    text: "There was an error issuing a token or an issue with our sign-in service." },
};

// The body Entra sends with an AADSTS error (shape and field order as observed).
function aadError(ctx, spec) {
  const trace = guid();
  const corr = ctx.correlationId;
  const ts = new Date().toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  const body = {
    error: spec.error,
    error_description: `AADSTS${spec.code}: ${spec.text} Trace ID: ${trace} Correlation ID: ${corr} Timestamp: ${ts}`,
    error_codes: [spec.code],
    timestamp: ts,
    trace_id: trace,
    correlation_id: corr,
    error_uri: `${ctx.base}/error?code=${spec.code}`,
  };
  if (spec.suberror) body.suberror = spec.suberror;
  if (spec.claims) body.claims = spec.claims;
  return body;
}

class AadError extends Error {
  constructor(name, extra = {}) {
    super(name);
    this.spec = { ...CANNED[name], ...extra };
  }
}

// ── HTTP plumbing ────────────────────────────────────────────────────────────
function send(ctx, status, body, headers = {}) {
  const { res } = ctx;
  if (res.headersSent || res.destroyed) return;
  const h = {
    "cache-control": "no-store, no-cache",
    pragma: "no-cache",
    "x-ms-request-id": ctx.requestId,
    "client-request-id": ctx.correlationId,
    ...lower(headers),
  };
  let payload;
  if (typeof body === "string" || Buffer.isBuffer(body)) {
    payload = body;
    h["content-type"] ||= "text/plain; charset=utf-8";
  } else if (body === undefined || body === null) {
    payload = "";
  } else {
    payload = JSON.stringify(body);
    h["content-type"] ||= "application/json; charset=utf-8";
  }
  h["content-length"] = Buffer.byteLength(payload);
  res.writeHead(status, h);
  res.end(payload);
}

const lower = (headers) => Object.fromEntries(Object.entries(headers || {}).map(([k, v]) => [k.toLowerCase(), String(v)]));

function sendAad(ctx, name, extra = {}) {
  const spec = { ...CANNED[name], ...extra };
  const headers = {};
  if (spec.retry_after !== undefined) headers["retry-after"] = String(spec.retry_after);
  send(ctx, spec.status, aadError(ctx, spec), headers);
}

function redirect(ctx, location) {
  send(ctx, 302, "", { location });
}

function html(ctx, status, markup) {
  send(ctx, status, markup, { "content-type": "text/html; charset=utf-8" });
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// ── scripting ────────────────────────────────────────────────────────────────
function takeScripted(ctx) {
  const params = { ...ctx.query, ...ctx.form };
  const idx = state.queue.findIndex((e) =>
    (e.endpoint === ctx.endpoint || e.endpoint === "any")
    && Object.entries(e.when || {}).every(([k, v]) => params[k] === String(v)));
  if (idx < 0) return null;
  const entry = state.queue[idx];
  entry.count = (entry.count || 1) - 1;
  if (entry.count <= 0) state.queue.splice(idx, 1);
  return entry;
}

// Answers a request with a scripted entry; returns false when the entry only
// modifies a real answer (override / id_token_claims / authorize params).
async function playScripted(ctx, entry) {
  if (entry.delay_ms) await new Promise((r) => setTimeout(r, entry.delay_ms));
  if (entry.drop) {
    ctx.req.socket.destroy();
    return true;
  }
  const headers = { ...(entry.headers || {}) };
  if (entry.raw !== undefined) {
    const raw = String(entry.raw);
    if (entry.truncate) {
      const { res } = ctx;
      res.writeHead(entry.status || 200, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(raw) + 64,
        ...lower(headers),
      });
      res.write(raw, () => ctx.req.socket.destroy());
      return true;
    }
    send(ctx, entry.status || 200, raw, { "content-type": "application/json; charset=utf-8", ...headers });
    return true;
  }
  if (entry.canned) {
    if (!CANNED[entry.canned]) {
      send(ctx, 500, { error: "bad_script", error_description: `unknown canned error ${entry.canned}` });
      return true;
    }
    const extra = {};
    if (entry.claims !== undefined) extra.claims = entry.claims;
    if (entry.retry_after !== undefined) extra.retry_after = entry.retry_after;
    const spec = { ...CANNED[entry.canned], ...extra };
    if (entry.status) spec.status = entry.status;
    const body = { ...aadError(ctx, spec), ...(entry.body || {}) };
    const h = {};
    if (spec.retry_after !== undefined) h["retry-after"] = String(spec.retry_after);
    send(ctx, spec.status, body, { ...h, ...headers });
    return true;
  }
  if (entry.redirect_params) {
    const q = ctx.query;
    const params = { ...entry.redirect_params };
    if (!("state" in params) && q.state !== undefined) params.state = q.state;
    respondToClient(ctx, q.redirect_uri, q.response_mode, params);
    return true;
  }
  if (entry.status !== undefined || entry.body !== undefined) {
    send(ctx, entry.status || 200, entry.body === undefined ? "" : entry.body, headers);
    return true;
  }
  return false; // override / id_token_claims: the real handler runs with it
}

function applyOverride(body, override) {
  for (const [k, v] of Object.entries(override || {})) {
    if (v === null) delete body[k];
    else body[k] = v;
  }
  return body;
}

// ── protocol endpoints ───────────────────────────────────────────────────────
function discovery(ctx) {
  const t = ctx.tenant;
  const a = `${ctx.base}/${t}`;
  return {
    token_endpoint: `${a}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    jwks_uri: `${a}/discovery/v2.0/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    subject_types_supported: ["pairwise"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
    issuer: `${ctx.base}/${tenantIdFor(t)}/v2.0`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${ctx.base}/oidc/userinfo`,
    authorization_endpoint: `${a}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${a}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${a}/oauth2/v2.0/logout`,
    claims_supported: ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
      "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
      "at_hash", "c_hash", "email"],
    kerberos_endpoint: `${a}/kerberos`,
    tenant_region_scope: null,
    cloud_instance_name: ctx.host,
    cloud_graph_host_name: ctx.host,
    msgraph_host: ctx.host,
    rbac_url: ctx.base,
  };
}

function instanceDiscovery(ctx, entry) {
  const ae = ctx.query.authorization_endpoint;
  let u;
  try { u = new URL(ae); } catch { u = null; }
  const [, port] = ctx.host.split(":");
  const metadata = state.config.instance_metadata || [{
    preferred_network: ctx.host,
    preferred_cache: ctx.host,
    aliases: [ctx.host, `localhost:${port}`],
  }];
  const known = u && metadata.some((m) => m.aliases.map((x) => x.toLowerCase()).includes(u.host.toLowerCase()));
  if (!known) {
    send(ctx, 400, {
      ...aadError(ctx, { error: "invalid_instance", code: 50049, text: "Unknown or invalid instance." }),
    });
    return;
  }
  const tenant = u.pathname.split("/").filter(Boolean)[0] || "common";
  send(ctx, 200, applyOverride({
    tenant_discovery_endpoint: `${u.protocol}//${u.host}/${tenant}/v2.0/.well-known/openid-configuration`,
    "api-version": "1.1",
    metadata,
  }, entry && entry.override));
}

function respondToClient(ctx, redirectUri, mode, params) {
  if (mode === "form_post") {
    const inputs = Object.entries(params)
      .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}"/>`).join("");
    html(ctx, 200, `<!DOCTYPE html><html><head><title>Working...</title></head>` +
      `<body onload="document.forms[0].submit()"><form method="POST" name="hiddenform" action="${esc(redirectUri)}">` +
      `${inputs}<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit"/></noscript>` +
      `</form></body></html>`);
    return;
  }
  const u = new URL(redirectUri);
  const qs = new URLSearchParams(params).toString();
  if (mode === "fragment") u.hash = qs;
  else for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  redirect(ctx, u.href);
}

function authorize(ctx, entry) {
  const q = ctx.query;
  // Errors Entra shows on its own page (no valid redirect to go back to).
  if (!q.client_id) return html(ctx, 400, "<h1>AADSTS900144: The request body must contain the following parameter: 'client_id'.</h1>");
  let redirectOk = false;
  try { redirectOk = ["http:", "https:"].includes(new URL(q.redirect_uri).protocol); } catch { /* no */ }
  if (!redirectOk) return html(ctx, 400, "<h1>AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.</h1>");
  const back = (params) => respondToClient(ctx, q.redirect_uri, q.response_mode,
    q.state !== undefined ? { ...params, state: q.state } : params);
  if (q.response_type !== "code") {
    return back({ error: "unsupported_response_type", error_description: "AADSTS700054: response_type 'id_token' is not enabled for the application." });
  }
  if (q.code_challenge && q.code_challenge_method && !["S256", "plain"].includes(q.code_challenge_method)) {
    return back({ error: "invalid_request", error_description: "AADSTS501491: Invalid code challenge method." });
  }
  const user = findUser(q.login_hint);
  const code = opaque("code");
  state.codes.set(code, {
    client_id: q.client_id,
    redirect_uri: q.redirect_uri,
    challenge: q.code_challenge,
    method: q.code_challenge_method || (q.code_challenge ? "plain" : undefined),
    scope: q.scope || "",
    nonce: q.nonce,
    claims: q.claims,
    // a max_age request gets the time of this (instant) sign-in
    auth_time: q.max_age !== undefined ? now() : undefined,
    user,
    expires_at: now() + 600,
  });
  const params = { code };
  if (q.client_info === "1") params.client_info = clientInfo(user);
  if (q.state !== undefined) params.state = q.state;
  params.session_state = guid();
  applyOverride(params, entry && entry.override);
  respondToClient(ctx, q.redirect_uri, q.response_mode, params);
}

function deviceCode(ctx) {
  const f = ctx.form;
  if (!f.client_id) throw new AadError("invalid_request", { text: "The request body must contain the following parameter: 'client_id'." });
  if (!f.scope) throw new AadError("invalid_scope");
  const cfg = state.config;
  const userCode = crypto.randomBytes(7).toString("base64url").replace(/[-_]/g, "X").slice(0, 9).toUpperCase();
  const dc = opaque("dc");
  state.devices.set(dc, {
    user_code: userCode,
    client_id: f.client_id,
    scope: f.scope,
    claims: f.claims,
    status: "pending",
    expires_at: now() + cfg.device_expires_in,
  });
  const verification = `${ctx.base}/devicelogin`;
  const body = {
    user_code: userCode,
    device_code: dc,
    verification_uri: verification,
    expires_in: cfg.device_expires_in,
    interval: cfg.device_interval,
    message: `To sign in, use a web browser to open the page ${verification} and enter the code ${userCode} to authenticate.`,
  };
  if (cfg.device_verification_uri_complete) body.verification_uri_complete = `${verification}?otc=${encodeURIComponent(userCode)}`;
  return body;
}

function finishDevice(userCode, action, upn) {
  for (const d of state.devices.values()) {
    if (d.user_code.toUpperCase() === String(userCode || "").toUpperCase() && d.status === "pending") {
      d.status = action === "deny" ? "declined" : "approved";
      d.user = findUser(upn);
      return d;
    }
  }
  return null;
}

function deviceLogin(ctx) {
  const p = { ...ctx.query, ...ctx.form };
  if (ctx.method === "POST" && p.otc) {
    const d = finishDevice(p.otc, p.deny ? "deny" : "approve", p.login);
    if (!d) return html(ctx, 400, `<!DOCTYPE html><html><body><h1>Code not recognized</h1><p id="error">That code didn't work. Check the code and try again.</p></body></html>`);
    return html(ctx, 200, `<!DOCTYPE html><html><body><h1 id="done">${d.status === "approved" ? "You have signed in" : "Sign-in declined"}</h1>` +
      `<p>You can close this window.</p></body></html>`);
  }
  html(ctx, 200, `<!DOCTYPE html><html><head><title>Enter code</title></head><body><h1>Enter code</h1>` +
    `<form method="POST" action="/devicelogin"><input name="otc" id="otc" value="${esc(p.otc || "")}"/>` +
    `<input name="login" id="login" placeholder="user (optional)"/><button type="submit" id="next">Next</button>` +
    `<button type="submit" name="deny" value="1" id="deny">Decline</button></form></body></html>`);
}

// Requested scopes as Entra grants them: OIDC scopes dropped, order kept.
function grantedScope(requested) {
  const s = String(requested || "").split(/\s+/).filter((x) => x && !OIDC_SCOPES.has(x.toLowerCase()));
  return s.length ? s.join(" ") : state.config.default_scope;
}

// The user as the tenant of this request knows them: a guest profile when
// the request names a tenant the user is a guest of, else the user.
function inTenant(ctx, user) {
  const tid = ctx.tenant ? tenantIdFor(ctx.tenant).toLowerCase() : null;
  const guest = tid && tid !== user.tid && user.guests && user.guests[tid];
  if (!guest) return user;
  return { ...user, ...guest, tid };
}

function issueTokens(ctx, { clientId, scope, user, nonce, authTime, entry, withRefresh = true }) {
  const cfg = state.config;
  const profile = inTenant(ctx, user);
  const requested = String(scope || "").split(/\s+/);
  const body = {
    token_type: "Bearer",
    scope: grantedScope(scope),
    expires_in: cfg.expires_in,
    ext_expires_in: cfg.ext_expires_in == null ? cfg.expires_in : cfg.ext_expires_in,
  };
  if (cfg.refresh_in != null) body.refresh_in = cfg.refresh_in;
  body.access_token = opaque("at");
  state.accessTokens.set(body.access_token, { client_id: clientId, scope: body.scope, user, expires_at: now() + cfg.expires_in });
  if (withRefresh && cfg.issue_refresh_token && requested.includes("offline_access")) {
    const rt = opaque("rt");
    state.refreshTokens.set(rt, { client_id: clientId, scope, user, issued_at: now(), nonce });
    body.refresh_token = rt;
    if (cfg.refresh_token_expires_in != null) body.refresh_token_expires_in = cfg.refresh_token_expires_in;
  }
  if (requested.includes("openid")) {
    const t = now();
    const claims = {
      aud: clientId,
      iss: `${ctx.base}/${profile.tid}/v2.0`,
      iat: t,
      nbf: t,
      exp: t + cfg.id_token_lifetime,
      name: profile.name,
      oid: profile.oid,
      preferred_username: user.upn,
      rh: "0.AAAA.",
      sub: pairwiseSub(profile, clientId),
      tid: profile.tid,
      uti: b64u(crypto.randomBytes(16)),
      ver: "2.0",
    };
    if (nonce) claims.nonce = nonce;
    if (authTime !== undefined) claims.auth_time = authTime;
    if (requested.includes("email")) claims.email = user.upn;
    applyOverride(claims, entry && entry.id_token_claims);
    body.id_token = signJwt(claims);
  }
  if (ctx.form.client_info === "1") body.client_info = clientInfo(user);
  if (cfg.families.includes(clientId)) body.foci = "1";
  return applyOverride(body, entry && entry.override);
}

// Confidential clients (config.client_secrets) must authenticate, by secret
// (body or Basic) or by any client assertion (not verified; it is logged).
function authenticateClient(ctx) {
  const f = ctx.form;
  let clientId = f.client_id;
  let secret = f.client_secret;
  const auth = ctx.headers.authorization;
  if (auth && /^basic /i.test(auth)) {
    const [id, sec] = Buffer.from(auth.slice(6), "base64").toString().split(":");
    clientId = clientId || decodeURIComponent(id);
    secret = decodeURIComponent(sec || "");
  }
  if (!clientId) throw new AadError("invalid_request", { text: "The request body must contain the following parameter: 'client_id'." });
  const expected = state.config.client_secrets[clientId];
  const confidential = expected !== undefined;
  if (confidential) {
    if (f.client_assertion && f.client_assertion_type === "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
      return { clientId, confidential };
    }
    if (secret === undefined) throw new AadError("invalid_client");
    if (secret !== expected) throw new AadError("invalid_client_secret");
  }
  return { clientId, confidential };
}

function pkceOk(code, verifier) {
  if (!code.challenge) return true;
  if (!verifier) return false;
  const computed = code.method === "S256"
    ? crypto.createHash("sha256").update(verifier).digest("base64url")
    : verifier;
  const a = Buffer.from(computed);
  const b = Buffer.from(code.challenge);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function token(ctx, entry) {
  const f = ctx.form;
  const { clientId, confidential } = authenticateClient(ctx);
  const gt = f.grant_type;
  switch (gt) {
    case "authorization_code": {
      const code = state.codes.get(f.code);
      if (!code) throw new AadError("invalid_grant", { code: 70000, text: "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource." });
      if (code.redeemed) throw new AadError("invalid_grant", { code: 54005, text: "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token." });
      if (code.expires_at < now()) throw new AadError("invalid_grant", { code: 70008, text: "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource." });
      if (code.client_id !== clientId) throw new AadError("invalid_grant", { code: 70000, text: "The authorization code was issued to a different client." });
      if (code.redirect_uri !== f.redirect_uri) throw new AadError("invalid_grant", { code: 500117, text: "The reply uri specified in the token request does not match the reply uri specified in the authorization request." });
      if (!pkceOk(code, f.code_verifier)) throw new AadError("invalid_grant", { code: 501481, text: "The Code_Verifier does not match the code_challenge supplied in the authorization request." });
      code.redeemed = true;
      return issueTokens(ctx, { clientId, scope: f.scope || code.scope, user: code.user, nonce: code.nonce,
        authTime: code.auth_time, entry });
    }
    case "refresh_token": {
      const rt = state.refreshTokens.get(f.refresh_token);
      if (!rt) throw new AadError("invalid_grant", { code: 9002313, text: "Invalid request. Request is malformed or invalid." });
      const family = state.config.families;
      if (rt.client_id !== clientId && !(family.includes(rt.client_id) && family.includes(clientId))) {
        throw new AadError("client_mismatch");
      }
      if (rt.revoked || rt.used || rt.issued_at + state.config.refresh_token_lifetime < now()) {
        throw new AadError("bad_token");
      }
      if (state.config.rt_single_use) rt.used = true;
      return issueTokens(ctx, { clientId, scope: f.scope || rt.scope, user: rt.user, entry });
    }
    case "device_code":
    case "urn:ietf:params:oauth:grant-type:device_code": {
      const d = state.devices.get(f.device_code);
      if (!d || d.client_id !== clientId) throw new AadError("bad_verification_code");
      if (d.expires_at < now()) throw new AadError("expired_token");
      if (d.status === "pending") throw new AadError("authorization_pending");
      if (d.status === "declined") throw new AadError("authorization_declined");
      if (d.status === "redeemed") throw new AadError("invalid_grant", { code: 54005, text: "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token." });
      d.status = "redeemed";
      return issueTokens(ctx, { clientId, scope: f.scope || d.scope, user: d.user, entry });
    }
    case "client_credentials": {
      if (!confidential) throw new AadError("invalid_client");
      const scopes = String(f.scope || "").split(/\s+/).filter(Boolean);
      if (scopes.length !== 1 || !scopes[0].endsWith("/.default")) {
        throw new AadError("invalid_scope", { code: 1002012, text: `The provided value for scope ${f.scope || ""} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).` });
      }
      const cfg = state.config;
      // Entra's client-credential answer: no scope, no refresh/id token.
      const body = {
        token_type: "Bearer",
        expires_in: cfg.expires_in,
        ext_expires_in: cfg.ext_expires_in == null ? cfg.expires_in : cfg.ext_expires_in,
      };
      if (cfg.refresh_in != null) body.refresh_in = cfg.refresh_in;
      body.access_token = opaque("at");
      state.accessTokens.set(body.access_token, { client_id: clientId, scope: scopes[0], expires_at: now() + cfg.expires_in });
      return applyOverride(body, entry && entry.override);
    }
    case "urn:ietf:params:oauth:grant-type:jwt-bearer": {
      // on-behalf-of: a confidential client exchanges a user's access token
      // issued here (the assertion) for one to another API, for that user
      if (!confidential) throw new AadError("invalid_client");
      if (f.requested_token_use !== "on_behalf_of") {
        throw new AadError("invalid_request", { code: 50027, text: "requested_token_use must be on_behalf_of." });
      }
      const at = state.accessTokens.get(f.assertion);
      if (!at || !at.user || at.expires_at < now()) {
        throw new AadError("invalid_grant", { code: 50013, text: "Assertion failed signature validation or is expired." });
      }
      return issueTokens(ctx, { clientId, scope: f.scope, user: at.user, entry });
    }
    case undefined:
      throw new AadError("invalid_request");
    default:
      throw new AadError("invalid_request", { error: "unsupported_grant_type", code: 70003, text: "The app requested an unsupported grant type." });
  }
}

// A protected resource to call with the access tokens issued here (Graph's
// /oidc/userinfo stand-in): 200 with the user's claims, or 401 with a
// WWW-Authenticate challenge like Entra-protected APIs send.
function userinfo(ctx) {
  const m = /^Bearer\s+(\S+)$/i.exec(ctx.headers.authorization || "");
  const at = m && state.accessTokens.get(m[1]);
  if (!at || !at.user || at.expires_at < now()) {
    return send(ctx, 401, "", {
      "www-authenticate": `Bearer realm="", authorization_uri="${ctx.base}/common/oauth2/authorize", ` +
        `client_id="00000003-0000-0000-c000-000000000000", error="invalid_token"`,
    });
  }
  const u = at.user;
  send(ctx, 200, { sub: pairwiseSub(u, at.client_id), oid: u.oid, tid: u.tid, name: u.name, preferred_username: u.upn, email: u.upn });
}

// ── routing ──────────────────────────────────────────────────────────────────
const ROUTES = [
  [/^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/, "discovery"],
  [/^\/([^/]+)\/discovery\/v2\.0\/keys$/, "keys"],
  [/^\/([^/]+)\/discovery\/keys$/, "keys"],
  [/^\/([^/]+)\/discovery\/instance$/, "instance"],
  [/^\/([^/]+)\/oauth2\/v2\.0\/authorize$/, "authorize"],
  [/^\/([^/]+)\/oauth2\/v2\.0\/token$/, "token"],
  [/^\/([^/]+)\/oauth2\/v2\.0\/devicecode$/, "devicecode"],
  [/^\/([^/]+)\/oauth2\/v2\.0\/logout$/, "logout"],
  [/^\/devicelogin$/, "devicelogin"],
  [/^\/oidc\/userinfo$/, "userinfo"],
];

async function handleProtocol(ctx) {
  for (const [re, name] of ROUTES) {
    const m = re.exec(ctx.path);
    if (m) {
      ctx.endpoint = name;
      ctx.tenant = m[1];
      break;
    }
  }
  state.log.push({
    seq: ++state.seq,
    time: Date.now() / 1000,
    method: ctx.method,
    path: ctx.path,
    endpoint: ctx.endpoint || null,
    tenant: ctx.tenant || null,
    query: ctx.query,
    headers: ctx.headers,
    form: ctx.form,
    body: ctx.body,
    scripted: false,
  });
  const logEntry = state.log[state.log.length - 1];
  if (!ctx.endpoint) {
    return send(ctx, 404, { error: "not_found", error_description: `no route for ${ctx.method} ${ctx.path}` });
  }
  const entry = takeScripted(ctx);
  if (entry) {
    logEntry.scripted = true;
    if (await playScripted(ctx, entry)) return;
  }
  try {
    switch (ctx.endpoint) {
      case "discovery": return send(ctx, 200, applyOverride(discovery(ctx), entry && entry.override));
      case "keys": return send(ctx, 200, applyOverride(jwks(), entry && entry.override));
      case "instance": return instanceDiscovery(ctx, entry);
      case "authorize": return authorize(ctx, entry);
      case "devicelogin": return deviceLogin(ctx);
      case "userinfo": return userinfo(ctx);
      case "logout":
        return ctx.query.post_logout_redirect_uri
          ? redirect(ctx, ctx.query.post_logout_redirect_uri)
          : html(ctx, 200, "<!DOCTYPE html><html><body><h1>You signed out of your account</h1></body></html>");
      case "devicecode":
        if (ctx.method !== "POST") throw new AadError("invalid_request", { text: "Only POST is supported." });
        return send(ctx, 200, applyOverride(deviceCode(ctx), entry && entry.override));
      case "token":
        if (ctx.method !== "POST") throw new AadError("invalid_request", { text: "Only POST is supported." });
        return send(ctx, 200, token(ctx, entry));
      default:
        return send(ctx, 404, {});
    }
  } catch (err) {
    if (err instanceof AadError) return sendAad(ctx, null, err.spec);
    throw err;
  }
}

function handleControl(ctx) {
  const sub = ctx.path.slice("/__control".length);
  let json = {};
  if (ctx.body) {
    try { json = JSON.parse(ctx.body); } catch (e) { return send(ctx, 400, { error: `bad JSON: ${e.message}` }); }
  }
  const key = `${ctx.method} ${sub}`;
  switch (key) {
    case "POST /reset":
      resetState();
      return send(ctx, 200, { ok: true });
    case "POST /next": {
      const entries = Array.isArray(json) ? json : [json];
      for (const e of entries) {
        if (!e || typeof e.endpoint !== "string") return send(ctx, 400, { error: "each entry needs an endpoint" });
        if (e.canned && !CANNED[e.canned]) return send(ctx, 400, { error: `unknown canned error ${e.canned}`, known: Object.keys(CANNED) });
      }
      state.queue.push(...entries.map((e) => ({ ...e })));
      return send(ctx, 200, { ok: true, queued: state.queue.length });
    }
    case "GET /next":
      return send(ctx, 200, state.queue);
    case "GET /requests": {
      const ep = ctx.query.endpoint;
      return send(ctx, 200, ep ? state.log.filter((r) => r.endpoint === ep) : state.log);
    }
    case "DELETE /requests":
      state.log = [];
      return send(ctx, 200, { ok: true });
    case "GET /config":
      return send(ctx, 200, state.config);
    case "POST /config":
      Object.assign(state.config, json);
      return send(ctx, 200, state.config);
    case "POST /device": {
      const d = finishDevice(json.user_code, json.action, json.upn);
      return d ? send(ctx, 200, { ok: true, status: d.status }) : send(ctx, 404, { error: "no pending device code with that user_code" });
    }
    case "POST /revoke": {
      let n = 0;
      for (const [value, rt] of state.refreshTokens) {
        if (!json.refresh_token || json.refresh_token === value) { rt.revoked = true; n++; }
      }
      return send(ctx, 200, { ok: true, revoked: n });
    }
    case "GET /canned":
      return send(ctx, 200, Object.keys(CANNED));
    default:
      return send(ctx, 404, { error: `no control route ${key}` });
  }
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

function main() {
  const args = parseArgs(process.argv.slice(2));
  const debug = process.env.ENTRA_DEBUG === "1";
  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > 1 << 20) { res.writeHead(413).end(); req.destroy(); return; }
      chunks.push(c);
    });
    req.on("end", async () => {
      const { port } = server.address();
      const url = new URL(req.url, `http://127.0.0.1:${port}`);
      const body = Buffer.concat(chunks).toString("utf8");
      const headers = { ...req.headers };
      const ctype = String(headers["content-type"] || "");
      const ctx = {
        req,
        res,
        method: req.method,
        path: url.pathname,
        query: formToObject(url.searchParams),
        headers,
        body,
        form: ctype.startsWith("application/x-www-form-urlencoded") ? formToObject(new URLSearchParams(body)) : {},
        host: `127.0.0.1:${port}`,
        base: `http://127.0.0.1:${port}`,
        requestId: guid(),
      };
      // Entra echoes the caller's correlation id (query for MSAL.js, header for python).
      ctx.correlationId = ctx.query["client-request-id"] || headers["client-request-id"] || guid();
      if (debug) process.stderr.write(`entra_server: ${req.method} ${req.url} ${body.slice(0, 300)}\n`);
      try {
        if (url.pathname === "/__control" || url.pathname.startsWith("/__control/")) handleControl(ctx);
        else await handleProtocol(ctx);
      } catch (err) {
        process.stderr.write(`entra_server: ${err.stack}\n`);
        send(ctx, 500, { error: "server_error", error_description: `entra_server bug: ${err.message}` });
      }
    });
  });
  server.keepAliveTimeout = 5000;
  exitWithParent();
  server.listen(args.port, "127.0.0.1", () => {
    const { port } = server.address();
    if (args.portFile) {
      fs.writeFileSync(`${args.portFile}.tmp`, `${port}\n`);
      fs.renameSync(`${args.portFile}.tmp`, args.portFile);
    }
    process.stdout.write(`entra_server listening on http://127.0.0.1:${port}\n`);
  });
  server.on("error", (err) => {
    process.stderr.write(`entra_server: ${err.stack}\n`);
    process.exit(1);
  });
  const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
