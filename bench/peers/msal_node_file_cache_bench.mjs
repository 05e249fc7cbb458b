#!/usr/bin/env node
// msal-node reference numbers for the file-cache benchmark: msal-node 7 with
// msal-node-extensions' PersistenceCachePlugin over FilePersistence (the
// `<file>.lockfile` lock, reload when the file's mtime is newer than the last
// sync, rewrite of the whole file in place).
//
//   node --max-old-space-size=8192 msal_node_file_cache_bench.mjs silent <cacheFile> <nAccounts>
//   node --max-old-space-size=8192 msal_node_file_cache_bench.mjs write  <cacheFile> <nAccounts> <writes>
//
// <cacheFile> comes from bench/gen_cache.lua (one tenant, client
// 11111111-2222-3333-4444-555555555555, ATs for api://res1..5) and is used
// in place. Prints one JSON line on stdout; progress goes to stderr.
//
// silent: the first call loads the file; then cache hits with the file
//   unchanged, accounts round-robin; `loads` counts FilePersistence.load
//   calls during the timed hits (0: no re-read).
// write: one token response stored per call — acquireTokenByRefreshToken,
//   after one untimed call that loads the file (first_write_ms) —
//   whose network client answers at once — i.e. msal-node's response
//   handling plus the plugin's lock, reload check, serialize and writeFile.
//   The extensions' plugin compares the file's mtime with the time of its
//   last *load*, so after its own write it reloads the file on the next
//   access; `loads` reports how often that happened.
//
// As in msal_node_cache_bench.js, nothing reaches the network.
import * as msal from "@azure/msal-node";

// The extensions' package index requires keytar (native, not built with
// --ignore-scripts); the two modules needed are imported by path.
const ext = (p) => new URL(`./node_modules/@azure/msal-node-extensions/dist/${p}`, import.meta.url).href;
const { FilePersistence } = await import(ext("persistence/FilePersistence.mjs"));
const { PersistenceCachePlugin } = await import(ext("persistence/PersistenceCachePlugin.mjs"));

const CLIENT_ID = "11111111-2222-3333-4444-555555555555";
const TENANT_ID = "00000000-0000-0000-bbbb-000000000002";
const AUTHORITY = `https://login.microsoftonline.com/${TENANT_ID}`;
const SCOPES = ["api://res1/Data.Read"];

let tokenAnswer = null;
const networkClient = {
  sendGetRequestAsync: async () => { throw new Error("network disabled in benchmarks"); },
  sendPostRequestAsync: async (url) => {
    if (tokenAnswer && new URL(url).pathname.endsWith("/oauth2/v2.0/token")) {
      return { status: 200, headers: { "content-type": "application/json" }, body: tokenAnswer() };
    }
    throw new Error("network disabled in benchmarks");
  },
};

function config(cachePlugin) {
  return {
    auth: {
      clientId: CLIENT_ID,
      authority: AUTHORITY,
      authorityMetadata: JSON.stringify({
        authorization_endpoint: `${AUTHORITY}/oauth2/v2.0/authorize`,
        token_endpoint: `${AUTHORITY}/oauth2/v2.0/token`,
        device_authorization_endpoint: `${AUTHORITY}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${AUTHORITY}/oauth2/v2.0/logout`,
        issuer: `${AUTHORITY}/v2.0`,
        jwks_uri: `${AUTHORITY}/discovery/v2.0/keys`,
      }),
      cloudDiscoveryMetadata: JSON.stringify({
        tenant_discovery_endpoint: `${AUTHORITY}/v2.0/.well-known/openid-configuration`,
        "api-version": "1.1",
        metadata: [{
          preferred_network: "login.microsoftonline.com",
          preferred_cache: "login.windows.net",
          aliases: ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
        }],
      }),
    },
    cache: { cachePlugin },
    system: {
      networkClient,
      loggerOptions: { logLevel: msal.LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => {} },
    },
  };
}

const elapsedMs = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const round3 = (x) => Math.round(x * 1000) / 1000;
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const progress = (msg) => process.stderr.write(`[msal-node file bench] ${msg}\n`);

// gen_cache.lua's account i (1-based)
function hid(i) {
  return `aaaaaaaa-0000-4000-8000-${String(i).padStart(12, "0")}.${TENANT_ID}`;
}

