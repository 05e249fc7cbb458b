-- The file primitives of the persistent cache (csrc/fileio.c): atomic
-- replacement, reads, permission checks and the msal-node-compatible lock
-- with stale-lock recovery. Other processes are real ones: children run the
-- same interpreter and the same build of msal.core.
local core = require("msal.core")
local cjson = require("cjson")
local proc = require("proc")
local put = require("files").write
local dead_pid = proc.dead_pid
local fileio = core.fileio

local LUA, q = proc.LUA, proc.quote

-- Whether a shell tool exits 0; it runs without the ASan run's LD_PRELOAD
-- (a leak report from it would change its exit status), its output dropped.
local function succeeds(cmd)
  local _, code = proc.sh(cmd, { plain = true })
  return code == 0
end

-- io.popen of a shell tool that is read line by line while it runs (proc.sh
-- and proc.run return only at its end), without the ASan run's LD_PRELOAD as
-- opts.plain does; `exec` keeps the PID of the process io.popen started.
local function popen_plain(cmd)
  return assert(io.popen("exec env -u LD_PRELOAD " .. cmd))
end

local function exists(path)
  return fileio.stat(path) ~= nil
end

local function octal(s) return tonumber(s, 8) end

-- A Lua child script that finds the same msal.core as this process.
local function script(dir, name, body)
  return proc.lua_script(dir .. "/" .. name .. ".lua",
    "local core = require('msal.core')\nlocal fileio = core.fileio\n" .. body)
end

-- A process that is alive until stop() is called, and ours to reap, so its
-- PID is dead once stop() returns (an orphan might stay a zombie).
local function sleeper()
  local fh = popen_plain("sh -c 'echo $$; exec sleep 30'")
  local pid = assert(fh:read("*l"):match("^%d+$"), "the sleeper did not start")
  local stopped = false
  return pid, function()
    if stopped then return end
    stopped = true
    proc.sh("kill " .. pid, { plain = true })
    fh:close()
  end
end

-- A temporary file's name as write_atomic and lock make them, with a fixed
-- random part.
local HEX = "0123456789abcdef"
local function temp_name(base, pid) return ("%s.tmp.%s.%s"):format(base, pid, HEX) end

