-- The file primitives of the persistent cache (csrc/fileio.c): atomic
-- replacement, reads, permission checks and the msal-node-compatible lock
-- with stale-lock recovery. Other processes are real ones: children run the
-- same interpreter and the same build of msal.core.
local core = require("msal.core")
local cjson = require("cjson")
local fileio = core.fileio

local LUA = jit and "luajit" or "lua5.4"

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The ASan run preloads the sanitizer into every child; only Lua children
-- need it, and a leak report from a shell tool would change its exit code.
local function plain(cmd)
  return "exec env -u LD_PRELOAD " .. cmd
end

local function run_cmd(cmd)
  local fh = assert(io.popen(plain(cmd)))
  local out = fh:read("*a")
  fh:close()
  return (out:gsub("%s+$", ""))
end

-- os.execute returns true on 5.4 and 0 on LuaJIT for success.
local function succeeds(cmd)
  local r = os.execute(plain(cmd) .. " >/dev/null 2>&1")
  return r == true or r == 0
end

local function ls(dir)
  local names = {}
  for name in run_cmd("ls -A " .. sh_quote(dir)):gmatch("[^\n]+") do names[#names + 1] = name end
  table.sort(names)
  return names
end

local function exists(path)
  return fileio.stat(path) ~= nil
end

local function put(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function octal(s) return tonumber(s, 8) end

-- A Lua child script that finds the same msal.core as this process.
local function script(dir, name, body)
  local path = dir .. "/" .. name .. ".lua"
  put(path, ("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath)
    .. "local core = require('msal.core')\nlocal fileio = core.fileio\n" .. body)
  return path
end

-- The PID of a process that has exited and been reaped.
local function dead_pid()
  return run_cmd("sh -c 'echo $$'")
end

describe("msal.core.fileio", function()
  local dir

  before_each(function()
    dir = run_cmd("mktemp -d")
    assert(dir:match("^/"), "mktemp -d failed")
  end)

  after_each(function()
    if dir then os.execute(plain("rm -rf " .. sh_quote(dir))) end
    dir = nil
  end)

  describe("write_atomic and read", function()
    it("write a file and read it back with its metadata", function()
      local p = dir .. "/cache.json"
      local text = "{\"a\":1}\0binary\255"
      assert.is_true(fileio.write_atomic(p, text))
      local got, st = fileio.read(p)
      assert.equal(text, got)
      assert.equal(#text, st.size)
      assert.equal("file", st.type)
      assert.is_number(st.mtime_sec)
      assert.is_number(st.mtime_nsec)
      local st2 = fileio.stat(p)
      for _, k in ipairs({ "mtime_sec", "mtime_nsec", "size", "ino", "dev", "mode", "uid" }) do
        assert.equal(st[k], st2[k], k)
      end
    end)

    it("create the file 0600 by default and with the exact mode asked for", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(p, "x"))
      assert.equal(octal("600"), fileio.stat(p).mode)
      assert(fileio.write_atomic(p, "y", octal("644")))
      assert.equal(octal("644"), fileio.stat(p).mode)
      assert(fileio.write_atomic(p, "z"))
      assert.equal(octal("600"), fileio.stat(p).mode)
    end)

    it("replace the file by a new inode, so stat shows the change", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(p, "one"))
      local before = fileio.stat(p)
      assert(fileio.write_atomic(p, "two"))
      local _, after = fileio.read(p)
      assert.are_not.equal(before.ino, after.ino)
      assert.equal("two", (fileio.read(p)))
    end)

    it("read empty and large files whole", function()
      local p = dir .. "/f"
      assert(fileio.write_atomic(p, ""))
      local got, st = fileio.read(p)
      assert.equal("", got)
      assert.equal(0, st.size)
      local big = string.rep("0123456789abcdef", 200000) -- 3.2 MB
      assert(fileio.write_atomic(p, big))
      assert.equal(big, (fileio.read(p)))
    end)

    it("leave no temporary file behind", function()
      for i = 1, 5 do assert(fileio.write_atomic(dir .. "/cache.json", ("v%d"):format(i))) end
      assert.same({ "cache.json" }, ls(dir))
    end)

    it("fail with the errno name when the directory does not exist", function()
      local ok, msg, code = fileio.write_atomic(dir .. "/missing/cache.json", "x")
      assert.is_nil(ok)
      assert.equal("ENOENT", code)
      assert.matches("missing/cache.json", msg, 1, true)
      assert.same({}, ls(dir))
    end)

    it("remove the temporary file when the rename fails", function()
      local p = dir .. "/cache.json"
      assert(succeeds("mkdir " .. sh_quote(p) .. " " .. sh_quote(p .. "/inside")))
      local ok, msg, code = fileio.write_atomic(p, "x")
      assert.is_nil(ok)
      assert.matches("rename", msg)
      assert.is_string(code)
      assert.same({ "cache.json" }, ls(dir))
    end)

    it("refuse to read through a symbolic link or a missing file", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(dir .. "/real", "secret"))
      assert(succeeds("ln -s real " .. sh_quote(p)))
      local got, msg, code = fileio.read(p)
      assert.is_nil(got)
      assert.equal("ELOOP", code)
      assert.is_string(msg)
      assert.equal("link", fileio.stat(p).type)
      got, msg, code = fileio.read(dir .. "/nothing")
      assert.is_nil(got)
      assert.equal("ENOENT", code)
      assert.matches("nothing", msg)
      assert.equal("ENOENT", select(3, fileio.stat(dir .. "/nothing")))
    end)

    it("refuse to read a directory", function()
      local got, msg = fileio.read(dir)
      assert.is_nil(got)
      assert.is_string(msg)
    end)

    it("write a store's document straight from C, the same bytes as serialize()", function()
      local F = require("fixtures")
      local store = require("msal.core").store.new()
      assert(store:load(cjson.encode(F.signed_in())))
      local p = dir .. "/cache.json"
      assert.is_true(store:write_file(p))
      assert.equal(store:serialize(), (fileio.read(p)))
      assert.equal(octal("600"), fileio.stat(p).mode)
      assert.same({ "cache.json" }, ls(dir))
      local ok, _, code = store:write_file(dir .. "/missing/cache.json")
      assert.is_nil(ok)
      assert.equal("ENOENT", code)
      assert.has_error(function() store:write_file(p, 4096) end)
      assert.has_error(function() store:write_file() end)
      store:close()
    end)

    it("raise on programmer errors only", function()
      assert.has_error(function() fileio.write_atomic(dir .. "/x", "x", 4096) end)
      assert.has_error(function() fileio.write_atomic(dir .. "/x") end)
      assert.has_error(function() fileio.read() end)
      assert.has_error(function() fileio.read(dir .. "/x\0y") end)
      assert.has_error(function() fileio.check_private("") end)
    end)

    it("never show a concurrent reader a partial file", function()
      local p = dir .. "/cache.json"
      local A, B = string.rep("a", 300000), string.rep("b", 200000)
      assert(fileio.write_atomic(p, A))
      local child = script(dir, "writer", [[
        local p, done = arg[1], arg[2]
        local A, B = string.rep("a", 300000), string.rep("b", 200000)
        for i = 1, 200 do assert(fileio.write_atomic(p, i % 2 == 0 and A or B)) end
        io.open(done, "w"):close()
      ]])
      local done = dir .. "/done"
      local fh = assert(io.popen(LUA .. " " .. sh_quote(child) .. " " .. sh_quote(p) .. " " .. sh_quote(done)))
      local reads, bad, seen = 0, 0, {}
      local deadline = core.now_ms() + 5000
      repeat
        local finished = exists(done)
        local got = fileio.read(p)
        reads = reads + 1
        if got == A or got == B then seen[got:sub(1, 1)] = true else bad = bad + 1 end
      until (finished and reads >= 200) or core.now_ms() > deadline
      fh:read("*a")
      fh:close()
      assert.is_true(exists(done), "the writer did not finish in 5 s")
      assert.equal(0, bad)
      assert.is_true(seen.a and seen.b, "the reads did not overlap the writes")
      assert.same({ "cache.json", "done", "writer.lua" }, ls(dir))
    end)

    it("leave the old or the new file, whole, when the writer is killed", function()
      local p = dir .. "/cache.json"
      local A, B = string.rep("{\"a\":1}", 40000), string.rep("{\"b\":2}", 30000)
      assert(fileio.write_atomic(p, A))
      local child = script(dir, "crasher", [[
        local A, B = string.rep("{\"a\":1}", 40000), string.rep("{\"b\":2}", 30000)
        io.write("go\n") io.flush()
        local i = 0
        while true do
          i = i + 1
          assert(fileio.write_atomic(arg[1], i % 2 == 0 and A or B))
        end
      ]])
      math.randomseed(os.time())
      local versions = {}
      for _ = 1, 20 do
        local fh = assert(io.popen(LUA .. " " .. sh_quote(child) .. " " .. sh_quote(p) .. " 2>&1 & echo pid:$!; wait"))
        local pid, go
        for _ = 1, 2 do
          local line = fh:read("*l") or ""
          pid = pid or line:match("^pid:(%d+)$")
          go = go or line == "go"
        end
        if not (pid and go) then error("the writer did not start: " .. (fh:read("*a") or "")) end
        core.sleep_ms(math.random(2, 40))
        local killed = succeeds("kill -9 " .. pid)
        local rest = fh:read("*a")
        fh:close() -- the shell has reaped the child: nothing writes any more
        assert(killed, "the writer died before it was killed: " .. rest)
        local got = fileio.read(p)
        assert(got == A or got == B, "after a kill the cache is neither version (" .. #(got or "") .. " bytes)")
        versions[got] = true
      end
      assert.is_true(versions[B] ~= nil, "no write finished before a kill")
    end)
  end)

  describe("check_private", function()
    it("accepts a 0600 file of ours and a file not yet written", function()
      local p = dir .. "/cache.json"
      assert.is_true(fileio.check_private(p))
      assert(fileio.write_atomic(p, "{}"))
      assert.is_true(fileio.check_private(p))
    end)

    it("refuses a file others can write, saying why", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(p, "{}", octal("666")))
      local ok, msg = fileio.check_private(p)
      assert.is_nil(ok)
      assert.equal("cache file " .. p .. " is writable by others (mode 0666)", msg)
    end)

    it("refuses a file its group can write", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(p, "{}", octal("620")))
      local ok, msg = fileio.check_private(p)
      assert.is_nil(ok)
      assert.equal("cache file " .. p .. " is writable by its group (mode 0620)", msg)
    end)

    it("refuses a file in a world-writable directory that is not sticky", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(p, "{}"))
      assert(succeeds("chmod 0777 " .. sh_quote(dir)))
      local ok, msg = fileio.check_private(p)
      assert.is_nil(ok)
      assert.matches("directory " .. dir .. " of cache file " .. p .. " is writable by others and not sticky (mode 0777)",
        msg, 1, true)
    end)

    it("accepts a file in a sticky world-writable directory like /tmp", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(p, "{}"))
      assert(succeeds("chmod 1777 " .. sh_quote(dir)))
      assert.is_true(fileio.check_private(p))
    end)

    it("refuses a symbolic link and a file owned by someone else", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(dir .. "/real", "{}"))
      assert(succeeds("ln -s real " .. sh_quote(p)))
      local ok, msg = fileio.check_private(p)
      assert.is_nil(ok)
      assert.matches("symbolic link", msg)
      if run_cmd("id -u") == "0" then -- only root can give a file away
        assert(succeeds("chown -h 65534 " .. sh_quote(dir .. "/real")))
        ok, msg = fileio.check_private(dir .. "/real")
        assert.is_nil(ok)
        assert.matches("owned by uid 65534", msg)
      end
    end)
  end)

  describe("lock", function()
    local lp
    before_each(function() lp = dir .. "/cache.json.lockfile" end)

    local function quick(extra)
      local o = { retries = 3, retry_delay_ms = 10 }
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
    end

    -- Starts a child that takes the lock, says "locked" and holds it until
    -- the file `release` appears (or 5 s pass).
    local function holder()
      local child = script(dir, "holder", [[
        local l = assert(fileio.lock(arg[1]))
        io.write("locked\n") io.flush()
        local deadline = core.now_ms() + 5000
        while core.now_ms() < deadline and not fileio.stat(arg[2]) do core.sleep_ms(5) end
        assert(l:unlock())
        io.write("unlocked\n")
      ]])
      local fh = assert(io.popen(LUA .. " " .. sh_quote(child) .. " " .. sh_quote(lp) .. " " .. sh_quote(dir .. "/release")))
      assert.equal("locked", fh:read("*l"))
      return {
        release = function()
          put(dir .. "/release", "")
          local rest = fh:read("*a")
          fh:close()
          return rest
        end,
      }
    end

    it("writes our PID into a 0600 lock file and removes it on unlock, once", function()
      local l = assert(fileio.lock(lp))
      assert.equal(tostring(fileio.pid()), (fileio.read(lp)))
      assert.equal(octal("600"), fileio.stat(lp).mode)
      assert.is_true(l:held())
      assert.matches("held", tostring(l))
      assert.is_true(l:unlock())
      assert.is_false(exists(lp))
      assert.is_false(l:held())
      assert.is_true(l:unlock())
      assert.is_false(exists(lp))
    end)

    it("is exclusive, within one process too", function()
      local l1 = assert(fileio.lock(lp))
      local l2, msg, code = fileio.lock(lp, quick())
      assert.is_nil(l2)
      assert.matches("timed out", msg)
      assert.equal("ETIMEDOUT", code)
      l1:unlock()
      l2 = assert(fileio.lock(lp, { retries = 0 }))
      l2:unlock()
    end)

    it("holds an flock that flock(1) and portalocker users see", function()
      local l = assert(fileio.lock(lp))
      assert.is_false(succeeds("flock -n " .. sh_quote(lp) .. " true"))
      l:unlock()
    end)

    it("waits for another process to unlock", function()
      local child = script(dir, "brief", [[
        local l = assert(fileio.lock(arg[1]))
        io.write("locked\n") io.flush()
        core.sleep_ms(300)
        l:unlock()
      ]])
      local fh = assert(io.popen(LUA .. " " .. sh_quote(child) .. " " .. sh_quote(lp)))
      assert.equal("locked", fh:read("*l"))
      local t0 = core.now_ms()
      local l = assert(fileio.lock(lp, { retries = 200, retry_delay_ms = 10 }))
      local waited = core.now_ms() - t0
      fh:read("*a")
      fh:close()
      assert.is_true(waited > 150, "did not wait for the holder (" .. waited .. " ms)")
      assert.equal(tostring(fileio.pid()), (fileio.read(lp)))
      l:unlock()
    end)

    it("does not steal the lock of a live process", function()
      local h = holder()
      local holder_pid = fileio.read(lp)
      local l, msg, code = fileio.lock(lp, quick({ stale_after_ms = 0 }))
      assert.is_nil(l)
      assert.equal("ETIMEDOUT", code)
      assert.matches("timed out", msg)
      assert.matches("held by process " .. holder_pid, msg, 1, true)
      assert.equal(holder_pid, (fileio.read(lp)))
      assert.equal("unlocked", (h.release():gsub("%s+$", "")))
      assert.is_false(exists(lp))
    end)

    it("does not steal an msal-node or msal-python lock of a live process", function()
      for _, content in ipairs({ "1", "1 /usr/bin/az" }) do -- init never exits
        put(lp, content)
        local l, _, code = fileio.lock(lp, quick({ stale_after_ms = 0 }))
        assert.is_nil(l)
        assert.equal("ETIMEDOUT", code)
        assert.equal(content, (fileio.read(lp)))
      end
    end)

    it("recovers at once a lock left by a dead process", function()
      for _, fmt in ipairs({ "%s", "%s /usr/bin/python3 -m azure.cli" }) do
        put(lp, fmt:format(dead_pid()))
        local t0 = core.now_ms()
        local l = assert(fileio.lock(lp, { retries = 0 }))
        assert.is_true(core.now_ms() - t0 < 100)
        assert.equal(tostring(fileio.pid()), (fileio.read(lp)))
        l:unlock()
      end
    end)

    it("recovers a lock file with our own PID that nobody holds (PIDs repeat across container restarts)", function()
      put(lp, tostring(fileio.pid()))
      local l = assert(fileio.lock(lp, { retries = 0 }))
      l:unlock()
    end)

    it("recovers a lock without a PID only once it is older than stale_after_ms", function()
      put(lp, "")
      local l, _, code = fileio.lock(lp, quick())
      assert.is_nil(l)
      assert.equal("ETIMEDOUT", code)
      assert.is_true(exists(lp))
      assert(succeeds("touch -d '2 minutes ago' " .. sh_quote(lp)))
      l = assert(fileio.lock(lp, { retries = 0 }))
      l:unlock()
      put(lp, "garbage")
      core.sleep_ms(60)
      l = assert(fileio.lock(lp, { retries = 0, stale_after_ms = 50 }))
      l:unlock()
    end)

    it("does not remove a dead process's lock file while someone holds its flock", function()
      put(lp, dead_pid())
      local fh = assert(io.popen(plain("flock -x " .. sh_quote(lp) .. " sh -c 'echo locked; sleep 0.4'")))
      assert.equal("locked", fh:read("*l"))
      local l, _, code = fileio.lock(lp, quick())
      fh:read("*a")
      fh:close()
      assert.is_nil(l)
      assert.equal("ETIMEDOUT", code)
      l = assert(fileio.lock(lp, { retries = 0 }))
      l:unlock()
    end)

    it("keeps processes exclusive while they recover locks of crashed ones", function()
      -- Workers take the lock 15 times each and check that nobody else is in
      -- the critical section; crashers take it and exit without unlocking,
      -- leaving dead-PID lock files for the workers to recover concurrently.
      local worker = script(dir, "worker", [[
        local lp, cs, me = arg[1], arg[2], tostring(fileio.pid())
        local n = 0
        for _ = 1, 15 do
          local l = assert(fileio.lock(lp, { retries = 5000, retry_delay_ms = 1 }))
          local f = assert(io.open(cs, "w")) f:write(me) f:close()
          core.sleep_ms(2)
          f = assert(io.open(cs)) local who = f:read("*a") f:close()
          if who ~= me then io.write("VIOLATION ", me, " saw ", who, "\n") end
          assert(l:unlock())
          n = n + 1
        end
        io.write("ok ", n, "\n")
      ]])
      local crasher = script(dir, "crasher", [[
        core.sleep_ms(math.random(0, 60))
        assert(fileio.lock(arg[1], { retries = 5000, retry_delay_ms = 1 }))
        io.write("crashed\n") io.flush()
        os.exit(0) -- no unlock, no __gc: a stale lock file
      ]])
      local cs = dir .. "/cs"
      local cmd = {}
      for _ = 1, 4 do cmd[#cmd + 1] = LUA .. " " .. sh_quote(worker) .. " " .. sh_quote(lp) .. " " .. sh_quote(cs) .. " &" end
      for _ = 1, 4 do cmd[#cmd + 1] = LUA .. " " .. sh_quote(crasher) .. " " .. sh_quote(lp) .. " &" end
      cmd[#cmd + 1] = "wait"
      local fh = assert(io.popen(table.concat(cmd, " ")))
      local out = fh:read("*a")
      fh:close()
      assert.is_nil(out:find("VIOLATION"), out)
      local oks = 0
      for _ in out:gmatch("ok 15") do oks = oks + 1 end
      assert.equal(4, oks, out)
      local crashes = 0
      for _ in out:gmatch("crashed") do crashes = crashes + 1 end
      assert.equal(4, crashes, out) -- and the workers got past every one of them
    end)

    it("unlocks when collected", function()
      (function() assert(fileio.lock(lp)) end)()
      collectgarbage()
      collectgarbage()
      assert.is_false(exists(lp))
      local l = assert(fileio.lock(lp, { retries = 0 }))
      l:unlock()
    end)

    if _VERSION == "Lua 5.4" then
      it("unlocks when a to-be-closed variable goes out of scope", function()
        local chunk = assert(load([[
          local fileio, lp = ...
          do
            local l <close> = assert(fileio.lock(lp))
            assert(fileio.stat(lp))
          end
          return fileio.stat(lp)
        ]]))
        assert.is_nil(chunk(fileio, lp))
      end)
    end

    it("does not remove a lock file that is no longer its own", function()
      local l = assert(fileio.lock(lp))
      os.remove(lp)
      put(lp, "someone else")
      assert.is_true(l:unlock())
      assert.equal("someone else", (fileio.read(lp)))
    end)

    it("fails at once when the lock file cannot be created", function()
      local t0 = core.now_ms()
      local l, msg, code = fileio.lock(dir .. "/missing/x.lockfile")
      assert.is_nil(l)
      assert.equal("ENOENT", code)
      assert.matches("missing/x.lockfile", msg, 1, true)
      assert.is_true(core.now_ms() - t0 < 100)
    end)

    it("raises on bad options", function()
      assert.has_error(function() fileio.lock(lp, { retries = "x" }) end)
      assert.has_error(function() fileio.lock(lp, { retries = -1 }) end)
      assert.has_error(function() fileio.lock(lp, 5) end)
      assert.is_false(exists(lp))
    end)
  end)
end)