// The AccountInfo msal-node would return for account i. Built here because
// msal-node's account lookups (getAccountByHomeId, getAllAccounts) scan
// every account for every account: minutes at 10,000 accounts.
function accountInfo(i) {
  const uid = hid(i).split(".")[0];
  return {
    homeAccountId: hid(i), environment: "login.windows.net", tenantId: TENANT_ID, localAccountId: uid,
    username: `user${i}@example.com`, name: `User ${i}`,
  };
}

async function newApp(cacheFile) {
  const persistence = await FilePersistence.create(cacheFile);
  const counter = { loads: 0 };
  const load = persistence.load.bind(persistence);
  persistence.load = async () => { counter.loads++; return load(); };
  const app = new msal.PublicClientApplication(config(new PersistenceCachePlugin(persistence)));
  return { app, counter };
}

function silentIterations(n) {
  if (n <= 100) return 5000;
  if (n <= 1000) return 500;
  return 30;
}

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");

async function silent(cacheFile, n) {
  const { app, counter } = await newApp(cacheFile);
  const t0 = process.hrtime.bigint();
  const accounts = [];
  for (let i = 1; i <= Math.min(n, 100); i++) accounts.push(accountInfo(i));
  const first = await app.acquireTokenSilent({ account: accounts[0], scopes: SCOPES });
  if (!first.fromCache) throw new Error("the first call was not a cache hit");
  const loadMs = elapsedMs(t0);
  const loadsBefore = counter.loads;
  const k = silentIterations(n);
  const times = [];
  for (let i = 0; i < k; i++) {
    const t = process.hrtime.bigint();
    const r = await app.acquireTokenSilent({ account: accounts[i % accounts.length], scopes: SCOPES });
    times.push(elapsedMs(t) * 1000);
    if (!r.fromCache) throw new Error(`call ${i} was not a cache hit`);
  }
  progress(`silent: ${k} hits at ${n} accounts`);
  return {
    silent_hit_us: round3(median(times)),
    iterations: k,
    first_access_ms: round3(loadMs),
    loads: counter.loads - loadsBefore,
  };
}

async function write(cacheFile, n, writes) {
  const { app, counter } = await newApp(cacheFile);
  const now = Math.floor(Date.now() / 1000);
  let seq = 0;
  const times = [];
  let loadMs = 0;
  let loadsBefore = 0;
  // write -1 is the first access: it loads the file, and is not counted
  for (let w = -1; w < writes; w++) {
    const i = ((w + 1) % Math.min(n, 100)) + 1;
    const uid = hid(i).split(".")[0];
    tokenAnswer = () => ({
      token_type: "Bearer", scope: `api://bench-w${seq}/Data.Write`, expires_in: 3600, ext_expires_in: 3600,
      access_token: `bench-write-${seq}-${"x".repeat(1200)}`, refresh_token: `bench-rt-${i}`,
      id_token: `${b64url({ typ: "JWT", alg: "none" })}.${b64url({
        aud: CLIENT_ID, iss: `${AUTHORITY}/v2.0`, tid: TENANT_ID, oid: uid, sub: `sub-${i}`,
        preferred_username: `user${i}@example.com`, name: `User ${i}`, exp: now + 3600, iat: now })}.c2ln`,
      client_info: b64url({ uid, utid: TENANT_ID }),
    });
    const t = process.hrtime.bigint();
    const r = await app.acquireTokenByRefreshToken({
      refreshToken: `bench-rt-${i}`, scopes: [`api://bench-w${seq}/Data.Write`], forceCache: true,
    });
    const ms = elapsedMs(t);
    if (!r || r.fromCache) throw new Error("the token response was not stored");
    seq++;
    if (w < 0) {
      loadMs = ms;
      loadsBefore = counter.loads;
    } else {
      times.push(ms);
    }
    progress(`write ${w + 1}/${writes}: ${round3(ms)} ms`);
  }
  return {
    write_ms: round3(median(times)),
    writes,
    first_write_ms: round3(loadMs),
    loads: counter.loads - loadsBefore,
  };
}

const [cmd, file, nArg, wArg] = process.argv.slice(2);
const n = Number(nArg);
try {
  if (!file || !Number.isInteger(n) || n < 1) throw new Error("usage: see the header");
  let out;
  if (cmd === "silent") out = await silent(file, n);
  else if (cmd === "write") out = await write(file, n, Number(wArg) || 5);
  else throw new Error("usage: see the header");
  process.stdout.write(JSON.stringify({ impl: "msal-node+extensions", n_accounts: n, ...out }) + "\n");
} catch (e) {
  process.stderr.write(`msal_node_file_cache_bench: ${e.errorCode || e.name}: ${e.message}\n`);
  process.exitCode = 1;
}
