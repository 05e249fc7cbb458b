#!/usr/bin/env node
// msal-node peer for lua-msal interop specs.
//
// Usage:
//   node peer.js accounts  <cacheFile> <clientId> <authority>
//   node peer.js silent    <cacheFile> <clientId> <authority> <homeAccountId> <scope> [<scope>...]
//   node peer.js roundtrip <inFile> <outFile> <clientId> <authority>
//   node peer.js tenants   <cacheFile> <clientId> <authority>
//        every AccountInfo msal-node lists (one per tenant profile), with
//        its tenantProfiles and id token's tid
//   node peer.js tenant_silent <cacheFile> <clientId> <authority> <homeAccountId> <tenantId> <scope> [<scope>...]
//        acquireTokenSilent with the account as that tenant sees it
//   node peer.js app_token <cacheFile> <clientId> <authority> <scope>
//        a ConfidentialClientApplication's acquireTokenByClientCredential
//        served from the cache (no network)
//   node peer.js obo <cacheFile> <clientId> <authority> <assertion> <scope>
//        a ConfidentialClientApplication's acquireTokenOnBehalfOf served from
//        the cache (no network)
//   node peer.js write_app_token <outFile> <clientId> <authority> <scope> <accessToken> <expiresIn>
//        a ConfidentialClientApplication that redeems its client credential
//        (the token endpoint's answer is canned: access token, expires_in)
//        and serializes its cache to outFile
//
// Prints exactly one JSON document on stdout; on failure prints one line
// "peer.js <command>: <errorCode>: <message>" on stderr and exits 1.
//
// The peer must never talk to a real identity provider: authority and cloud
// discovery metadata are given in the configuration, and the network client
// throws. A silent call that even *tries* the network (e.g. msal-node's
// proactive refresh past refresh_on, whose error it swallows) is reported as a
// failure, so a spec can only pass on a genuine cache hit.
"use strict";

const fs = require("fs");
const msal = require("@azure/msal-node");

