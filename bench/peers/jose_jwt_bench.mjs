// The jose side of bench/jwt_bench.lua: jwtVerify with a local JWKS (keys
// imported once, as createLocalJWKSet caches them) over the same tokens,
// issuer and audience. jose is oidc-provider's own JOSE library, installed
// with the spec peers (spec/support/node).
//   node bench/peers/jose_jwt_bench.mjs <input.json>
// Input: {jwks, issuer, audience, seconds, workloads: [{name, tokens: [...]}]}
// Verifies every token once, prints "ready", then for each workload name
// read on stdin runs it for `seconds` and prints "<verifications per
// second>": the Lua side runs the same workload right after, so that the
// host's noise falls on both alike.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";

const here = path.dirname(new URL(import.meta.url).pathname);
const jose = await import(pathToFileURL(path.join(here, "../../spec/support/node/node_modules/jose/dist/webapi/index.js")));
const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const keys = jose.createLocalJWKSet(input.jwks);
const opts = { issuer: input.issuer, audience: input.audience };
const byName = {};
for (const w of input.workloads) {
  byName[w.name] = w.tokens;
  for (const t of w.tokens) await jose.jwtVerify(t, keys, opts); // warm-up, and every token must pass
}
process.stdout.write("ready\n");
for await (const name of readline.createInterface({ input: process.stdin })) {
  const toks = byName[name];
  const deadline = process.hrtime.bigint() + BigInt(Math.round(input.seconds * 1e9));
  const start = process.hrtime.bigint();
  let n = 0;
  while (process.hrtime.bigint() < deadline) {
    for (let i = 0; i < 100; i++) await jose.jwtVerify(toks[(n + i) % toks.length], keys, opts);
    n += 100;
  }
  process.stdout.write(String(n / (Number(process.hrtime.bigint() - start) / 1e9)) + "\n");
}