describe("msal.core.fileio", function()
  local dir, remove_dir

  before_each(function()
    dir, remove_dir = proc.tempdir()
  end)

  after_each(function()
    if remove_dir then remove_dir() end
    dir, remove_dir = nil, nil
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
      assert.same({ "cache.json" }, proc.ls(dir))
    end)

    it("fail with the errno name when the directory does not exist", function()
      local ok, msg, code = fileio.write_atomic(dir .. "/missing/cache.json", "x")
      assert.is_nil(ok)
      assert.equal("ENOENT", code)
      assert.matches("missing/cache.json", msg, 1, true)
      assert.same({}, proc.ls(dir))
    end)

    it("remove the temporary file when the rename fails", function()
      local p = dir .. "/cache.json"
      assert(succeeds("mkdir " .. q(p) .. " " .. q(p .. "/inside")))
      local ok, msg, code = fileio.write_atomic(p, "x")
      assert.is_nil(ok)
      assert.matches("rename", msg)
      assert.is_string(code)
      assert.same({ "cache.json" }, proc.ls(dir))
    end)

    it("refuse to read through a symbolic link or a missing file", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(dir .. "/real", "secret"))
      assert(succeeds("ln -s real " .. q(p)))
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
      assert.same({ "cache.json" }, proc.ls(dir))
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
      local writer = proc.start(LUA .. " " .. q(child) .. " " .. q(p) .. " " .. q(done))
      local reads, bad, seen = 0, 0, {}
      local deadline = core.now_ms() + 5000
      repeat
        local finished = exists(done)
        local got = fileio.read(p)
        reads = reads + 1
        if got == A or got == B then seen[got:sub(1, 1)] = true else bad = bad + 1 end
      until (finished and reads >= 200) or core.now_ms() > deadline
      writer:wait()
      assert.is_true(exists(done), "the writer did not finish in 5 s")
      assert.equal(0, bad)
      assert.is_true(seen.a and seen.b, "the reads did not overlap the writes")
      assert.same({ "cache.json", "done", "writer.lua" }, proc.ls(dir))
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
        local fh, pid = proc.start_child(LUA .. " " .. q(child) .. " " .. q(p) .. " 2>&1", "^go$", "the writer")
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

  describe("leftover temporary files", function()
    it("are removed by the next write once their writer is gone, from Lua and from the store", function()
      local p = dir .. "/cache.json"
      put(temp_name(p, dead_pid()), "half a cache")
      assert(fileio.write_atomic(p, "one"))
      assert.same({ "cache.json" }, proc.ls(dir))
      put(temp_name(p, dead_pid()), "half a cache")
      local store = core.store.new()
      assert.is_true(store:write_file(p))
      store:close()
      assert.same({ "cache.json" }, proc.ls(dir))
    end)

    it("stay while their writer lives: our own, a child's, and one whose flock is held", function()
      local p = dir .. "/cache.json"
      local pid, stop = sleeper()
      finally(stop)
      local mine, child, flocked = temp_name(p, fileio.pid()), temp_name(p, pid), temp_name(p, dead_pid())
      put(mine, "ours")
      put(child, "a live child's")
      put(flocked, "a dead PID, but flocked: a writer in another PID namespace")
      local fh = popen_plain("flock -x " .. q(flocked) .. " sh -c 'echo locked; sleep 0.5'")
      assert.equal("locked", fh:read("*l"))
      local ok = fileio.write_atomic(p, "one")
      fh:read("*a")
      fh:close()
      assert(ok)
      local want = { "cache.json", mine:match("[^/]+$"), child:match("[^/]+$"), flocked:match("[^/]+$") }
      table.sort(want)
      assert.same(want, proc.ls(dir))
      assert.equal("a live child's", (fileio.read(child)))
      -- the flock is free now, and the child goes: their files are leftovers
      stop()
      assert(fileio.write_atomic(p, "two"))
      assert.same({ "cache.json", mine:match("[^/]+$") }, proc.ls(dir))
    end)

    it("are only the exact names write_atomic makes for this file, regular files of ours", function()
      local p = dir .. "/cache.json"
      local D = dead_pid()
      local keep = {
        "cache.json.tmp.notanumber", "cache.json.tmp." .. D, "cache.json.tmp." .. D .. ".",
        "cache.json.tmp." .. D .. "." .. HEX:sub(2), "cache.json.tmp." .. D .. "." .. HEX .. "0",
        "cache.json.tmp." .. D .. "." .. HEX:upper(), "cache.json.tmp." .. D .. "." .. HEX .. ".bak",
        "cache.json.tmp." .. D .. "." .. HEX:sub(2) .. "g", "cache.json.tmp." .. D .. "x." .. HEX,
        temp_name("cache.json", "-" .. D), temp_name("cache.json", "+" .. D), temp_name("cache.json", "0" .. D),
        temp_name("cache.json", "0"), temp_name("cache.json", " " .. D),
        -- numbers no pid_t holds, some of which wrap to D or below zero
        temp_name("cache.json", "99999999999999999999"), temp_name("cache.json", "2147483648"),
        temp_name("cache.json", tostring(4294967296 + tonumber(D))),
        temp_name("cache.json", tostring(2147483648 + tonumber(D))),
        temp_name("cache.json", "18446744073709551616"),
        -- another cache's, the lock's, and names this one only ends or starts
        temp_name("other.json", D), temp_name("cache.json.lockfile", D), temp_name("xcache.json", D),
        temp_name("cache.jso", D),
      }
      for _, name in ipairs(keep) do put(dir .. "/" .. name, "not a leftover") end
      -- matching names that are no regular file: a symbolic link (its
      -- target must survive too), a directory, a FIFO (opening it would hang)
      put(dir .. "/target", "precious")
      local link, sub, fifo = temp_name("cache.json", dead_pid()), temp_name("cache.json", dead_pid()),
        temp_name("cache.json", dead_pid())
      assert(succeeds("ln -s target " .. q(dir .. "/" .. link)))
      assert(succeeds("mkdir " .. q(dir .. "/" .. sub)))
      assert(succeeds("mkfifo " .. q(dir .. "/" .. fifo)))
      -- the same name in a subdirectory is another directory's
      put(dir .. "/" .. sub .. "/" .. temp_name("cache.json", D), "elsewhere")
      -- and one real leftover, so the sweep is seen to run
      put(temp_name(p, D), "a leftover")
      for _, name in ipairs({ "target", link, sub, fifo }) do keep[#keep + 1] = name end
      keep[#keep + 1] = "cache.json"
      table.sort(keep)
      assert(fileio.write_atomic(p, "{}"))
      assert.same(keep, proc.ls(dir))
      assert.equal("precious", (fileio.read(dir .. "/target")))
      assert.same({ temp_name("cache.json", D) }, proc.ls(dir .. "/" .. sub))
      if proc.run("id -u", { plain = true }) == "0\n" then -- only root can give a file away
        local theirs = temp_name(p, dead_pid())
        put(theirs, "someone else's")
        assert(succeeds("chown 65534 " .. q(theirs)))
        assert(fileio.write_atomic(p, "{}"))
        assert.equal("someone else's", (fileio.read(theirs)))
      end
    end)

    it("of a writer killed mid-write are gone after the next write", function()
      local p = dir .. "/cache.json"
      local child = script(dir, "slow", [[
        local big = string.rep("x", 16 * 1024 * 1024)
        assert(fileio.write_atomic(arg[1], big))
        io.write("go\n") io.flush()
        while true do assert(fileio.write_atomic(arg[1], big)) end
      ]])
      -- a kill lands in the temporary file's lifetime often, not always:
      -- the rename and the directory's fsync come after it
      local left = 0
      for _ = 1, 30 do
        local fh, pid = proc.start_child(LUA .. " " .. q(child) .. " " .. q(p) .. " 2>&1", "^go$", "the writer")
        core.sleep_ms(math.random(5, 60))
        local killed = succeeds("kill -9 " .. pid)
        local rest = fh:read("*a")
        fh:close()
        assert(killed and rest == "", "the writer died before it was killed: " .. rest)
        for _, name in ipairs(proc.ls(dir)) do
          if name:find("^cache%.json%.tmp%.") then left = left + 1 end
        end
        if left > 0 then break end
      end
      assert.is_true(left > 0, "no kill in 30 landed during a write")
      assert(fileio.write_atomic(p, "{}"))
      assert.same({ "cache.json", "slow.lua" }, proc.ls(dir))
    end)
  end)

  describe("read as bytes", function()
    it("keeps the content in C: its length and any part of it as string.sub would give", function()
      local p = dir .. "/data"
      local text = "{\"a\":1}\0binary\255" .. string.rep("x", 300)
      assert(fileio.write_atomic(p, text))
      local bytes, st = fileio.read(p, "bytes")
      assert.equal("userdata", type(bytes))
      assert.equal(#text, #bytes)
      assert.equal(#text, st.size)
      assert.equal(text, bytes:sub(1))
      math.randomseed(7)
      for _ = 1, 2000 do
        local i, j = math.random(-#text - 5, #text + 5), math.random(-#text - 5, #text + 5)
        assert.equal(text:sub(i, j), bytes:sub(i, j), i .. ", " .. j)
      end
      assert.matches("^msal.fileio.bytes %(" .. #text .. " bytes%)$", tostring(bytes))
    end)

    it("reads an empty file and a file of several huge pages", function()
      local p = dir .. "/data"
      assert(fileio.write_atomic(p, ""))
      local bytes = fileio.read(p, "bytes")
      assert.equal(0, #bytes)
      assert.equal("", bytes:sub(1))
      local big = string.rep("0123456789abcdef", 300000) -- 4.8 MB
      assert(fileio.write_atomic(p, big))
      bytes = fileio.read(p, "bytes")
      assert.equal(#big, #bytes)
      assert.equal(big:sub(-100), bytes:sub(-100))
      assert.equal(big:sub(2097150, 2097160), bytes:sub(2097150, 2097160))
    end)

    it("loads a precompiled chunk from a range, and refuses source text and damaged bytecode", function()
      local chunk = string.dump(assert(load("local a = ... return a * 6", "=t")), true)
      local p = dir .. "/data"
      assert(fileio.write_atomic(p, "head" .. chunk .. "tail"))
      local bytes = fileio.read(p, "bytes")
      local fn = assert(bytes:load(5, 4 + #chunk, "=mod"))
      assert.equal(42, fn(7))
      local ok, msg, code = bytes:load(1, 4, "=head")
      assert.is_nil(ok)
      assert.equal("=head: not a precompiled chunk", msg)
      assert.equal("BAD_DATA", code)
      assert(fileio.write_atomic(p, "return 1"))
      ok, msg, code = fileio.read(p, "bytes"):load(1, -1, "=src")
      assert.is_nil(ok)
      assert.equal("BAD_DATA", code)
      for _, cut in ipairs({ 1, 4, 12, math.floor(#chunk / 2), #chunk - 1 }) do
        assert(fileio.write_atomic(p, chunk:sub(1, cut)))
        ok, msg, code = fileio.read(p, "bytes"):load(1, -1, "=cut")
        assert.is_nil(ok, cut)
        assert.equal("BAD_DATA", code, msg)
      end
    end)

    it("is what store:load parses, and the store keeps it alive", function()
      local doc = cjson.encode({ AppMetadata = { ["appmetadata-login.example.com-c1"] = {
        client_id = "c1", environment = "login.example.com", family_id = "1" } } })
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(p, doc))
      local s = core.store.new()
      assert.is_true(s:load((fileio.read(p, "bytes"))))
      collectgarbage()
      collectgarbage()
      local text = s:serialize()
      assert.equal("1", cjson.decode(text).AppMetadata["appmetadata-login.example.com-c1"].family_id)
      assert.has_error(function() s:load(io.stdout) end)
    end)

    it("refuses an unknown way to read", function()
      assert.has_error(function() fileio.read(dir .. "/x", "lines") end)
    end)
  end)

  describe("signature", function()
    it("names the file's identity: the same until it is written or replaced", function()
      local p = dir .. "/mod.lua"
      assert(fileio.write_atomic(p, "return 1"))
      local st = fileio.stat(p)
      local sig = assert(fileio.signature(p))
      -- dev and ino may not fit a LuaJIT number exactly: compared as digits
      assert.matches("^%d+:%d+:" .. table.concat({ st.size, st.mtime_sec, st.mtime_nsec }, ":") .. "$", sig)
      assert.equal(sig, fileio.signature(p))
      assert(fileio.write_atomic(p, "return 1")) -- same content, a new inode
      assert.not_equal(sig, fileio.signature(p))
      sig = fileio.signature(p)
      assert(succeeds("touch -d '2001-02-03 04:05:06.123456789' " .. q(p)))
      assert.not_equal(sig, fileio.signature(p))
      assert(succeeds("ln -s mod.lua " .. q(dir .. "/link")))
      assert.not_equal(fileio.signature(p), fileio.signature(dir .. "/link"))
      local ok, msg, code = fileio.signature(dir .. "/none")
      assert.is_nil(ok)
      assert.matches("cannot stat", msg)
      assert.equal("ENOENT", code)
    end)
  end)

  describe("mkdirs", function()
    it("makes the missing directories, each 0700, and leaves existing ones alone", function()
      assert(succeeds("chmod 0755 " .. q(dir)))
      assert.is_true(fileio.mkdirs(dir .. "/a/b/c"))
      for _, d in ipairs({ "/a", "/a/b", "/a/b/c" }) do
        local st = assert(fileio.stat(dir .. d))
        assert.equal("directory", st.type)
        assert.equal(octal("700"), st.mode, d)
      end
      assert.equal(octal("755"), fileio.stat(dir).mode)
      assert.is_true(fileio.mkdirs(dir .. "/a/b/c/"))
      assert.is_true(fileio.mkdirs(dir .. "/a/b/d", octal("750")))
      assert.equal(octal("750"), fileio.stat(dir .. "/a/b/d").mode)
    end)

    it("says which part is not a directory", function()
      assert(fileio.write_atomic(dir .. "/file", "x"))
      local ok, msg, code = fileio.mkdirs(dir .. "/file/sub")
      assert.is_nil(ok)
      assert.equal(dir .. "/file is not a directory", msg)
      assert.equal("ENOTDIR", code)
      assert.has_error(function() fileio.mkdirs("") end)
      assert.has_error(function() fileio.mkdirs(dir .. "/x", octal("1777")) end)
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
      local ok, msg, code = fileio.check_private(p)
      assert.is_nil(ok)
      assert.equal("cache file " .. p .. " is writable by others (mode 0666)", msg)
      assert.equal("EPERM", code)
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
      assert(succeeds("chmod 0777 " .. q(dir)))
      local ok, msg = fileio.check_private(p)
      assert.is_nil(ok)
      assert.matches("directory " .. dir .. " of cache file " .. p .. " is writable by others and not sticky (mode 0777)",
        msg, 1, true)
    end)

    it("accepts a file in a sticky world-writable directory like /tmp", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(p, "{}"))
      assert(succeeds("chmod 1777 " .. q(dir)))
      assert.is_true(fileio.check_private(p))
    end)

    it("refuses a symbolic link and a file owned by someone else", function()
      local p = dir .. "/cache.json"
      assert(fileio.write_atomic(dir .. "/real", "{}"))
      assert(succeeds("ln -s real " .. q(p)))
      local ok, msg, code = fileio.check_private(p)
      assert.is_nil(ok)
      assert.matches("symbolic link", msg)
      assert.equal("ELOOP", code)
      if proc.run("id -u", { plain = true }) == "0\n" then -- only root can give a file away
        assert(succeeds("chown -h 65534 " .. q(dir .. "/real")))
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
      local fh = assert(io.popen(LUA .. " " .. q(child) .. " " .. q(lp) .. " " .. q(dir .. "/release")))
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
      assert.is_false(succeeds("flock -n " .. q(lp) .. " true"))
      l:unlock()
    end)

    it("waits for another process to unlock", function()
      local child = script(dir, "brief", [[
        local l = assert(fileio.lock(arg[1]))
        io.write("locked\n") io.flush()
        core.sleep_ms(300)
        l:unlock()
      ]])
      local fh = assert(io.popen(LUA .. " " .. q(child) .. " " .. q(lp)))
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
      assert(succeeds("touch -d '2 minutes ago' " .. q(lp)))
      l = assert(fileio.lock(lp, { retries = 0 }))
      l:unlock()
      put(lp, "garbage")
      core.sleep_ms(60)
      l = assert(fileio.lock(lp, { retries = 0, stale_after_ms = 50 }))
      l:unlock()
    end)

    it("does not remove a dead process's lock file while someone holds its flock", function()
      put(lp, dead_pid())
      local fh = popen_plain("flock -x " .. q(lp) .. " sh -c 'echo locked; sleep 0.4'")
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
      for _ = 1, 4 do cmd[#cmd + 1] = LUA .. " " .. q(worker) .. " " .. q(lp) .. " " .. q(cs) .. " &" end
      for _ = 1, 4 do cmd[#cmd + 1] = LUA .. " " .. q(crasher) .. " " .. q(lp) .. " &" end
      cmd[#cmd + 1] = "wait"
      local out = proc.run(table.concat(cmd, " "))
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

    it("appears with our PID already in it and leaves no temporary file", function()
      local l = assert(fileio.lock(lp))
      assert.same({ "cache.json.lockfile" }, proc.ls(dir))
      local text, st = fileio.read(lp)
      assert.equal(tostring(fileio.pid()), text)
      assert.equal(1, st.nlink)
      assert.is_true(l:unlock())
      assert.same({}, proc.ls(dir))
    end)

    it("is never seen without a PID by concurrent lockers and readers", function()
      -- Each locker takes and releases the lock, and between its turns reads
      -- the lock file whenever it exists; so does this process meanwhile. A
      -- lock file created first and given its PID after would be seen empty.
      -- LOOK is that read, one definition for both (its source goes into the
      -- lockers' script): n.seen counts the times the lock file exists,
      -- n.bad the times it holds anything but a PID.
      local LOOK = [[
        local fileio = require("msal.core").fileio
        return function(lp, n)
          local text = fileio.read(lp)
          if text then
            n.seen = n.seen + 1
            if not text:match("^%d+$") then n.bad = n.bad + 1 end
          end
        end
      ]]
      local look = assert(load(LOOK, "=look"))()
      local locker = script(dir, "locker", [[
        local look = (function() ]] .. LOOK .. [[ end)()
        local lp, rounds = arg[1], tonumber(arg[2])
        local me, n = tostring(fileio.pid()), { seen = 0, bad = 0 }
        for _ = 1, rounds do
          local l = assert(fileio.lock(lp, { retries = 100000, retry_delay_ms = 1 }))
          if fileio.read(lp) ~= me then n.bad = n.bad + 1 end
          assert(l:unlock())
          for _ = 1, 20 do look(lp, n) end
        end
        io.write("seen ", n.seen, " bad ", n.bad, "\n")
      ]])
      local done, out = dir .. "/done", dir .. "/out"
      local cmd = {}
      for _ = 1, 6 do
        cmd[#cmd + 1] = LUA .. " " .. q(locker) .. " " .. q(lp) .. " 300 >>" .. q(out) .. " 2>&1 &"
      end
      cmd[#cmd + 1] = "wait; : >" .. q(done)
      local lockers = proc.start(table.concat(cmd, " "))
      local n = { seen = 0, bad = 0 }
      local deadline = core.now_ms() + 60000
      while not exists(done) and core.now_ms() < deadline do look(lp, n) end
      lockers:wait()
      local report = assert(fileio.read(out))
      local lines, seen, bad = 0, n.seen, n.bad
      for s, b in report:gmatch("seen (%d+) bad (%d+)") do
        lines = lines + 1
        seen, bad = seen + tonumber(s), bad + tonumber(b)
      end
      assert.equal(6, lines, report)
      assert.equal(0, bad, "the lock file was seen without a PID " .. bad .. " times in " .. seen)
      assert.is_true(seen > 100, "the lock file was seen only " .. seen .. " times")
      assert.is_false(exists(lp))
      assert.same({ "done", "locker.lua", "out" }, proc.ls(dir))
    end)

    it("once held, sweeps the temporary lock files of lockers that are gone, and only those", function()
      -- a waiter killed while waiting leaves its temporary lock file
      local h = holder()
      local waiter = script(dir, "waiter", [[
        io.write("waiting\n") io.flush()
        fileio.lock(arg[1], { retries = 100000, retry_delay_ms = 5 })
      ]])
      local fh, pid = proc.start_child(LUA .. " " .. q(waiter) .. " " .. q(lp), "^waiting$", "the waiter")
      local function waiters_temp()
        for _, name in ipairs(proc.ls(dir)) do
          if name:match("^cache%.json%.lockfile%.tmp%." .. pid .. "%.%x+$") then return name end
        end
      end
      local deadline = core.now_ms() + 5000
      while not waiters_temp() and core.now_ms() < deadline do core.sleep_ms(5) end
      assert.is_string(waiters_temp(), "the waiter made no temporary lock file")
      assert(succeeds("kill -9 " .. pid))
      fh:read("*a")
      fh:close()
      h.release()
      local D = dead_pid()
      local keep = { temp_name("cache.json.lockfile", fileio.pid()), "cache.json.lockfile.tmp.notanumber",
        temp_name("cache.json.lockfile", "99999999999999999999"), temp_name("cache.json", D) }
      for _, name in ipairs(keep) do put(dir .. "/" .. name, "x") end
      put(dir .. "/" .. temp_name("cache.json.lockfile", D), D)
      local l = assert(fileio.lock(lp, { retries = 0 }))
      keep[#keep + 1] = "cache.json.lockfile"
      for _, name in ipairs({ "holder.lua", "release", "waiter.lua" }) do keep[#keep + 1] = name end
      table.sort(keep)
      assert.same(keep, proc.ls(dir))
      l:unlock()
    end)

    it("is created in place, then given its PID, where the file system has no hard links", function()
      -- link(2) failing with EPERM, as on FAT, in a child that preloads this
      local shim = dir .. "/nolink.so"
      put(dir .. "/nolink.c", "#include <errno.h>\n"
        .. "int link(const char *a, const char *b) { (void)a; (void)b; errno = EPERM; return -1; }\n")
      assert(succeeds("cc -shared -fPIC -o " .. q(shim) .. " " .. q(dir .. "/nolink.c")))
      local preload = os.getenv("LD_PRELOAD")
      preload = (preload and preload ~= "" and preload .. ":" or "") .. shim
      local child = script(dir, "nolinks", [[
        local l = assert(fileio.lock(arg[1]))
        io.write(fileio.pid(), " ", fileio.read(arg[1]), "\n") io.flush()
        local deadline = core.now_ms() + 5000
        while core.now_ms() < deadline and not fileio.stat(arg[2]) do core.sleep_ms(5) end
        assert(l:unlock())
        io.write("unlocked\n")
      ]])
      local fh = assert(io.popen("LD_PRELOAD=" .. q(preload) .. " " .. LUA .. " " .. q(child) .. " "
        .. q(lp) .. " " .. q(dir .. "/release") .. " 2>&1"))
      local line = fh:read("*l") or ""
      local pid, text = line:match("^(%d+) (.*)$")
      if not pid then error("the child did not lock: " .. line .. (fh:read("*a") or "")) end
      assert.equal(pid, text)
      local l, _, code = fileio.lock(lp, quick())
      assert.is_nil(l)
      assert.equal("ETIMEDOUT", code)
      assert.same({ "cache.json.lockfile", "nolink.c", "nolink.so", "nolinks.lua" }, proc.ls(dir))
      put(dir .. "/release", "")
      assert.equal("unlocked", (fh:read("*a"):gsub("%s+$", "")))
      fh:close()
      assert.is_false(exists(lp))
    end)

    it("raises on bad options", function()
      assert.has_error(function() fileio.lock(lp, { retries = "x" }) end)
      assert.has_error(function() fileio.lock(lp, { retries = -1 }) end)
      assert.has_error(function() fileio.lock(lp, 5) end)
      assert.is_false(exists(lp))
    end)
  end)
end)
