-- File-cache benchmark: lua-msal's file cache (lua/msal/cache/file.lua)
-- beside msal-node 7 with msal-node-extensions' PersistenceCachePlugin over
-- FilePersistence, each on its own copy of the same generated cache file.
--
--   lua5.4 bench/file_cache_bench.lua [silent sizes] [write accounts] [writes]
--     defaults: 1,100,1000  10000  9      (luajit works too)
--   (from the repository root after `make` and scripts/setup)
--
-- silent hit, file unchanged: acquire_token_silent(req):await() through the
--   public API on an app with cache = {location = "file"}, accounts
--   round-robin, after a first access loaded the file. Every access stats
--   the file and finds it unchanged: the figure asserts that the file was
--   not read during the timed calls. The same app on the in-memory cache is
--   shown for the plugin's own cost; msal-node's figure is the same loop over
--   acquireTokenSilent (its plugin stats the file per access too).
-- one write at N accounts: one token response (a token endpoint answering
--   at once, new resource each time) stored through the plugin: lock,
--   stat, serialize, atomic write with fsync, unlock. Measured with the file
--   unchanged since our last write, and with the file changed by someone
--   else before each write (so it is re-read and merged). msal-node's figure
--   is acquireTokenByRefreshToken through the extensions' plugin (lock,
--   reload when the file is newer than its last load — after its own
--   write it always is — serialize, writeFile in place without fsync).
--
-- Each measurement runs in a fresh process. Prints one table with the
-- ratio msal-node / lua-msal ("x" = times faster).
local mode = arg[1]

local CLIENT_ID = "11111111-2222-3333-4444-555555555555"
local TENANT_ID = "00000000-0000-0000-bbbb-000000000002"
local AUTHORITY = "https://login.microsoftonline.com/" .. TENANT_ID
local SCOPES = { "api://res1/Data.Read" }

local median = dofile("bench/stats.lua").median

local function hid(i)
  return ("aaaaaaaa-0000-4000-8000-%012d.%s"):format(i, TENANT_ID)
end

-- A transport whose token endpoint answers at once with a fresh token for
-- the requested scope, for account number `t.account`.
local function instant_transport(core, cjson)
  local loop = require("msal.loop")
  local b64url = core.crypto.b64url_encode
  return {
    account = 1,
    request = function(self, req, done)
      local form = require("msal.network").form_decode(req.body or "")
      local i = self.account
      local uid = hid(i):match("^([^.]+)")
      local now = os.time()
      local body = cjson.encode({
        token_type = "Bearer", scope = form.scope,
        expires_in = 3600, ext_expires_in = 3600, access_token = "bench-write-" .. string.rep("x", 1200),
        refresh_token = form.refresh_token,
        id_token = b64url('{"typ":"JWT","alg":"none"}') .. "." .. b64url(cjson.encode({ aud = CLIENT_ID,
          iss = AUTHORITY .. "/v2.0", tid = TENANT_ID, oid = uid, sub = "sub-" .. i,
          preferred_username = "user" .. i .. "@example.com", name = "User " .. i, exp = now + 3600, iat = now })) .. ".c2ln",
        client_info = b64url(cjson.encode({ uid = uid, utid = TENANT_ID })),
      })
      local closed = false
      loop.defer(function()
        if not closed then done(nil, { status = 200, headers = { ["content-type"] = "application/json" }, body = body }) end
      end)
      return { close = function() closed = true end }
    end,
  }
end

