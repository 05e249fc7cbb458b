-- The file token cache (lua/msal/cache/file.lua) with real processes: apps
-- and child processes sharing one file, msal-node with msal-node-extensions'
-- file persistence on the same file (spec/support/node/ext_peer.mjs), locks
-- left by dead processes, writers killed with SIGKILL, and the encrypted
-- envelope. Tokens come from the local Entra-like authority (MSAL_TEST_ENTRA,
-- started by `make test`), from the fake transport, or are put into the store
-- inside `tc:access(true, fn)`, the way the library's own flows write.
--
-- Child processes run the same interpreter and build of msal.core as this
-- spec (package.path/cpath are written into each child script; the ASan run's
-- LD_PRELOAD is inherited by Lua children and removed for shell tools and
-- node).
local msal = require("msal")
local core = require("msal.core")
local cjson = require("cjson")
local F = require("fixtures")
local entra = require("entra")
local fake_transport = require("fake_transport")
local proc = require("proc")
local put = require("files").write
local dead_pid = proc.dead_pid

local fileio = core.fileio
local LUA, q = proc.LUA, proc.quote
local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local EXT_PEER = ROOT .. "/spec/support/node/ext_peer.mjs"
local MAGIC = "LUAMSAL-AES256GCM-1\n"
local KEY = string.rep("0123456789abcdef", 4) -- 64 hex digits
local OTHER_KEY = string.rep("fedcba9876543210", 4)

local function exists(path) return fileio.stat(path) ~= nil end

local function octal(s) return tonumber(s, 8) end

local function count(t)
  local n = 0
  for _ in pairs(t or {}) do n = n + 1 end
  return n
end

-- Code shared by this spec and its children: the entries a test writes.
local SHARED = [[
local F = require("fixtures")
local cjson = require("cjson")
local S = {}
-- one user: account, id token, access token (User.Read) and refresh token
function S.user(store, uid, secret, now)
  local hid = uid .. "." .. F.TENANT
  assert(store:put("Account", F.account({ home_account_id = hid, local_account_id = uid,
    username = uid .. "@example.com", name = "User " .. uid:sub(-4),
    client_info = F.b64url(cjson.encode({ uid = uid, utid = F.TENANT })) })))
  assert(store:put("IdToken", F.id_token({ home_account_id = hid, secret = F.jwt({ aud = F.CLIENT,
    iss = "https://login.microsoftonline.com/" .. F.TENANT .. "/v2.0", tid = F.TENANT, oid = uid, sub = "sub-" .. uid,
    name = "User " .. uid:sub(-4), preferred_username = uid .. "@example.com", exp = now + 3600, iat = now }) })))
  assert(store:put("AccessToken", F.access_token({ home_account_id = hid, secret = secret, target = "User.Read openid profile",
    cached_at = tostring(now - 10), expires_on = tostring(now + 3600), extended_expires_on = tostring(now + 3600) })))
  assert(store:put("RefreshToken", F.refresh_token({ home_account_id = hid, secret = "rt-" .. uid })))
  return hid
end
-- the access token number i of writer w (stress and kill tests)
function S.token(w, i)
  return F.access_token({ target = ("api://w%s/r%d"):format(w, i), secret = ("s-%s-%d"):format(w, i) })
end
function S.uid(n) return ("00000000-0000-0000-aaaa-%012d"):format(n) end
return S
]]
local S = assert(load(SHARED, "=shared"))()

-- A Lua child script: same package paths, msal.core, and the shared code.
local function script(dir, name, body)
  return proc.lua_script(dir .. "/" .. name .. ".lua",
    "local core = require('msal.core')\nlocal fileio = core.fileio\nlocal cjson = require('cjson')\n"
    .. "local S = (function() " .. SHARED .. " end)()\n" .. body)
end

-- Runs a child to the end; returns its output, or fails with it.
local function run_child(path, ...)
  local args = { LUA, q(path) }
  for _, a in ipairs({ ... }) do args[#args + 1] = q(a) end
  local out, code = proc.sh(table.concat(args, " "))
  assert(code == 0, "child " .. path .. " failed:\n" .. out)
  return out
end

-- Runs the msal-node peer; returns its decoded JSON or fails with its stderr.
local function ext_peer(...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = q(a) end
  local out, code, err = proc.run("node " .. q(EXT_PEER) .. " " .. table.concat(args, " "), { plain = true })
  assert(code == 0, "msal-node peer failed: " .. err)
  return cjson.decode(out)
end

local function entra_app(path, o)
  o = o or {}
  return msal.PublicClientApplication.new({
    auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT },
    cache = { location = "file", path = path, encrypt = o.encrypt, lock = o.lock },
  })
end

-- An app on the public cloud (offline: metadata given, transport faked).
local PUBLIC = "https://login.microsoftonline.com/" .. F.TENANT
local function public_app(path, o)
  o = o or {}
  return msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = PUBLIC,
      authority_metadata = cjson.encode({ issuer = "https://login.microsoftonline.com/{tenantid}/v2.0",
        token_endpoint = PUBLIC .. "/oauth2/v2.0/token", authorization_endpoint = PUBLIC .. "/oauth2/v2.0/authorize" }) },
    cache = { location = "file", path = path, encrypt = o.encrypt, lock = o.lock },
    system = { transport = o.transport or fake_transport.new({}) },
  })
