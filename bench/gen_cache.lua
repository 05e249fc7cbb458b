-- Synthetic unified token cache for benchmarks.
--
--   lua5.4 bench/gen_cache.lua N out.json      (luajit works too)
--
-- Writes a cache in msal-node 7 format (keys per msal-semantics.md §1.4,
-- entries shaped like the §1.6 example) holding N accounts of one tenant, each
-- with 1 Account, 1 IdToken, 5 AccessTokens (resources api://res1..5),
-- 1 RefreshToken, plus one AppMetadata for the single client. Prints the path.
--
-- Output is byte-for-byte deterministic (same bytes from lua5.4 and luajit):
-- JSON is emitted here with a fixed field order, lua-cjson only escapes
-- strings, because cjson's own object order follows Lua's hash layout, which
-- Lua 5.4 seeds per process.
--
-- Speed: everything is streamed as small fragments into one buffer that is
-- flushed to the file, one section at a time. Building a string per entry
-- made LuaJIT spend most of its time interning ~2 KB strings.

local cjson = require("cjson")

local encode, concat = cjson.encode, table.concat
local byte, find, format, gsub, sub, lower =
  string.byte, string.find, string.format, string.gsub, string.sub, string.lower
local floor = math.floor

local CLIENT_ID = "11111111-2222-3333-4444-555555555555"
local TENANT_ID = "00000000-0000-0000-bbbb-000000000002" -- same fake tenant as examples/cache.json
local ENV = "login.windows.net" -- msal-node's preferred_cache for the public cloud
local ISSUER = "https://login.microsoftonline.com/" .. TENANT_ID .. "/v2.0"
local CACHED_AT = "1767225600" -- 2026-01-01
local EXPIRES_ON = "1893456000" -- 2030-01-01
local N_RESOURCES = 5
-- Token sizes: real Entra access tokens run 1.2-2.5 KB; MSAL_BENCH_SECRETS
-- ("at,rt" lengths) makes smaller caches, e.g. "40,40" for the shape of the
-- msal-semantics example with short fake secrets.
local AT_SECRET_LEN, RT_SECRET_LEN = 1200, 800
do
  local at, rt = (os.getenv("MSAL_BENCH_SECRETS") or ""):match("^(%d+),(%d+)$")
  if at then AT_SECRET_LEN, RT_SECRET_LEN = tonumber(at), tonumber(rt) end
end

---------------------------------------------------------------------------
-- JSON helpers
---------------------------------------------------------------------------

-- JSON string literal. cjson 2.1.0 escapes "/" as "\/"; undo that so targets
-- and URLs read like msal-node's output. Safe: cjson never emits a raw "/",
-- so every "\/" in its output is an escaped slash.
local function jstr(s)
  local e = encode(s)
  if find(e, "\\/", 1, true) then e = gsub(e, "\\/", "/") end
  return e
end

-- Marks a value as already-encoded JSON (numbers, booleans, arrays).
local function raw(s) return { raw = s } end

-- Ordered JSON object from a flat {key1, value1, key2, value2, ...} list,
-- as one string. Used for small documents (JWT claims, client_info, tenant
-- profiles); cache entries go through the streaming writer below.
local function jobj(kv)
  local parts = {}
  for i = 1, #kv, 2 do
    local v = kv[i + 1]
    parts[#parts + 1] = jstr(kv[i]) .. ":" .. (type(v) == "table" and v.raw or jstr(v))
  end
  return "{" .. concat(parts, ",") .. "}"
end

---------------------------------------------------------------------------
-- base64url and opaque secrets
---------------------------------------------------------------------------

-- base64url without padding. Works 3 bytes -> 4 chars at a time through a
-- 4096-entry table of 2-char strings (12 bits each); plain arithmetic keeps it
-- valid for both Lua 5.4 and LuaJIT (no bit operators).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local PAIR = {}
for i = 0, 4095 do
  local hi, lo = floor(i / 64), i % 64
  PAIR[i] = sub(B64, hi + 1, hi + 1) .. sub(B64, lo + 1, lo + 1)
end

local function b64url(s)
  local out, n, len = {}, 0, #s
  for i = 1, len - 2, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a * 65536 + b * 256 + c
    n = n + 1
    out[n] = PAIR[floor(v / 4096)] .. PAIR[v % 4096]
  end
  local rest = len % 3
  if rest > 0 then
    local a, b = byte(s, len - rest + 1, len)
    local v = a * 65536 + (b or 0) * 256
    local four = PAIR[floor(v / 4096)] .. PAIR[v % 4096]
    n = n + 1
    out[n] = sub(four, 1, rest + 1)
  end
  return concat(out)
end

-- Pool of pseudo-random base64url characters; secrets are unique prefixes
-- plus slices of it. MINSTD LCG: products stay below 2^53, so Lua 5.4
-- integers and LuaJIT doubles produce the same sequence.
local POOL_LEN = 65536
local POOL
do
  local chars, x = {}, 20260101
  for i = 1, POOL_LEN do
    x = (x * 48271) % 2147483647
    local k = x % 64 + 1
    chars[i] = sub(B64, k, k)
  end
  POOL = concat(chars)
end

local function secret(prefix, len, seed)
  local need = len - #prefix
  local off = seed % (POOL_LEN - need) + 1
  return prefix .. sub(POOL, off, off + need - 1)
end

---------------------------------------------------------------------------
-- Per-account data
---------------------------------------------------------------------------

local JWT_HEADER = b64url('{"typ":"JWT","alg":"none"}')

local function account_ids(i)
  local uid = format("aaaaaaaa-0000-4000-8000-%012d", i)
  local hid = uid .. "." .. TENANT_ID
  return uid, hid, hid .. "-" .. ENV, format("user%d@example.com", i), format("User %d", i)
end

-- Entra's v2 id tokens carry opaque per-token values (aio, rh, sub, uti)
-- besides the ids: tokens that differed only in a few digits would be
-- unlike real ones, and LuaJIT, which hashes long strings by sampling them,
-- would spend its first hits walking string-table chains of look-alikes.
local function id_token(i, uid, username, name)
  local seed = i * 65537
  local claims = jobj({
    "aud", CLIENT_ID,
    "iss", ISSUER,
    "iat", raw(CACHED_AT),
    "exp", raw(EXPIRES_ON),
    "aio", secret("", 160, seed),
    "name", name,
    "oid", uid,
    "preferred_username", username,
    "rh", secret("0.", 60, seed + 11),
    "sub", secret("", 43, seed + 23),
    "tid", TENANT_ID,
    "uti", secret("", 22, seed + 37),
    "ver", "2.0",
  })
  return JWT_HEADER .. "." .. b64url(claims) .. ".c2ln" -- "sig": unsigned dummy
end

local TARGETS = {}
for j = 1, N_RESOURCES do
  TARGETS[j] = format("api://res%d/Data.Read api://res%d/Data.Write", j, j)
end

---------------------------------------------------------------------------
-- Streaming writer
---------------------------------------------------------------------------

local function writer(f)
  local buf, n = {}, 0
  local w = {}

  function w.put(s)
    n = n + 1
    buf[n] = s
    if n >= 8192 then
      f:write(concat(buf, "", 1, n))
      n = 0
    end
  end

  -- Plain ASCII without quote, backslash or controls needs no escaping (the
  -- common case: ids, secrets); anything else goes through cjson.
  function w.str(s)
    if find(s, '[%c"\\\128-\255]') then
      w.put(jstr(s))
    else
      w.put('"'); w.put(s); w.put('"')
    end
  end

  -- One '"key":{...}' cache entry; kv as for jobj. `first` skips the comma.
  function w.entry(first, key, kv)
    if not first then w.put(",") end
    w.str(key)
    w.put(":{")
    for k = 1, #kv, 2 do
      if k > 1 then w.put(",") end
      w.str(kv[k])
      w.put(":")
      local v = kv[k + 1]
      if type(v) == "table" then w.put(v.raw) else w.str(v) end
    end
    w.put("}")
  end

  function w.flush()
    f:write(concat(buf, "", 1, n))
    n = 0
  end

  return w
end

---------------------------------------------------------------------------
-- Sections, in the order msal-node's serialize() writes them
---------------------------------------------------------------------------

local SECTIONS = {
  { "Account", function(w, i)
    local uid, hid, base, username, name = account_ids(i)
    local profile = jobj({
      "tenantId", TENANT_ID,
      "localAccountId", uid,
      "name", name,
      "username", username,
      "isHomeTenant", raw("true"),
    })
    w.entry(i == 1, lower(base .. "-" .. TENANT_ID), {
      "home_account_id", hid,
      "environment", ENV,
      "realm", TENANT_ID,
      "local_account_id", uid,
      "username", username,
      "authority_type", "MSSTS",
      "name", name,
      "client_info", b64url(jobj({ "uid", uid, "utid", TENANT_ID })),
      "tenantProfiles", raw("[" .. jstr(profile) .. "]"),
    })
  end },

  { "IdToken", function(w, i)
    local uid, hid, base, username, name = account_ids(i)
    w.entry(i == 1, lower(base .. "-idtoken-" .. CLIENT_ID .. "-" .. TENANT_ID .. "--"), {
      "home_account_id", hid,
      "environment", ENV,
      "credential_type", "IdToken",
      "client_id", CLIENT_ID,
      "secret", id_token(i, uid, username, name),
      "realm", TENANT_ID,
    })
  end },

  { "AccessToken", function(w, i)
    local _, hid, base = account_ids(i)
    for j = 1, N_RESOURCES do
      local target = TARGETS[j]
      w.entry(i == 1 and j == 1,
        lower(base .. "-accesstoken-" .. CLIENT_ID .. "-" .. TENANT_ID .. "-" .. target .. "-"), {
          "home_account_id", hid,
          "environment", ENV,
          "credential_type", "AccessToken",
          "client_id", CLIENT_ID,
          "secret", secret(format("at.%d.%d.", i, j), AT_SECRET_LEN, i * 7919 + j * 104729),
          "realm", TENANT_ID,
          "target", target,
          "cached_at", CACHED_AT,
          "expires_on", EXPIRES_ON,
          "extended_expires_on", EXPIRES_ON,
          "token_type", "Bearer",
        })
    end
  end },

  { "RefreshToken", function(w, i)
    local _, hid, base = account_ids(i)
    w.entry(i == 1, lower(base .. "-refreshtoken-" .. CLIENT_ID .. "---"), {
      "home_account_id", hid,
      "environment", ENV,
      "credential_type", "RefreshToken",
      "client_id", CLIENT_ID,
      "secret", secret(format("rt.%d.", i), RT_SECRET_LEN, i * 31337),
    })
  end },
}

local function main(n_arg, out_path)
  local n = tonumber(n_arg)
  if not n or n < 0 or n ~= floor(n) or not out_path then
    io.stderr:write("usage: gen_cache.lua N out.json\n")
    os.exit(2)
  end

  local f = assert(io.open(out_path, "wb"))
  local w = writer(f)
  for s, section in ipairs(SECTIONS) do
    w.put(s == 1 and "{" or ",")
    w.str(section[1])
    w.put(":{")
    for i = 1, n do section[2](w, i) end
    w.put("}")
  end
  -- A single client, so a single AppMetadata entry.
  w.put(",")
  w.str("AppMetadata")
  w.put(":{")
  w.entry(true, lower("appmetadata-" .. ENV .. "-" .. CLIENT_ID), {
    "client_id", CLIENT_ID,
    "environment", ENV,
  })
  w.put("}}")
  w.flush()
  assert(f:close())
  print(out_path)
end

main(...)