local function new_app(file, transport)
  local msal, cjson = require("msal"), require("cjson")
  return msal.PublicClientApplication.new({
    auth = { client_id = CLIENT_ID, authority = AUTHORITY,
      authority_metadata = cjson.encode({ issuer = "https://login.microsoftonline.com/{tenantid}/v2.0",
        token_endpoint = AUTHORITY .. "/oauth2/v2.0/token", authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize" }) },
    cache = file and { location = "file", path = file } or nil,
    system = { transport = transport },
  })
end

-- Counts reads of path (the plugin looks fileio.read up at each call).
local function read_counter(core, path)
  local real, c = core.fileio.read, { n = 0 }
  core.fileio.read = function(p, ...)
    if p == path then c.n = c.n + 1 end
    return real(p, ...)
  end
  return c
end

local function silent_loop(app, accounts, total)
  local now_ms = require("msal.core").now_ms
  local batch, batches, i = 200, {}, 0
  for _ = 1, math.max(1, math.floor(total / batch)) do
    local t = now_ms()
    for _ = 1, batch do
      i = i % #accounts + 1
      local r = app:acquire_token_silent({ scopes = SCOPES, account = accounts[i] }):await()
      if not (r and r.from_cache) then error("not a cache hit") end
    end
    batches[#batches + 1] = (now_ms() - t) * 1000 / batch
  end
  return median(batches)
end

local function measure_silent(file, n)
  local core = require("msal.core")
  local t0 = core.now_ms()
  local app = new_app(file)
  local accounts = app:get_all_accounts()
  local first = core.now_ms() - t0
  assert(#accounts == n, "expected " .. n .. " accounts, got " .. #accounts)
  local total = math.max(20000, n)
  local reads = read_counter(core, file)
  local hit = silent_loop(app, accounts, total)
  assert(reads.n == 0, "the unchanged file was read " .. reads.n .. " times")
  -- the same on the in-memory cache
  local f = assert(io.open(file, "rb"))
  local mem = new_app(nil)
  mem:get_token_cache():deserialize(f:read("*a"))
  f:close()
  local mem_hit = silent_loop(mem, mem:get_all_accounts(), total)
  print(string.format('{"silent_hit_us":%.3f,"memory_hit_us":%.3f,"first_access_ms":%.2f,"reads":%d}',
    hit, mem_hit, first, reads.n))
end

local function measure_write(file, n, writes)
  local core, cjson = require("msal.core"), require("cjson")
  local transport = instant_transport(core, cjson)
  local app = new_app(file, transport)
  local t0 = core.now_ms()
  local accounts = {}
  for i = 1, math.min(n, 100) do accounts[i] = assert(app:get_account({ home_account_id = hid(i) })) end
  local first = core.now_ms() - t0
  local seq = 0
  local function one()
    seq = seq + 1
    transport.account = (seq - 1) % #accounts + 1
    local t = core.now_ms()
    local r, err = app:acquire_token_silent({ scopes = { ("api://bench-w%d/Data.Write"):format(seq) },
      account = accounts[transport.account] }):await()
    local ms = core.now_ms() - t
    if not r then error(tostring(err)) end
    assert(r.from_cache == false)
    return ms
  end
  local reads = read_counter(core, file)
  -- where the time of the writes with the file unchanged goes: the store
  -- serializes and writes from C in one call (no Lua string)
  local parts, tc = { write_file = 0 }, app:get_token_cache()
  local real_write = tc.write_file
  tc.write_file = function(...)
    local t = core.now_ms()
    local a, b, c = real_write(...)
    parts.write_file = parts.write_file + core.now_ms() - t
    return a, b, c
  end
  local unchanged = {}
  for w = 1, writes do unchanged[w] = one() end
  tc.write_file = nil
  local unchanged_reads = reads.n
  -- another process changed the file before each write: re-read and merge
  local changed = {}
  for w = 1, writes do
    assert(os.execute("touch -d '+" .. w .. " seconds' '" .. file .. "'"))
    changed[w] = one()
  end
  print(string.format('{"write_ms":%.2f,"write_changed_ms":%.2f,"first_load_ms":%.2f,"reads":%d,"reads_changed":%d,'
    .. '"write_file_ms":%.2f}', median(unchanged), median(changed), first, unchanged_reads,
    reads.n - unchanged_reads, parts.write_file / writes))
end

if mode == "--silent" then
  measure_silent(arg[2], tonumber(arg[3]))
  os.exit(0)
elseif mode == "--write" then
  measure_write(arg[2], tonumber(arg[3]), tonumber(arg[4]))
  os.exit(0)
end

local cjson = require("cjson")
local interp = arg[-1] or "lua5.4"
local sizes = {}
for s in (arg[1] or "1,100,1000"):gmatch("%d+") do sizes[#sizes + 1] = tonumber(s) end
local write_n = tonumber(arg[2] or "10000")
local writes = tonumber(arg[3] or "9")
local dir = assert(io.popen("mktemp -d")):read("*l")

local function run(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  local ok = p:close()
  local line = out:match("({.-})%s*$")
  if not ok or not line then error("failed: " .. cmd .. "\n" .. out) end
  return cjson.decode(line)
end

-- a fresh 0600 copy of the generated cache for each side
local function fresh(src, name)
  local dst = dir .. "/" .. name
  assert(os.execute(("cp %s %s && chmod 600 %s && rm -f %s.lockfile"):format(src, dst, dst, dst)))
  return dst
end

local function row(n, what, a, b)
  print(("%-8d %-36s %12.3f %12.3f %7.1fx"):format(n, what, a, b or 0 / 0, (b or 0 / 0) / a))
end

print(("%-8s %-36s %12s %12s %8s"):format("accounts", "measure", "lua-msal", "msal-node", "ratio"))
local ok, err = pcall(function()
  for _, n in ipairs(sizes) do
    local gen = ("%s/gen-%d.json"):format(dir, n)
    assert(os.execute(("%s bench/gen_cache.lua %d %s >/dev/null"):format(interp, n, gen)))
    local lua = run(("%s bench/file_cache_bench.lua --silent %s %d"):format(interp, fresh(gen, "lua.json"), n))
    local node = run(("node --max-old-space-size=8192 bench/peers/msal_node_file_cache_bench.mjs silent %s %d 2>/dev/null")
      :format(fresh(gen, "node.json"), n))
    assert(node.loads == 0, "msal-node re-read the unchanged file")
    row(n, "silent hit, file unchanged (us)", lua.silent_hit_us, node.silent_hit_us)
    print(("%-8d %-36s %12.3f"):format(n, "  same app, in-memory cache (us)", lua.memory_hit_us))
    os.remove(gen)
  end
  local gen = ("%s/gen-%d.json"):format(dir, write_n)
  assert(os.execute(("%s bench/gen_cache.lua %d %s >/dev/null"):format(interp, write_n, gen)))
  local f = assert(io.open(gen, "rb"))
  local bytes = f:seek("end")
  f:close()
  local lua = run(("%s bench/file_cache_bench.lua --write %s %d %d"):format(interp, fresh(gen, "lua.json"), write_n, writes))
  local node = run(("node --max-old-space-size=8192 bench/peers/msal_node_file_cache_bench.mjs write %s %d %d 2>/dev/null")
    :format(fresh(gen, "node.json"), write_n, writes))
  row(write_n, "one write, file unchanged (ms)", lua.write_ms, node.write_ms)
  row(write_n, "one write, file changed by another (ms)", lua.write_changed_ms, node.write_ms)
  print(("%-8d %-36s %12.1f"):format(write_n, "  of which serialize+write+fsync (ms, mean)", lua.write_file_ms))
  print(("%-8d %-36s %12.1f"):format(write_n, "  lua-msal: first access, loads (ms)", lua.first_load_ms))
  print(("%-8d %-36s %12s %12.1f"):format(write_n, "  msal-node: first write, loads (ms)", "", node.first_write_ms))
  print(("(cache file %.1f MB; median of %d writes; msal-node re-read its own file before %d of its %d writes)")
    :format(bytes / 1048576, writes, node.loads, writes))
end)
os.execute("rm -rf " .. dir)
if not ok then error(err, 0) end