end

local function silent(app, scopes, account)
  return app:acquire_token_silent({ scopes = scopes or { "User.Read" },
    account = account or app:get_all_accounts()[1] }):await()
end

-- The error a cache access raises (get_all_accounts reads the file).
local function access_error(app)
  local ok, err = pcall(app.get_all_accounts, app)
  assert.is_false(ok, "the cache access did not fail")
  return err
end

-- Counts fileio.read calls on path while fn runs (the plugin looks
-- fileio.read up at each call).
local function count_reads(path, fn)
  local real, n = fileio.read, 0
  fileio.read = function(p, ...)
    if p == path then n = n + 1 end
    return real(p, ...)
  end
  local ok, err = pcall(fn)
  fileio.read = real
  if not ok then error(err, 0) end
  return n
end

local refresh_grants = entra.refresh_requests

describe("file token cache", function()
  local dir, remove_dir, path

  before_each(function()
    dir, remove_dir = proc.tempdir()
    path = dir .. "/msal_cache.json"
  end)

  after_each(function()
    if remove_dir then remove_dir() end
    dir, remove_dir = nil, nil
  end)

  describe("permissions", function()
    it("creates the file 0600 whatever the umask, and leaves no lock or temporary file", function()
      entra.reset()
      local app = entra_app(path)
      entra.sign_in(app)
      local st = assert(fileio.stat(path))
      assert.equal(octal("600"), st.mode)
      local doc = cjson.decode((fileio.read(path)))
      assert.equal(1, count(doc.Account))
      assert.equal(1, count(doc.AccessToken))
      assert.same({ "msal_cache.json" }, proc.ls(dir))
      -- a process with umask 000 still writes 0600
      os.remove(path)
      local child = script(dir, "umask", [[
        local tc = require("msal.cache").new(require("fixtures").CLIENT, require("msal.cache.file").new({ path = arg[1] }))
        tc:access(true, function() S.user(tc.store, S.uid(1), "at-1", os.time()) end)
        io.write("ok\n")
      ]])
      -- (the shell without the ASan run's LD_PRELOAD, the Lua child with it)
      local out = proc.sh("umask 000; LD_PRELOAD=" .. q(os.getenv("LD_PRELOAD") or "") .. " " .. LUA .. " " .. q(child)
        .. " " .. q(path), { plain = true })
      assert.equal("ok", (out:gsub("%s+$", "")))
      assert.equal(octal("600"), fileio.stat(path).mode)
    end)

    it("refuses a cache file others or its group can write, saying so", function()
      local tc = require("msal.cache").new(F.CLIENT)
      S.user(tc.store, S.uid(1), "at-1", os.time())
      for _, m in ipairs({ "666", "620" }) do
        assert(fileio.write_atomic(path, tc:serialize(), octal(m)))
        local app = public_app(path)
        local err = access_error(app)
        assert.equal("ClientAuthError", err.name)
        assert.equal("cache_file_insecure", err.error_code)
        assert.matches("cache file " .. path .. " is writable by " .. (m == "666" and "others" or "its group")
          .. " (mode 0" .. m .. ")", err.error_message, 1, true)
        -- and the silent flow rejects with it rather than miss the cache
        local r, serr = app:acquire_token_silent({ scopes = { "User.Read" },
          account = { home_account_id = S.uid(1) .. "." .. F.TENANT, environment = F.ENV, tenant_id = F.TENANT } }):await()
        assert.is_nil(r)
        assert.equal("cache_file_insecure", serr.error_code)
      end
      -- 0600 is served
      assert(fileio.write_atomic(path, tc:serialize()))
      assert.equal(1, #public_app(path):get_all_accounts())
    end)
  end)

  describe("sharing", function()
    before_each(function() entra.reset() end)

    it("serves one app's tokens to another app on the same file, re-reading it only when it changed", function()
      local a, b = entra_app(path), entra_app(path)
      local signed = entra.sign_in(a)
      local accounts = b:get_all_accounts()
      assert.equal(1, #accounts)
      assert.equal(entra.UID .. "." .. entra.TENANT, accounts[1].home_account_id)
      local r = assert(silent(b))
      assert.is_true(r.from_cache)
      assert.equal(signed.access_token, r.access_token)
      -- the file is unchanged: 100 silent hits read it 0 times
      local reads = count_reads(path, function()
        for _ = 1, 100 do assert.is_true(assert(silent(b)).from_cache) end
      end)
      assert.equal(0, reads)
      -- a writes a token for another scope: b reads the file once, then not again
      local mail = entra.sign_in(a, { "Mail.Read" })
      reads = count_reads(path, function()
        for _ = 1, 100 do
          local m = assert(silent(b, { "Mail.Read" }))
          assert.is_true(m.from_cache)
          assert.equal(mail.access_token, m.access_token)
        end
      end)
      assert.equal(1, reads)
      assert.equal(0, refresh_grants())
    end)

    it("serves tokens across processes, both ways", function()
      local child = script(dir, "app", [[
        local msal, entra = require("msal"), require("entra")
        local app = msal.PublicClientApplication.new({
          auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT },
          cache = { location = "file", path = arg[1] } })
        local r
        if arg[2] == "sign_in" then
          r = entra.sign_in(app, { arg[3] })
        else
          r = assert(app:acquire_token_silent({ scopes = { arg[3] }, account = app:get_all_accounts()[1] }):await())
        end
        io.write(r.access_token, " ", tostring(r.from_cache), "\n")
      ]])
      -- another process signs in; this one serves its token
      local theirs = run_child(child, path, "sign_in", "User.Read"):match("^(%S+) false")
      assert.is_string(theirs)
      local app = entra_app(path)
      local r = assert(silent(app))
      assert.is_true(r.from_cache)
      assert.equal(theirs, r.access_token)
      -- this process signs in for another resource; another process serves it
      local mine = entra.sign_in(app, { "Mail.Read" })
      local served = run_child(child, path, "silent", "Mail.Read")
      assert.equal(mine.access_token .. " true", (served:gsub("%s+$", "")))
      assert.equal(0, refresh_grants())
    end)

    it("merges a write with what another process wrote since the last read", function()
      local now = os.time()
      local app = public_app(path)
      local tc = app:get_token_cache()
      tc:access(true, function() S.user(tc.store, S.uid(1), "at-1", now) end)
      local child = script(dir, "adder", [[
        local tc = require("msal.cache").new(require("fixtures").CLIENT,
          require("msal.cache.file").new({ path = arg[1], lock = { retries = 5000, retry_delay_ms = 2 } }))
        local from, to = tonumber(arg[2]), tonumber(arg[3])
        for n = from, to do
          tc:access(true, function() S.user(tc.store, S.uid(n), "at-" .. n, os.time()) end)
        end
        io.write("ok\n")
      ]])
      run_child(child, path, 2, 2)
      -- this app read the file before the child wrote; its write keeps the child's account
      tc:access(true, function() S.user(tc.store, S.uid(3), "at-3", now) end)
      local doc = cjson.decode((fileio.read(path)))
      assert.equal(3, count(doc.Account))
      assert.equal(3, #app:get_all_accounts())
      -- two processes adding 25 accounts each at the same time, and this one
      local adders = proc.start(table.concat({ LUA, q(child), q(path), "100 124 & ",
        LUA, q(child), q(path), "200 224 & wait" }, " "))
      for n = 4, 10 do tc:access(true, function() S.user(tc.store, S.uid(n), "at-" .. n, now) end) end
      local out = adders:wait()
      assert.equal("ok\nok\n", out)
      doc = cjson.decode((fileio.read(path)))
      assert.equal(10 + 25 + 25, count(doc.Account))
      assert.equal(10 + 25 + 25, count(doc.AccessToken))
      assert.equal(60, #app:get_all_accounts())
      for _, n in ipairs({ 1, 2, 3, 10, 100, 124, 200, 224 }) do
        local r = assert(silent(app, { "User.Read" }, app:get_account({ home_account_id = S.uid(n) .. "." .. F.TENANT })))
        assert.equal("at-" .. n, r.access_token)
      end
    end)

    it("reads a file another writer is rewriting in place under the lock only once it is whole", function()
      -- msal-node-extensions and msal-python truncate and rewrite the file
      -- while holding the lock; a lock-free read can catch it empty or half
      -- written. The plugin then reads again under the lock.
      local now = os.time()
      local tc0 = require("msal.cache").new(F.CLIENT)
      S.user(tc0.store, S.uid(7), "at-7", now)
      local full = tc0:serialize()
      local child = script(dir, "inplace", [[
        local l = assert(fileio.lock(arg[1] .. ".lockfile"))
        local src = assert(io.open(arg[3], "rb"))
        local full = src:read("*a")
        src:close()
        local first = arg[2] == "half" and full:sub(1, math.floor(#full / 2)) or ""
        -- like fs.writeFile: truncate the file in place, then write
        local f = assert(io.open(arg[1], "wb"))
        f:write(first)
        f:flush()
        io.write("locked\n") io.flush()
        core.sleep_ms(300)
        f:write(full:sub(#first + 1))
        f:close()
        l:unlock()
      ]])
      put(dir .. "/full.json", full)
      for _, how in ipairs({ "empty", "half" }) do
        assert(fileio.write_atomic(path, "{}"))
        local app = public_app(path)
        assert.equal(0, #app:get_all_accounts())
        local fh = assert(io.popen(LUA .. " " .. q(child) .. " " .. q(path) .. " " .. how .. " "
          .. q(dir .. "/full.json") .. " 2>&1"))
        assert.equal("locked", fh:read("*l"))
        local t0 = core.now_ms()
        local accounts = app:get_all_accounts()
        local waited = core.now_ms() - t0
        fh:read("*a")
        fh:close()
        assert.equal(1, #accounts, how)
        assert.equal("at-7", assert(silent(app)).access_token)
        assert.is_true(waited > 150, how .. ": did not wait for the writer (" .. waited .. " ms)")
      end
    end)
  end)

  describe("with msal-node and msal-node-extensions", function()
    local NOW = os.time()

    local function id_token(uid, name)
      return F.jwt({ aud = F.CLIENT, iss = "https://login.microsoftonline.com/" .. F.TENANT .. "/v2.0", tid = F.TENANT,
        oid = uid, sub = "sub-" .. uid, name = name, preferred_username = uid .. "@example.com",
        exp = NOW + 3600, iat = NOW })
    end

    local function token_response(uid, name, scope, at)
      return { token_type = "Bearer", scope = scope, expires_in = 3600, ext_expires_in = 3600,
        access_token = at, refresh_token = "rt-" .. uid, id_token = id_token(uid, name),
        client_info = F.b64url(cjson.encode({ uid = uid, utid = F.TENANT })) }
    end

    it("share one file both ways: each serves silently what the other wrote", function()
      local u1, u2 = S.uid(1), S.uid(2)
      local hid1, hid2 = u1 .. "." .. F.TENANT, u2 .. "." .. F.TENANT
      -- lua-msal refreshes an expiring token (fake token endpoint) and
      -- stores the answer through the file plugin
      local t = fake_transport.new({ { status = 200, json = token_response(u1, "Lua User", "User.Read openid profile",
        "lua-access-token") } })
      local app = public_app(path, { transport = t })
      local tc = app:get_token_cache()
      tc:access(true, function()
        S.user(tc.store, u1, "expiring-token", NOW)
        assert(tc.store:put("AccessToken", F.access_token({ home_account_id = hid1, secret = "expiring-token",
          target = "User.Read openid profile", cached_at = tostring(NOW - 3000), expires_on = tostring(NOW + 60),
          extended_expires_on = tostring(NOW + 60) })))
      end)
      local r = assert(silent(app))
      assert.is_false(r.from_cache)
      assert.equal("lua-access-token", r.access_token)
      assert.equal(1, #t.requests)

      -- msal-node serves it from the file, through the extensions' plugin
      local node = ext_peer("silent", path, F.CLIENT, PUBLIC, hid1, "User.Read")
      assert.is_true(node.fromCache)
      assert.equal("lua-access-token", node.accessToken)
      assert.is_false(exists(path .. ".lockfile"))

      -- msal-node stores a token set for a second user (its own response
      -- handling and cache write, under the extensions' lock)
      local loaded = ext_peer("load", path, F.CLIENT, PUBLIC,
        cjson.encode(token_response(u2, "Node User", "Mail.Read openid profile offline_access", "node-access-token")))
      assert.equal(hid2, loaded.account.homeAccountId)
      assert.is_false(exists(path .. ".lockfile"))
      assert.equal(octal("600"), fileio.stat(path).mode)
      -- msal-common rounds cached_at to the nearest second (nowSeconds), so
      -- msal-node's token can carry a cached_at up to 0.5 s ahead of the
      -- clock, and lua-msal's "cached in the future: clock turned back" test
      -- (store.c, find_access_token) would take it for stale in that half
      -- second and refresh. Wait it out here; the tolerance is a separate fix.
      for _, e in pairs(cjson.decode((fileio.read(path))).AccessToken) do
        local ahead = tonumber(e.cached_at) - core.time()
        if ahead >= 0 then core.sleep_ms(ahead * 1000 + 20) end
      end

      -- this app sees the changed file, reads it once and serves both users
      local reads = count_reads(path, function()
        local acct = app:get_account({ home_account_id = hid2 })
        assert.is_table(acct, "msal-node's account is not in the cache")
        assert.equal("Node User", acct.name)
        local m = assert(silent(app, { "Mail.Read" }, acct))
        assert.is_true(m.from_cache)
        assert.equal("node-access-token", m.access_token)
        for _ = 1, 10 do
          local again = assert(silent(app, { "User.Read" }, app:get_account({ home_account_id = hid1 })))
          assert.is_true(again.from_cache)
          assert.equal("lua-access-token", again.access_token)
        end
      end)
      assert.equal(1, reads)
      assert.equal(1, #t.requests)

      -- and msal-node, in a new process, serves both from the file too
      assert.equal("node-access-token", ext_peer("silent", path, F.CLIENT, PUBLIC, hid2, "Mail.Read").accessToken)
      assert.equal("lua-access-token", ext_peer("silent", path, F.CLIENT, PUBLIC, hid1, "User.Read").accessToken)
    end)
  end)

  describe("locks", function()
    local function write_one(app, n)
      local tc = app:get_token_cache()
      tc:access(true, function() S.user(tc.store, S.uid(n), "at-" .. n, os.time()) end)
    end

    it("recovers at once a lock file left by a dead process (msal-node's and msal-python's formats)", function()
      -- a retry would sleep 2 s: the write must not take one
      local app = public_app(path, { lock = { retries = 5, retry_delay_ms = 2000 } })
      for i, fmt in ipairs({ "%s", "%s /usr/bin/python3 -m azure.cli" }) do
        put(path .. ".lockfile", fmt:format(dead_pid()))
        local t0 = core.now_ms()
        write_one(app, i)
        local took = core.now_ms() - t0
        assert.is_true(took < 1000, "waited " .. took .. " ms for a dead process's lock")
        assert.is_false(exists(path .. ".lockfile"))
      end
      assert.equal(2, count(cjson.decode((fileio.read(path))).Account))
    end)

    it("recovers a lock file without a PID once it is older than stale_after_ms, within the lock retries", function()
      -- what msal-node or an older lua-msal, killed between creating the
      -- lock file and writing its PID, leaves; the defaults (3 s, < 100
      -- retries x 50 ms) recover it during one wait instead of failing
      -- every write for a minute
      put(path .. ".lockfile", "")
      local impatient = public_app(path, { lock = { retries = 2, retry_delay_ms = 10 } })
      local ok, err = pcall(write_one, impatient, 1)
      assert.is_false(ok)
      assert.equal("cache_lock_timeout", err.error_code)
      local t0 = core.now_ms()
      write_one(public_app(path), 2)
      local waited = core.now_ms() - t0
      assert.is_true(waited > 2500 and waited < 4500, "waited " .. waited .. " ms")
      assert.is_false(exists(path .. ".lockfile"))
      assert.equal(1, count(cjson.decode((fileio.read(path))).Account))
    end)

    it("waits for a lock a live process holds, and times out naming it", function()
      local child = script(dir, "holder", [[
        local l = assert(fileio.lock(arg[1] .. ".lockfile"))
        io.write("locked ", fileio.pid(), "\n") io.flush()
        core.sleep_ms(tonumber(arg[2]))
        l:unlock()
      ]])
      -- held for 300 ms: waited for
      local fh = assert(io.popen(LUA .. " " .. q(child) .. " " .. q(path) .. " 300"))
      assert.matches("^locked %d+$", fh:read("*l"))
      local app = public_app(path)
      local t0 = core.now_ms()
      write_one(app, 1)
      local waited = core.now_ms() - t0
      fh:read("*a")
      fh:close()
      assert.is_true(waited > 150, "did not wait for the holder (" .. waited .. " ms)")
      assert.equal(1, count(cjson.decode((fileio.read(path))).Account))
      -- held longer than the retries last: cache_lock_timeout naming the holder
      fh = assert(io.popen(LUA .. " " .. q(child) .. " " .. q(path) .. " 1000"))
      local pid = fh:read("*l"):match("^locked (%d+)$")
      local impatient = public_app(path, { lock = { retries = 3, retry_delay_ms = 10 } })
      local ok, err = pcall(write_one, impatient, 2)
      fh:read("*a")
      fh:close()
      assert.is_false(ok)
      assert.equal("ClientAuthError", err.name)
      assert.equal("cache_lock_timeout", err.error_code)
      assert.matches("held by process " .. pid, err.error_message, 1, true)
    end)
  end)

  describe("encryption", function()
    local function seeded(o)
      local app = public_app(path, o)
      local tc = app:get_token_cache()
      tc:access(true, function() S.user(tc.store, S.uid(1), "secret-access-token", os.time()) end)
      return app
    end

    it("round-trips through the envelope; the file is not JSON and holds no token in clear", function()
      seeded({ encrypt = { key = KEY } })
      local raw = assert(fileio.read(path))
      assert.equal(MAGIC, raw:sub(1, #MAGIC))
      assert.is_false(pcall(cjson.decode, raw))
      assert.is_nil(raw:find("secret-access-token", 1, true))
      assert.is_nil(raw:find("AccessToken", 1, true))
      assert.equal(octal("600"), fileio.stat(path).mode)
      -- another app with the key, given as a key file
      local key_file = dir .. "/cache.key"
      assert(fileio.write_atomic(key_file, KEY .. "\n"))
      local other = public_app(path, { encrypt = { key_file = key_file } })
      local r = assert(silent(other))
      assert.is_true(r.from_cache)
      assert.equal("secret-access-token", r.access_token)
      -- a raw 32-byte key works too
      local raw_key = KEY:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
      assert.equal("secret-access-token", assert(silent(public_app(path, { encrypt = { key = raw_key } }))).access_token)
    end)

    it("refuses the wrong key, a flipped byte and a plain file", function()
      seeded({ encrypt = { key = KEY } })
      local raw = assert(fileio.read(path))
      local err = access_error(public_app(path, { encrypt = { key = OTHER_KEY } }))
      assert.equal("ClientAuthError", err.name)
      assert.equal("cache_decryption_failed", err.error_code)
      assert.matches("wrong key", err.error_message)
      -- a flipped byte in the IV, the ciphertext and the tag
      for _, at in ipairs({ #MAGIC + 3, #MAGIC + math.floor((#raw - #MAGIC) / 2), #raw }) do
        local b = raw:byte(at)
        assert(fileio.write_atomic(path, raw:sub(1, at - 1) .. string.char((b + 1) % 256) .. raw:sub(at + 1)))
        err = access_error(public_app(path, { encrypt = { key = KEY } }))
        assert.equal("cache_decryption_failed", err.error_code, "byte " .. at)
      end
      -- a damaged envelope header
      assert(fileio.write_atomic(path, "X" .. raw:sub(2)))
      assert.equal("cache_decryption_failed", access_error(public_app(path, { encrypt = { key = KEY } })).error_code)
      -- a plaintext cache where a key is configured
      local tc = require("msal.cache").new(F.CLIENT)
      S.user(tc.store, S.uid(1), "plain-token", os.time())
      assert(fileio.write_atomic(path, tc:serialize()))
      err = access_error(public_app(path, { encrypt = { key = KEY } }))
      assert.equal("cache_decryption_failed", err.error_code)
      assert.matches("not encrypted", err.error_message)
      -- the intact file still opens
      assert(fileio.write_atomic(path, raw))
      assert.equal(1, #public_app(path, { encrypt = { key = KEY } }):get_all_accounts())
    end)

    it("refuses a key file others can read or write, and a key of the wrong size", function()
      local key_file = dir .. "/cache.key"
      for _, m in ipairs({ "644", "640", "666" }) do
        assert(fileio.write_atomic(key_file, KEY, octal(m)))
        local ok, err = pcall(public_app, path, { encrypt = { key_file = key_file } })
        assert.is_false(ok, "mode " .. m .. " accepted")
        assert.equal("ClientAuthError", err.name)
        assert.equal("cache_file_insecure", err.error_code)
        assert.matches(key_file, err.error_message, 1, true)
      end
      assert(fileio.write_atomic(key_file, KEY, octal("400")))
      assert.is_table(public_app(path, { encrypt = { key_file = key_file } }))
      local ok, err = pcall(public_app, path, { encrypt = { key = "short" } })
      assert.is_false(ok)
      assert.equal("invalid_cache_key", err.error_code)
      assert.is_false(exists(path))
    end)
  end)

  -- The heavy tests (thousands of fsynced writes, 100 killed processes) run
  -- in the plain Lua 5.4 run only: under LuaJIT they would test the same C
  -- and Lua paths again, and under ASan they take minutes. They are not
  -- defined elsewhere (never reported as skipped).
  if _VERSION == "Lua 5.4" and not os.getenv("MSAL_TEST_ASAN") then
    it("keeps every token of 8 processes x 500 writes, and the file valid JSON after every write", function()
      local WRITERS, WRITES = 8, 500
      local writer = script(dir, "writer", [[
        local tc = require("msal.cache").new(require("fixtures").CLIENT,
          require("msal.cache.file").new({ path = arg[1], lock = { retries = 60000, retry_delay_ms = 1 } }))
        local w, n = arg[2], tonumber(arg[3])
        local t0 = core.now_ms()
        for i = 1, n do
          tc:access(true, function() assert(tc.store:put("AccessToken", S.token(w, i))) end)
        end
        io.write(("writer %s: %d writes in %.0f ms\n"):format(w, n, core.now_ms() - t0))
      ]])
      local reader = script(dir, "reader", [[
        local reads, bad, last = 0, 0, nil
        while not fileio.stat(arg[2]) do
          local text = fileio.read(arg[1])
          if text then
            reads = reads + 1
            local ok, doc = pcall(cjson.decode, text)
            if not (ok and type(doc) == "table" and doc.AccessToken) then
              bad = bad + 1
              last = text:sub(1, 80)
            end
          end
        end
        io.write(("reader: %d reads, %d failures %s\n"):format(reads, bad, last or ""))
      ]])
      local done = dir .. "/done"
      local cmd = { LUA, q(reader), q(path), q(done), "& pids=;" }
      for w = 1, WRITERS do
        cmd[#cmd + 1] = table.concat({ LUA, q(writer), q(path), w, WRITES, "& pids=\"$pids $!\";" }, " ")
      end
      cmd[#cmd + 1] = "wait $pids; touch " .. q(done) .. "; wait"
      local t0 = core.now_ms()
      local out = proc.sh(table.concat(cmd, " "))
      local took = core.now_ms() - t0
      local reads, bad = out:match("reader: (%d+) reads, (%d+) failures")
      assert.is_string(reads, out)
      assert.equal(0, tonumber(bad), out)
      assert.is_true(tonumber(reads) > 10, out)
      local writers = 0
      for _ in out:gmatch("writer %d+: " .. WRITES .. " writes") do writers = writers + 1 end
      assert.equal(WRITERS, writers, out)
      local doc = cjson.decode((fileio.read(path)))
      assert.equal(WRITERS * WRITES, count(doc.AccessToken))
      local secrets = {}
      for _, e in pairs(doc.AccessToken) do secrets[e.secret] = true end
      for w = 1, WRITERS do
        for i = 1, WRITES do assert(secrets[("s-%d-%d"):format(w, i)], "lost token " .. w .. "/" .. i) end
      end
      assert.is_false(exists(path .. ".lockfile"))
      io.stderr:write(("\n[file_cache_spec] %d x %d writes: %.1f s; %s"):format(WRITERS, WRITES, took / 1000, out))
    end)

    it("leaves the old or the new whole cache when a writer is killed, and recovers its lock", function()
      local RUNS = 100
      -- A kill leaves the lock file behind when it lands while the victim
      -- holds the lock, with its PID, which the next writer must see dead
      -- and recover at once (a retry would sleep 2 s). It is never empty:
      -- the lock file appears with its PID (an empty one could only be told
      -- stale by its age, stale_after_ms, 1.5 s here). A kill during a write
      -- leaves a temporary file, which the next write removes.
      local LOCK = "{ retries = 3, retry_delay_ms = 2000, stale_after_ms = 1500 }"
      local writer = script(dir, "victim", [[
        local tc = require("msal.cache").new(require("fixtures").CLIENT,
          require("msal.cache.file").new({ path = arg[1], lock = ]] .. LOCK .. [[ }))
        local t0 = core.now_ms()
        tc:access(true, function() assert(tc.store:put("AccessToken", S.token(arg[2], 1))) end)
        io.write("go ", core.now_ms() - t0, "\n") io.flush()
        local i = 1
        while true do
          i = i + 1
          tc:access(true, function() assert(tc.store:put("AccessToken", S.token(arg[2], i))) end)
        end
      ]])
      -- what the last kill left: nil, "pid" or "empty"
      local function leftover_lock()
        local text = fileio.read(path .. ".lockfile")
        if not text then return nil end
        return text:match("^%d+$") and "pid" or "empty"
      end
      -- the first write of a writer after a kill: fast when the lock had a PID
      local function check_first_write(kind, ms, what)
        if kind == "pid" then
          assert(ms < 1000, what .. ": " .. ms .. " ms to recover a dead process's lock")
        elseif kind == "empty" then
          assert(ms < 5000, what .. ": " .. ms .. " ms to recover a lock without a PID")
        end
      end
      -- a starting cache with some users
      local tc = require("msal.cache").new(F.CLIENT)
      for n = 1, 20 do S.user(tc.store, S.uid(n), "at-" .. n, 1800000000) end
      assert(fileio.write_atomic(path, tc:serialize()))
      math.randomseed(os.time())
      local stale, written, t0 = { pid = 0, empty = 0 }, 0, core.now_ms()
      for run = 1, RUNS do
        local old = assert(fileio.read(path))
        local kind = leftover_lock()
        local fh, pid, go = proc.start_child(LUA .. " " .. q(writer) .. " " .. q(path) .. " k" .. run .. " 2>&1",
          "^go ([%d.]+)$", "run " .. run .. ": the writer")
        go = tonumber(go)
        check_first_write(kind, go, "run " .. run)
        if kind then stale[kind] = stale[kind] + 1 end
        core.sleep_ms(math.random(0, 30))
        local killed = select(2, proc.sh("kill -9 " .. pid, { plain = true })) == 0
        local rest = fh:read("*a")
        fh:close()
        assert(killed, "run " .. run .. ": the writer died before it was killed: " .. rest)
        -- the file is a whole cache: the old one plus this run's tokens 1..k
        local got = assert(fileio.read(path))
        local ok, doc = pcall(cjson.decode, got)
        assert(ok, "run " .. run .. ": the cache is not JSON after the kill")
        local k = 0
        for _, e in pairs(doc.AccessToken) do
          local r = e.target:match("^api://wk(%d+)/")
          if tonumber(r) == run then k = k + 1 end
        end
        local expect = require("msal.cache").new(F.CLIENT)
        expect:deserialize(old)
        for i = 1, k do assert(expect.store:put("AccessToken", S.token("k" .. run, i))) end
        assert.same(cjson.decode(expect:serialize()), doc, "run " .. run .. ": neither the old nor a new cache")
        written = written + k
      end
      -- the last victim's lock, if any, is recovered as well
      local kind = leftover_lock()
      local out = run_child(script(dir, "last", [[
        local tc = require("msal.cache").new(require("fixtures").CLIENT,
          require("msal.cache.file").new({ path = arg[1], lock = ]] .. LOCK .. [[ }))
        local t0 = core.now_ms()
        tc:access(true, function() assert(tc.store:put("AccessToken", S.token("last", 1))) end)
        io.write(core.now_ms() - t0, "\n")
      ]]), path)
      check_first_write(kind, tonumber(out), "last writer")
      if kind then stale[kind] = stale[kind] + 1 end
      assert.is_false(exists(path .. ".lockfile"))
      assert.is_true(written > RUNS, "no write finished after the first of a run")
      assert.is_true(stale.pid > 0, "no kill left a lock behind")
      assert.equal(0, stale.empty, "a kill left a lock file without a PID")
      local leftovers = {}
      for _, name in ipairs(proc.ls(dir)) do
        if name:find("%.tmp%.") then leftovers[#leftovers + 1] = name end
      end
      io.stderr:write(("\n[file_cache_spec] %d kills in %.1f s: %d writes landed, stale locks recovered: %d with a PID, "
        .. "%d without; %d temporary files left\n")
        :format(RUNS, (core.now_ms() - t0) / 1000, written, stale.pid, stale.empty, #leftovers))
      assert.same({}, leftovers)
    end)
  end
end)

-- #14 item 15: the directory is checked before the file exists, and an
-- encrypted file emptied by someone is an error, not an empty cache.
describe("file token cache safety", function()
  local dir, remove_dir

  before_each(function() dir, remove_dir = proc.tempdir() end)

  after_each(function()
    if remove_dir then remove_dir() end
    dir, remove_dir = nil, nil
  end)

  local function put_user(app)
    local tc = app:get_token_cache()
    tc:access(true, function() S.user(tc.store, S.uid(1), "secret-access-token", os.time()) end)
  end

  -- The error the first write into sub raises; the directory stays empty.
  local function first_write_refused(sub)
    local p = sub .. "/msal_cache.json"
    local ok, err = pcall(put_user, public_app(p))
    assert.is_false(ok, "the first write into " .. sub .. " was accepted")
    assert.equal("ClientAuthError", err.name)
    assert.equal("cache_file_insecure", err.error_code)
    assert.matches("directory " .. sub, err.error_message, 1, true)
    assert.same({}, proc.ls(sub))
    -- a read refuses it as well, as it would an existing file there
    assert.equal("cache_file_insecure", access_error(public_app(p)).error_code)
    return err
  end

  it("checks the directory on the first write, before the file exists", function()
    -- writable by others and not sticky: anyone could swap the file
    local open = dir .. "/open"
    assert(os.execute("mkdir " .. q(open) .. " && chmod 0777 " .. q(open)))
    assert.matches("writable by others and not sticky", first_write_refused(open).error_message, 1, true)
    -- owned by another user (only root can make one)
    if proc.sh("id -u", { plain = true }):match("^0%s") then
      local theirs = dir .. "/theirs"
      assert(os.execute("mkdir " .. q(theirs) .. " && chmod 0755 " .. q(theirs) .. " && chown 65534 " .. q(theirs)))
      assert.matches("owned by uid 65534", first_write_refused(theirs).error_message, 1, true)
    end
    -- sticky like /tmp, and the user's own: the first write goes through
    for _, m in ipairs({ "1777", "0700" }) do
      local sub = dir .. "/ok" .. m
      assert(os.execute("mkdir " .. q(sub) .. " && chmod " .. m .. " " .. q(sub)))
      local p = sub .. "/msal_cache.json"
      put_user(public_app(p))
      assert.equal(1, #public_app(p):get_all_accounts())
      assert.equal(octal("600"), fileio.stat(p).mode)
    end
  end)

  it("refuses an encrypted cache file truncated to 0 bytes, and leaves it as it is", function()
    local path = dir .. "/msal_cache.json"
    put_user(public_app(path, { encrypt = { key = KEY } }))
    assert.equal(1, #public_app(path, { encrypt = { key = KEY } }):get_all_accounts())
    local f = assert(io.open(path, "w")) -- truncated in place
    f:close()
    local before = assert(fileio.stat(path))
    assert.equal(0, before.size)
    local app = public_app(path, { encrypt = { key = KEY } })
    local err = access_error(app)
    assert.equal("ClientAuthError", err.name)
    assert.equal("cache_decryption_failed", err.error_code)
    assert.matches(path, err.error_message, 1, true)
    -- the silent flow rejects with it rather than miss the cache
    local r, serr = app:acquire_token_silent({ scopes = { "User.Read" },
      account = { home_account_id = S.uid(1) .. "." .. F.TENANT, environment = F.ENV, tenant_id = F.TENANT } }):await()
    assert.is_nil(r)
    assert.equal("cache_decryption_failed", serr.error_code)
    -- a write is refused too: the empty file is not replaced by a cache
    local ok, werr = pcall(put_user, app)
    assert.is_false(ok, "a write replaced the truncated file")
    assert.equal("cache_decryption_failed", werr.error_code)
    local after = assert(fileio.stat(path))
    assert.same({ before.ino, before.size, before.mtime_sec, before.mtime_nsec },
      { after.ino, after.size, after.mtime_sec, after.mtime_nsec })
    assert.same({ "msal_cache.json" }, proc.ls(dir))
  end)
end)
