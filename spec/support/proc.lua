--- Shell commands, child processes and temporary directories for the specs.
--
-- Many specs check lua-msal against real programs (gcc, openssl, curl, node,
-- a second Lua interpreter, luarocks). Each used to carry its own copy of the
-- same few lines: quote an argument, run a command and take its output and
-- exit status, make a temporary directory and remove it, start a child in the
-- background and poll for its end. One copy here means one place where the
-- portability details are handled:
--
-- * `io.popen(...):close()` tells the exit status on Lua 5.4 but not on
--   LuaJIT, so the status comes from a last output line the shell adds.
-- * The ASan run preloads the sanitizer runtime (LD_PRELOAD) into every
--   child. Lua children need it (they load the ASan build of msal.core);
--   shell tools, node and compilers must not get it, since a leak report from
--   them changes their exit status. `opts.plain` drops it.
-- * stdin is /dev/null, so that no command ever waits on the terminal.
--
-- Usage: `local proc = require("proc")` (spec/support is on LUA_PATH).
-- @module proc

local files = require("files")
local read_file = files.read

local M = {}

--- The command of the interpreter running this spec (LuaJIT or Lua 5.4), so
-- that a Lua child runs on the same interpreter and the same msal.core build.
M.LUA = jit and "luajit" or "lua5.4"

--- Quotes a value as one shell word (single quotes, any `'` escaped), so that
-- paths and arguments with spaces or quotes reach the command unchanged.
-- @param s a string, or anything `tostring` takes
-- @return the quoted word
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- What goes before the command: opts.plain drops the ASan preload for
-- everything the command starts; opts.dir is cd'ed to first (a failed cd is
-- the exit status).
local function prefix(opts)
  opts = opts or {}
  local s = ""
  if opts.plain then s = s .. "unset LD_PRELOAD; " end
  if opts.dir then s = s .. "cd " .. M.quote(opts.dir) .. " && " end
  return s
end

-- cmd in a subshell of its own (so that its own redirections, pipes, `;`,
-- `exit` and `exec` keep their meaning), stderr to `err`, stdin from
-- /dev/null, then a line with its exit status.
local function script(cmd, opts, err)
  return prefix(opts) .. "( " .. cmd .. "\n) " .. err .. " </dev/null; echo \"exit:$?\""
end

-- Splits the status line off the output: the output exactly as the command
-- wrote it, and its exit status (nil if the shell died before printing it).
local function finish(raw)
  local out, code = raw:match("^(.*)exit:(%d+)\n$")
  if not out then return raw, nil end
  return out, tonumber(code)
end

--- Starts a command that runs while the spec goes on; its output is
-- collected at the end.
-- @param cmd shell command text
-- @param opts optional: `dir` (run there), `plain` (without the ASan preload)
-- @return a handle; `handle:wait()` blocks until the command's output ends and
-- returns its output (stdout and stderr together) and its exit status
function M.start(cmd, opts)
  return { pipe = assert(io.popen(script(cmd, opts, "2>&1"))), wait = function(self)
    local raw = self.pipe:read("*a")
    self.pipe:close()
    return finish(raw)
  end }
end

--- Runs a command to its end; for commands whose output is a diagnostic (a
-- compiler, a tool the assertion message should show).
-- @param cmd shell command text
-- @param opts as for `start`
-- @return its output (stdout and stderr together), its exit status
function M.sh(cmd, opts)
  return M.start(cmd, opts):wait()
end

--- Runs a command to its end, keeping stdout apart from stderr; for commands
-- whose stdout is data (JSON, a list of files) that a warning must not spoil.
-- @param cmd shell command text
-- @param opts as for `start`
-- @return its stdout, its exit status, its stderr
function M.run(cmd, opts)
  local errfile = os.tmpname()
  local p = assert(io.popen(script(cmd, opts, "2>" .. M.quote(errfile))))
  local raw = p:read("*a")
  p:close()
  local err = read_file(errfile) or ""
  os.remove(errfile)
  local out, code = finish(raw)
  return out, code, err
end

--- Makes a private temporary directory (mode 0700, by `mktemp -d`).
-- Raises if it cannot, so a test never writes into a wrong place.
-- @return its path, and a function that removes it with all it holds (safe to
-- call more than once; teardown code calls it unconditionally)
function M.tempdir()
  local out, code = M.sh("mktemp -d", { plain = true })
  local path = out:match("^(/[^\n]*)\n$")
  assert(code == 0 and path, "mktemp -d failed: " .. out)
  local live = path
  local function cleanup()
    if live then
      M.sh("rm -rf " .. M.quote(live), { plain = true })
      live = nil
    end
  end
  return path, cleanup
