--- What `msal` takes from the process it runs in: its streams, its
-- environment, whether a stream is a terminal, and the few programs it
-- starts. One table, so the specs can run the command in-process with
-- their own streams and environment.
-- @module msal.cli.system
local system = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
system.quote = quote

-- os.execute's success: true on Lua 5.2+, 0 on LuaJIT and Lua 5.1.
local function succeeded(a, _, c)
  if a == true then return true end
  if type(a) == "number" then return a == 0 end
  return a == nil and c == 0
end

--- The real process: io.stdout, io.stderr, io.stdin, os.getenv.
-- @treturn table `{stdout, stderr, stdin, getenv, isatty(fd), read_command(cmd)}`
function system.process()
  return {
    stdout = io.stdout, stderr = io.stderr, stdin = io.stdin, getenv = os.getenv,
    -- Lua has no isatty: the shell's `test -t` looks at the descriptor it
    -- inherits. Asked only when a message is shown.
    isatty = function(fd)
      return succeeded(os.execute("test -t " .. math.floor(fd)))
    end,
    --- A command's stdout (stderr dropped), or nil when it cannot run.
    read_command = function(cmd)
      local p = io.popen(cmd .. " 2>/dev/null")
      if not p then return nil end
      local out = p:read("*a")
      p:close()
      return out
    end,
  }
end

return system
