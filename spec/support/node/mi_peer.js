#!/usr/bin/env node
// msal-node's ManagedIdentityApplication for spec/managed_identity_spec.lua:
// one acquireToken against the fake endpoints (spec/support/mi_server.py),
// so the spec can compare the request msal-node sends with ours.
//
// Usage: node mi_peer.js '<json>'   with {env: {NAME: value}, id: {userAssignedClientId |
//        userAssignedResourceId | userAssignedObjectId}, caps: [client capabilities], resource}
// Prints one JSON document: {accessToken, fromCache} or {errorCode}.
// The environment is replaced by exactly the variables given (the source
// is detected from it), so nothing on the machine can point it elsewhere.
"use strict";

const args = JSON.parse(process.argv[2]);
for (const k of ["IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
  "MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_POD_IDENTITY_AUTHORITY_HOST"]) {
  delete process.env[k];
}
Object.assign(process.env, args.env || {});
const msal = require("@azure/msal-node");

(async () => {
  const config = args.id ? { managedIdentityIdParams: args.id } : {};
  if (args.caps) config.clientCapabilities = args.caps;
  const app = new msal.ManagedIdentityApplication(config);
  try {
    const r = await app.acquireToken({ resource: args.resource });
    process.stdout.write(JSON.stringify({ accessToken: r.accessToken, fromCache: r.fromCache,
      source: app.getManagedIdentitySource() }));
  } catch (e) {
    process.stdout.write(JSON.stringify({ errorCode: e.errorCode || String(e) }));
  }
})();