end

--- The names in a directory, dot files too (`ls -A`, without the ASan
-- preload), sorted; for asserting exactly which files a test left there.
-- Raises if `ls` fails (a missing directory is not an empty one).
-- @param dir its path
-- @return a sorted list of names, empty for an empty directory
function M.ls(dir)
  local out, code, err = M.run("ls -A " .. M.quote(dir), { plain = true })
  assert(code == 0, "ls -A " .. tostring(dir) .. " failed: " .. err)
  local names = {}
  for name in out:gmatch("[^\n]+") do names[#names + 1] = name end
  table.sort(names)
  return names
end

--- The PID of a process that has exited and been reaped (for lock and
-- temporary-file names whose owner is gone).
-- @return the PID, as a string of digits
function M.dead_pid()
  return (M.run("sh -c 'echo $$'", { plain = true }):match("^%d+"))
end

--- Writes a script for a Lua child: this process's package.path and
-- package.cpath first, so that the child loads the same modules and the same
-- build of msal.core as the spec that starts it, then `body`.
-- @param path where to write it
-- @param body the script's own code
-- @return path
function M.lua_script(path, body)
  local paths = ("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath)
  return files.write(path, paths .. body)
end

--- Starts a command in the background of a shell that is read as it
-- writes: the shell prints the command's PID while the command prints its
-- ready line, and the two race, so they are taken in either order.
-- @param cmd shell command text (its own redirections apply)
-- @param ready a Lua pattern for the ready line
-- @param what names the command in the error when it does not start
-- @return the io.popen handle (read the rest of it, then close it), the
-- PID as a string, and the ready line's first capture (or the line)
function M.start_child(cmd, ready, what)
  local fh = assert(io.popen(cmd .. " & echo pid:$!; wait"))
  local pid, got
  for _ = 1, 2 do
    local line = fh:read("*l") or ""
    pid = pid or line:match("^pid:(%d+)$")
    got = got or line:match(ready)
  end
  if not (pid and got) then error(what .. " did not start: " .. (fh:read("*a") or ""), 2) end
  return fh, pid, got
end

local Job = {}
Job.__index = Job

--- Starts a command in the background, detached from the spec, which can then
-- do its own part (serve a request, run its event loop) and poll `job:done()`
-- without blocking. Its output (stdout and stderr) goes to `base .. ".out"`,
-- its exit status to `base .. ".rc"`, written whole (by a rename) once it has
-- exited.
-- @param cmd shell command text
-- @param base path prefix for the job's files, in a directory the spec owns
-- @param opts as for `start`
-- @return a job: `job:done()`, `job:output()`, `job:wait(limit_ms)`
function M.background(cmd, base, opts)
  local out, rc, tmp = base .. ".out", base .. ".rc", base .. ".rc.tmp"
  local line = "( " .. prefix(opts) .. "( " .. cmd .. "\n) >" .. M.quote(out) .. " 2>&1 </dev/null; echo $? >" ..
    M.quote(tmp) .. "; mv " .. M.quote(tmp) .. " " .. M.quote(rc) .. ") </dev/null >/dev/null 2>&1 &"
  local ok = os.execute(line) -- true (5.4) or 0 (LuaJIT) on success
  assert(ok == true or ok == 0, "cannot start " .. line)
  return setmetatable({ base = base, out = out, rc = rc }, Job)
end

--- Whether the job has exited.
function Job:done()
  return read_file(self.rc) ~= nil
end

--- What the job has written so far (all of it once it is done).
function Job:output()
  return read_file(self.out) or ""
end

--- Waits for the job to exit, polling every 10 ms (msal.core's clock and
-- sleep: no process per poll, no busy loop).
-- @param limit_ms how long at the most (default 15000)
-- @return its exit status, or nil if it is still running after limit_ms
function Job:wait(limit_ms)
  local core = require("msal.core")
  local deadline = core.now_ms() + (limit_ms or 15000)
  while true do
    local rc = read_file(self.rc)
    if rc then return tonumber(rc:match("%d+")) end
    if core.now_ms() >= deadline then return nil end
    core.sleep_ms(10)
  end
end

return M
