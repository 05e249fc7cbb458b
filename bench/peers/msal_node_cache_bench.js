#!/usr/bin/env node
// msal-node reference numbers for the lua-msal cache benchmark.
//
//   node --max-old-space-size=8192 msal_node_cache_bench.js <cacheFile> <nAccounts>
//
// <cacheFile> comes from bench/gen_cache.lua (one tenant, client
// 11111111-2222-3333-4444-555555555555, ATs for api://res1..5). Prints one
// JSON line on stdout; progress goes to stderr.
//
// Like spec/support/node/peer.js (whose offline config this mirrors), no
// instance ever reaches the network: authority and cloud-discovery metadata
// come from the configuration and the network client throws.
"use strict";

const fs = require("fs");
const msal = require("@azure/msal-node");

const CLIENT_ID = "11111111-2222-3333-4444-555555555555";
const TENANT_ID = "00000000-0000-0000-bbbb-000000000002"; // fixed tenant of gen_cache.lua
const AUTHORITY = `https://login.microsoftonline.com/${TENANT_ID}`;
const SCOPES = ["api://res1/Data.Read"];
const RUNS = 5; // as bench/cache_bench.lua: the median, and the first run apart
const SLOW_CALL_MS = 20000; // a getAllAccounts slower than this is timed once only

const offlineConfig = {
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
      metadata: [
        {
          preferred_network: "login.microsoftonline.com",
          preferred_cache: "login.windows.net",
          aliases: ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
        },
      ],
    }),
  },
  system: {
    networkClient: {
      sendGetRequestAsync: async () => { throw new Error("network disabled in tests"); },
      sendPostRequestAsync: async () => { throw new Error("network disabled in tests"); },
    },
    loggerOptions: { logLevel: msal.LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => {} },
  },
};

const newApp = () => new msal.PublicClientApplication(offlineConfig);

const elapsedMs = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const round3 = (x) => Math.round(x * 1000) / 1000;

function progress(msg) {
  process.stderr.write(`[msal-node bench] ${msg}\n`);
}

// Fewer silent calls for big caches: msal-node scans every entry per call.
function silentIterations(n) {
  if (n <= 100) return 2000;
  if (n <= 1000) return 200;
  return 30;
}

async function main() {
  const [cacheFile, nArg] = process.argv.slice(2);
  const n = Number(nArg);
  if (!cacheFile || !Number.isInteger(n) || n < 1) {
    throw new Error("usage: msal_node_cache_bench.js <cacheFile> <nAccounts>");
  }
  const text = fs.readFileSync(cacheFile, "utf8");

  // deserialize: a fresh app each run, so every run starts from an empty cache.
  const deser = [];
  let app = null;
  for (let r = 0; r < RUNS; r++) {
    app = null; // let the previous run's cache be collected before timing
    const candidate = newApp();
    const t0 = process.hrtime.bigint();
    candidate.getTokenCache().deserialize(text);
    deser.push(elapsedMs(t0));
    app = candidate;
  }
  progress(`deserialize ms: ${deser.map(round3).join(", ")}`);

  // serialize: the last loaded app; its output is not kept.
  const ser = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    const out = app.getTokenCache().serialize();
    ser.push(elapsedMs(t0));
    if (out.length === 0) throw new Error("empty serialize output");
  }
  progress(`serialize ms: ${ser.map(round3).join(", ")}`);

  const gaa = [];
  let accounts = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    accounts = await app.getAllAccounts();
    gaa.push(elapsedMs(t0));
    if (gaa[r] > SLOW_CALL_MS) break;
  }
  progress(`getAllAccounts ms: ${gaa.map(round3).join(", ")}`);
  if (accounts.length !== n) {
    throw new Error(`getAllAccounts returned ${accounts.length} accounts, expected ${n}`);
  }

  // Cache hits only: each call is awaited before the next, so msal-node's
  // coalescing of identical in-flight requests never kicks in.
  const k = silentIterations(n);
  const silent = [];
  for (let i = 0; i < k; i++) {
    const account = accounts[i % accounts.length];
    const t0 = process.hrtime.bigint();
    const res = await app.acquireTokenSilent({ account, scopes: SCOPES });
    silent.push(elapsedMs(t0) * 1000);
    if (!res.fromCache) throw new Error(`acquireTokenSilent #${i} was not a cache hit`);
  }
  progress(`acquireTokenSilent: ${k} cache hits`);

  const result = {
    impl: "msal-node",
    msal_node_version: msal.version,
    node_version: process.version,
    n_accounts: n,
    cache_bytes: Buffer.byteLength(text),
    deserialize_ms: round3(median(deser)),
    serialize_ms: round3(median(ser)),
    first_deserialize_ms: round3(deser[0]),
    first_serialize_ms: round3(ser[0]),
    get_all_accounts_ms: round3(median(gaa)),
    get_all_accounts_runs: gaa.length,
    silent_hit_us: round3(median(silent)),
    silent_iterations: k,
    peak_rss_mb: round3(process.resourceUsage().maxRSS / 1024),
  };
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e) => {
  process.stderr.write(`msal_node_cache_bench: ${e.errorCode || e.name}: ${e.message}\n`);
  process.exitCode = 1;
});
