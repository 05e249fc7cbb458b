-- msal.jwt.verify beside node's jose (bench/peers/jose_jwt_bench.mjs) on
-- the same tokens, with the key set cached on both sides: verifications per
-- second, one lua-msal process and one node process.
--
--   luajit bench/jwt_bench.lua [seconds] [rounds]  (default 2 s per workload, 3 rounds)
--   (from the repository root after `make`, with LUA_PATH/LUA_CPATH set as
--   scripts/bench sets them; needs the spec peers' node_modules)
--
-- Workloads, for RS256 (2048-bit) and ES256 (P-256) each:
--   one token      the same token again and again (a client reusing its token)
--   small          1,000 distinct tokens of ~350 bytes (a few claims)
--   entra-like     1,000 distinct tokens of ~1.3 KB (an Entra v2 access
--                  token's claims: oid, tid, scp, roles, wids, uti, rh…)
--   large          1,000 distinct tokens of ~5 KB (60 group ids)
-- Distinct tokens differ in user, scopes and size, so nothing a cache of
-- results could keep helps either side.
package.path = "spec/support/?.lua;" .. package.path

local core = require("msal.core")
local crypto = core.crypto
local cjson = require("cjson")
local jwt = require("msal.jwt")
local proc = require("proc")

local SECONDS = tonumber(arg[1]) or 2
local ISSUER = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
local AUDIENCE = "api://bench-api"

local function b64json(t) return crypto.b64url_encode(cjson.encode(t)) end
local function guid(i) return ("%08x-0000-4000-8000-%012x"):format(i, i * 7919) end

local keys = {}
local jwks = { keys = {} }
for _, k in ipairs({ { "RS256", "RSA" }, { "ES256", "EC" } }) do
  local pem, jwk = crypto.generate_key(k[2])
  jwk.kid, jwk.use, jwk.alg = k[1] .. "-key", "sig", k[1]
  keys[k[1]] = pem
  jwks.keys[#jwks.keys + 1] = jwk
end

local now = os.time()
local function claims(shape, i)
  local c = { iss = ISSUER, aud = AUDIENCE, exp = now + 3600, nbf = now - 60, iat = now - 60, sub = guid(i) }
  if shape == "small" then return c end
  c.tid, c.oid, c.ver, c.azp, c.azpacr = "72f988bf-86f1-41af-91ab-2d7cd011db47", guid(i + 1e6), "2.0", guid(3), "0"
  c.scp = ({ "Data.Read", "Data.Read Data.Write", "Files.Read.All User.Read Data.Read" })[i % 3 + 1]
  c.name, c.preferred_username = "User " .. i, ("user%d@contoso.example"):format(i)
  c.aio = crypto.b64url_encode(crypto.random_bytes(90))
  c.rh = "0.A" .. crypto.b64url_encode(crypto.random_bytes(60)) .. "."
  c.uti = crypto.b64url_encode(crypto.random_bytes(16))
  c.wids = { "b79fbf4d-3ef9-4689-8143-76b194e85509" }
  c.roles = { "Reader" }
  if shape == "large" then
    c.groups = {}
    for g = 1, 60 do c.groups[g] = guid(i * 100 + g) end
  end
  return c
end

local function sign(alg, c)
  local input = b64json({ alg = alg, kid = alg .. "-key", typ = "JWT" }) .. "." .. b64json(c)
  return input .. "." .. crypto.b64url_encode(assert(crypto.jws_sign(alg, keys[alg], input)))
end

local workloads = {}
for _, alg in ipairs({ "RS256", "ES256" }) do
  workloads[#workloads + 1] = { name = alg .. " one token", tokens = { sign(alg, claims("entra", 1)) } }
  for _, shape in ipairs({ "small", "entra", "large" }) do
    local toks = {}
    for i = 1, 1000 do toks[i] = sign(alg, claims(shape, i)) end
    workloads[#workloads + 1] = { name = alg .. " " .. shape, tokens = toks, size = #toks[1] }
  end
end

-- One node process beside this one, driven through a FIFO: each round runs
-- every workload on jose, then at once here, so that the host's noise (this
-- VM's neighbours come and go) falls on both sides alike.
local ROUNDS = tonumber(arg[2]) or 3
local dir, remove = proc.tempdir()
local input_path, fifo = dir .. "/input.json", dir .. "/workloads"
local f = assert(io.open(input_path, "w"))
f:write(cjson.encode({ jwks = jwks, issuer = ISSUER, audience = AUDIENCE, seconds = SECONDS, workloads = workloads }))
f:close()
assert(select(2, proc.sh("mkfifo " .. proc.quote(fifo), { plain = true })) == 0, "mkfifo failed")
local peer = assert(io.popen("exec env -u LD_PRELOAD node bench/peers/jose_jwt_bench.mjs " .. proc.quote(input_path) ..
  " < " .. proc.quote(fifo)))
local ask = assert(io.open(fifo, "w"))
assert(peer:read("*l") == "ready", "the jose peer failed")

local function jose_rate(name)
  ask:write(name, "\n")
  ask:flush()
  return (assert(tonumber(peer:read("*l")), "the jose peer failed on " .. name))
end

local transport = {}
function transport.request(_, _, cb) cb(nil, { status = 200, headers = {}, body = cjson.encode(jwks) }) end
local opts = { issuer = ISSUER, audience = AUDIENCE, jwks_uri = "https://keys.example/keys", transport = transport }

local function our_rate(w)
  local toks, n = w.tokens, 0
  local start = core.now_ms()
  local deadline = start + SECONDS * 1000
  while core.now_ms() < deadline do
    for i = 1, 100 do jwt.verify(toks[(n + i) % #toks + 1], opts):await() end
    n = n + 100
  end
  return n / ((core.now_ms() - start) / 1000)
end

for _, w in ipairs(workloads) do
  for _, t in ipairs(w.tokens) do assert(jwt.verify(t, opts):await()) end
end
local ours, theirs = {}, {}
for _ = 1, ROUNDS do
  for _, w in ipairs(workloads) do
    theirs[w.name] = theirs[w.name] or {}
    ours[w.name] = ours[w.name] or {}
    table.insert(theirs[w.name], jose_rate(w.name))
    table.insert(ours[w.name], our_rate(w))
  end
end
ask:close()
peer:close()
remove()

local function median(list)
  table.sort(list)
  local n = #list
  return n % 2 == 1 and list[(n + 1) / 2] or (list[n / 2] + list[n / 2 + 1]) / 2
end

print(("%-18s %8s %14s %14s %7s   %s"):format("workload", "bytes", "lua-msal /s", "jose /s", "ratio", "ratio per round"))
for _, w in ipairs(workloads) do
  -- the ratio is the median of each round's (paired) ratio
  local ratios, shown = {}, {}
  for r = 1, ROUNDS do
    ratios[r] = ours[w.name][r] / theirs[w.name][r]
    shown[r] = ("%.2f"):format(ratios[r])
  end
  print(("%-18s %8d %14.0f %14.0f %6.2fx   %s"):format(w.name, #w.tokens[1], median(ours[w.name]),
    median(theirs[w.name]), median(ratios), table.concat(shown, " ")))
end
print(("(%s, %d rounds of %s s per workload and side)"):format(jit and jit.version or _VERSION, ROUNDS, SECONDS))
