#!/usr/bin/env node
// msal-node peer that keeps its cache in a file the way real msal-node apps
// do: msal-node-extensions' PersistenceCachePlugin over FilePersistence, i.e.
// the `<cacheFile>.lockfile` lock, reload when the file's mtime is newer than
// the last sync, and writes of the whole merged cache.
//
// Usage:
//   node ext_peer.mjs silent <cacheFile> <clientId> <authority> <homeAccountId> <scope> [<scope>...]
//     -> {"accessToken", "fromCache", "scopes", "expiresOn", "account"}
//   node ext_peer.mjs load <cacheFile> <clientId> <authority> <tokenResponseJson>
//     -> {"accessToken", "fromCache", "account"}
//
// `load` makes msal-node itself store a token set through the extensions'
// plugin, as if it had signed in: msal-node 7.2.1 has no
// TokenCache.loadExternalTokens (that is msal-browser's API), so the peer
// redeems a refresh token (acquireTokenByRefreshToken, forceCache) and its
// network client answers the token request with <tokenResponseJson>. The
// answer goes through msal-node's own response handler and cache writes.
//
// Prints one JSON document on stdout; on failure one line
// "ext_peer.mjs <command>: <errorCode>: <message>" on stderr and exit 1.
// Like peer.js, nothing reaches a real identity provider: authority and
// cloud-discovery metadata are in the configuration, and `silent` fails if
// msal-node even tried the network.
//
// msal-node-extensions' package index requires keytar (a native module whose
// build is skipped: npm ci --ignore-scripts), so its two modules are imported
// by path.
import * as msal from "@azure/msal-node";

const ext = (p) => new URL(`./node_modules/@azure/msal-node-extensions/dist/${p}`, import.meta.url).href;
const { FilePersistence } = await import(ext("persistence/FilePersistence.mjs"));
const { PersistenceCachePlugin } = await import(ext("persistence/PersistenceCachePlugin.mjs"));

// msal-common's built-in instance-discovery table (as in peer.js), so the
// public cloud's tokens are cached under login.windows.net.
const KNOWN_CLOUDS = [
  {
    preferred_network: "login.microsoftonline.com",
    preferred_cache: "login.windows.net",
    aliases: ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
  },
];

const networkAttempts = [];
// The token endpoint's answer for `load`; any other request is refused.
let tokenAnswer = null;

const networkClient = {
  sendGetRequestAsync: async (url) => {
    networkAttempts.push(`GET ${url}`);
    throw new Error("network disabled in tests");
  },
  sendPostRequestAsync: async (url) => {
    networkAttempts.push(`POST ${url}`);
    if (tokenAnswer && new URL(url).pathname.endsWith("/oauth2/v2.0/token")) {
      return { status: 200, headers: { "content-type": "application/json" }, body: tokenAnswer };
    }
    throw new Error("network disabled in tests");
  },
};

function config(clientId, authority, cachePlugin) {
  const base = authority.replace(/\/+$/, "");
  const host = new URL(base).host.toLowerCase();
  const known = KNOWN_CLOUDS.some((c) => c.aliases.includes(host));
  return {
    auth: {
      clientId,
      authority: base,
      authorityMetadata: JSON.stringify({
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        issuer: `${base}/v2.0`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
      }),
      cloudDiscoveryMetadata: JSON.stringify({
        tenant_discovery_endpoint: `${base}/v2.0/.well-known/openid-configuration`,
        "api-version": "1.1",
        metadata: known ? KNOWN_CLOUDS : [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
      }),
    },
    cache: { cachePlugin },
    system: {
      networkClient,
      loggerOptions: { logLevel: msal.LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => {} },
    },
  };
}

async function app(cacheFile, clientId, authority) {
  // FilePersistence.create makes the directory and an empty file when
  // missing, as apps using the extensions do.
  const persistence = await FilePersistence.create(cacheFile);
  return new msal.PublicClientApplication(config(clientId, authority, new PersistenceCachePlugin(persistence)));
}

function fail(code, message) {
  throw Object.assign(new Error(message), { errorCode: code });
}

function usage() {
  fail("usage", "see the header of ext_peer.mjs");
}

const commands = {
  async silent([cacheFile, clientId, authority, homeAccountId, ...scopes]) {
    if (!homeAccountId || scopes.length === 0) usage();
    const pca = await app(cacheFile, clientId, authority);
    const account = await pca.getTokenCache().getAccountByHomeId(homeAccountId);
    if (!account) fail("account_not_found", `no account with homeAccountId ${homeAccountId}`);
    const r = await pca.acquireTokenSilent({ account, scopes });
    if (networkAttempts.length) fail("network_attempted", `silent tried the network: ${networkAttempts.join(", ")}`);
    return {
      accessToken: r.accessToken,
      fromCache: r.fromCache,
      scopes: r.scopes,
      expiresOn: r.expiresOn ? Math.floor(r.expiresOn.getTime() / 1000) : null,
      account: { homeAccountId: r.account.homeAccountId, username: r.account.username },
    };
  },

  async load([cacheFile, clientId, authority, responseJson, ...extra]) {
    if (!responseJson || extra.length) usage();
    const response = JSON.parse(responseJson);
    tokenAnswer = response;
    const pca = await app(cacheFile, clientId, authority);
    const r = await pca.acquireTokenByRefreshToken({
      refreshToken: "ext-peer-refresh-token",
      scopes: String(response.scope || "").split(" ").filter(Boolean),
      forceCache: true,
    });
    if (!r) fail("no_result", "msal-node returned no result");
    return {
      accessToken: r.accessToken,
      fromCache: r.fromCache,
      account: r.account ? { homeAccountId: r.account.homeAccountId, username: r.account.username } : null,
    };
  },
};

const [cmd, ...args] = process.argv.slice(2);
try {
  if (!Object.prototype.hasOwnProperty.call(commands, cmd)) usage();
  const out = await commands[cmd](args);
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (e) {
  const code = e.errorCode || e.name || "error";
  const tried = networkAttempts.length && code !== "network_attempted"
    ? ` (network attempted: ${networkAttempts.join(", ")})`
    : "";
  process.stderr.write(`ext_peer.mjs ${cmd || ""}: ${code}: ${e.message}${tried}\n`);
  process.exitCode = 1;
}