// Mirrors msal-common's hard-coded instance-discovery table, so aliases (and
// the login.windows.net preferred_cache) behave exactly as with discovery on.
const KNOWN_CLOUDS = [
  {
    preferred_network: "login.microsoftonline.com",
    preferred_cache: "login.windows.net",
    aliases: ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
  },
  {
    preferred_network: "login.partner.microsoftonline.cn",
    preferred_cache: "login.partner.microsoftonline.cn",
    aliases: ["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
  },
  {
    preferred_network: "login.microsoftonline.us",
    preferred_cache: "login.microsoftonline.us",
    aliases: ["login.microsoftonline.us", "login.usgovcloudapi.net"],
  },
];

// Every network attempt, kept so a swallowed attempt still fails the command.
const networkAttempts = [];

function refuse(method, url) {
  networkAttempts.push(`${method} ${url}`);
  throw new Error("network disabled in tests");
}

const offlineNetworkClient = {
  sendGetRequestAsync: async (url) => refuse("GET", url),
  sendPostRequestAsync: async (url) => refuse("POST", url),
};

// OpenID configuration msal would otherwise fetch; shaped like AAD v2 (or
// ADFS when the authority path is /adfs). Issuer shares the authority's
// origin so msal-node's issuer validation accepts it for any host.
function authorityMetadata(authority) {
  const base = authority.replace(/\/+$/, "");
  const adfs = /\/adfs$/i.test(base);
  const oauth = adfs ? `${base}/oauth2` : `${base}/oauth2/v2.0`;
  return {
    authorization_endpoint: `${oauth}/authorize`,
    token_endpoint: `${oauth}/token`,
    device_authorization_endpoint: `${oauth}/devicecode`,
    end_session_endpoint: `${oauth}/logout`,
    issuer: adfs ? base : `${base}/v2.0`,
    jwks_uri: adfs ? `${base}/discovery/keys` : `${base}/discovery/v2.0/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
  };
}

// Instance-discovery response msal would otherwise fetch. A host outside the
// Microsoft clouds gets an entry of its own (host[:port], as msal keys it).
function cloudDiscoveryMetadata(authority) {
  const host = new URL(authority).host.toLowerCase();
  const known = KNOWN_CLOUDS.some((c) => c.aliases.includes(host));
  const metadata = known
    ? KNOWN_CLOUDS
    : [{ preferred_network: host, preferred_cache: host, aliases: [host] }];
  return {
    tenant_discovery_endpoint: `${authority.replace(/\/+$/, "")}/v2.0/.well-known/openid-configuration`,
    "api-version": "1.1",
    metadata,
  };
}

function offlineConfig(clientId, authority) {
  return {
    auth: {
      clientId,
      authority,
      authorityMetadata: JSON.stringify(authorityMetadata(authority)),
      cloudDiscoveryMetadata: JSON.stringify(cloudDiscoveryMetadata(authority)),
    },
    system: {
      networkClient: offlineNetworkClient,
      loggerOptions: { logLevel: msal.LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => {} },
    },
  };
}

function loadedApp(cacheFile, clientId, authority) {
  const pca = new msal.PublicClientApplication(offlineConfig(clientId, authority));
  pca.getTokenCache().deserialize(fs.readFileSync(cacheFile, "utf8"));
  return pca;
}

// A confidential client of the offline configuration: its secret is never
// sent (the network client refuses, or answers one canned token response).
function confidentialApp(clientId, authority, networkClient) {
  const config = offlineConfig(clientId, authority);
  config.auth.clientSecret = "peer-secret";
  if (networkClient) config.system.networkClient = networkClient;
  return new msal.ConfidentialClientApplication(config);
}

function usage() {
  throw Object.assign(new Error("usage: see header of peer.js"), { errorCode: "usage" });
}

const commands = {
  async accounts([cacheFile, clientId, authority, ...extra]) {
    if (!authority || extra.length) usage();
    const accounts = await loadedApp(cacheFile, clientId, authority).getAllAccounts();
    return accounts.map((a) => ({
      homeAccountId: a.homeAccountId,
      environment: a.environment,
      tenantId: a.tenantId,
      username: a.username,
      localAccountId: a.localAccountId,
      name: a.name,
    }));
  },

  async silent([cacheFile, clientId, authority, homeAccountId, ...scopes]) {
    if (!homeAccountId || scopes.length === 0) usage();
    const pca = loadedApp(cacheFile, clientId, authority);
    const account = await pca.getTokenCache().getAccountByHomeId(homeAccountId);
    if (!account) {
      throw Object.assign(new Error(`no account with homeAccountId ${homeAccountId}`), {
        errorCode: "account_not_found",
      });
    }
    const r = await pca.acquireTokenSilent({ account, scopes });
    if (networkAttempts.length) {
      throw Object.assign(new Error(`silent tried the network: ${networkAttempts.join(", ")}`), {
        errorCode: "network_attempted",
      });
    }
    return {
      accessToken: r.accessToken,
      fromCache: r.fromCache,
      scopes: r.scopes,
      expiresOn: r.expiresOn ? Math.floor(r.expiresOn.getTime() / 1000) : null,
      idTokenClaims: r.idTokenClaims,
      account: { homeAccountId: r.account.homeAccountId, username: r.account.username },
    };
  },

  async tenants([cacheFile, clientId, authority, ...extra]) {
    if (!authority || extra.length) usage();
    const accounts = await loadedApp(cacheFile, clientId, authority).getAllAccounts();
    return accounts.map((a) => ({
      homeAccountId: a.homeAccountId,
      tenantId: a.tenantId,
      localAccountId: a.localAccountId,
      name: a.name,
      username: a.username,
      idTokenTid: a.idTokenClaims ? a.idTokenClaims.tid : null,
      tenantProfiles: Array.from((a.tenantProfiles || new Map()).values()),
    }));
  },

  async tenant_silent([cacheFile, clientId, authority, homeAccountId, tenantId, ...scopes]) {
    if (!tenantId || scopes.length === 0) usage();
    const pca = loadedApp(cacheFile, clientId, authority);
    const account = (await pca.getAllAccounts())
      .find((a) => a.homeAccountId === homeAccountId && a.tenantId === tenantId);
    if (!account) {
      throw Object.assign(new Error(`no account ${homeAccountId} in tenant ${tenantId}`), {
        errorCode: "account_not_found",
      });
    }
    const r = await pca.acquireTokenSilent({ account, scopes });
    if (networkAttempts.length) {
      throw Object.assign(new Error(`silent tried the network: ${networkAttempts.join(", ")}`), {
        errorCode: "network_attempted",
      });
    }
    return { accessToken: r.accessToken, fromCache: r.fromCache, tenantId: r.tenantId };
  },

  async app_token([cacheFile, clientId, authority, scope, ...extra]) {
    if (!scope || extra.length) usage();
    const cca = confidentialApp(clientId, authority);
    cca.getTokenCache().deserialize(fs.readFileSync(cacheFile, "utf8"));
    const r = await cca.acquireTokenByClientCredential({ scopes: [scope] });
    if (networkAttempts.length) {
      throw Object.assign(new Error(`tried the network: ${networkAttempts.join(", ")}`), {
        errorCode: "network_attempted",
      });
    }
    return {
      accessToken: r.accessToken,
      fromCache: r.fromCache,
      tenantId: r.tenantId,
      expiresOn: r.expiresOn ? Math.floor(r.expiresOn.getTime() / 1000) : null,
    };
  },

  async obo([cacheFile, clientId, authority, assertion, scope, ...extra]) {
    if (!scope || extra.length) usage();
    const cca = confidentialApp(clientId, authority);
    cca.getTokenCache().deserialize(fs.readFileSync(cacheFile, "utf8"));
    const r = await cca.acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes: [scope] });
    if (networkAttempts.length) {
      throw Object.assign(new Error(`tried the network: ${networkAttempts.join(", ")}`), {
        errorCode: "network_attempted",
      });
    }
    return {
      accessToken: r.accessToken,
      fromCache: r.fromCache,
      homeAccountId: r.account ? r.account.homeAccountId : null,
    };
  },

  async write_app_token([outFile, clientId, authority, scope, accessToken, expiresIn, ...extra]) {
    if (!expiresIn || extra.length) usage();
    const canned = {
      sendGetRequestAsync: async (url) => refuse("GET", url),
      sendPostRequestAsync: async () => ({
        status: 200,
        headers: {},
        body: { token_type: "Bearer", expires_in: Number(expiresIn), ext_expires_in: Number(expiresIn),
          access_token: accessToken },
      }),
    };
    const cca = confidentialApp(clientId, authority, canned);
    const r = await cca.acquireTokenByClientCredential({ scopes: [scope] });
    fs.writeFileSync(outFile, cca.getTokenCache().serialize());
    return { accessToken: r.accessToken, fromCache: r.fromCache };
  },

  async roundtrip([inFile, outFile, clientId, authority, ...extra]) {
    if (!authority || extra.length) usage();
    const text = loadedApp(inFile, clientId, authority).getTokenCache().serialize();
    fs.writeFileSync(outFile, text);
    return { ok: true };
  },
};

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  try {
    if (!Object.prototype.hasOwnProperty.call(commands, cmd)) usage();
    const out = await commands[cmd](args);
    process.stdout.write(JSON.stringify(out) + "\n");
  } catch (e) {
    const code = e.errorCode || e.name || "error";
    // msal's own message for a refused request is just a doc link; say what it tried.
    const tried = networkAttempts.length && code !== "network_attempted"
      ? ` (network attempted: ${networkAttempts.join(", ")})`
      : "";
    process.stderr.write(`peer.js ${cmd || ""}: ${code}: ${e.message}${tried}\n`);
    process.exitCode = 1;
  }
}

main();
