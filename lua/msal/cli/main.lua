--- The `msal` command: picks the command, parses its options, resolves
-- the settings and runs it. bin/msal is this module's `run` and nothing
-- else, so the specs can run every command in-process too.
-- @module msal.cli.main
local args = require("msal.cli.args")
local commands = require("msal.cli.commands")
local exit_codes = require("msal.cli.exit_codes")
local output = require("msal.cli.output")
local settings = require("msal.cli.settings")
local system = require("msal.cli.system")

local main = {}

local function positionals_ok(cmd, pos)
  local p = cmd.positionals
  if #pos < p.min then return nil, "msal " .. cmd.name .. " needs " .. (p.choices and table.concat(p.choices, ", ") or "an argument") end
  if #pos > p.max then return nil, "msal " .. cmd.name .. ": unexpected argument '" .. pos[p.max + 1] .. "'" end
  if p.choices and pos[1] then
    for _, c in ipairs(p.choices) do
      if c == pos[1] then return true end
    end
    return nil, "msal " .. cmd.name .. " takes " .. table.concat(p.choices, ", ") .. ", not '" .. pos[1] .. "'"
  end
  return true
end

local function run_command(cmd, argv, sys)
  local out = output.new(sys)
  local given, pos = args.parse(argv, cmd.options, 2)
  if not given then return out:fail(exit_codes.usage(pos .. " (see msal " .. cmd.name .. " --help)")) end
  if given.color then out = output.new(sys, given.color) end
  if given.help then
    out:print(require("msal.cli.help").command(cmd))
    return exit_codes.OK
  end
  local ok, why = positionals_ok(cmd, pos)
  if not ok then return out:fail(exit_codes.usage(why .. " (see msal " .. cmd.name .. " --help)")) end
  local mod = require("msal.cli." .. cmd.module)
  local extra, state
  if mod.prepare then extra, state = mod.prepare(given, pos, sys) end
  local s, err = settings.resolve(cmd, given, sys, extra)
  if not s then return out:fail(err) end
  return mod.run(s, pos, out, sys, state)
end

--- Runs `msal` with its arguments.
-- @tparam table argv the arguments (`arg` of a script)
-- @tparam[opt] table sys the process (msal.cli.system; default the real one)
-- @treturn integer the exit status
function main.run(argv, sys)
  sys = sys or system.process()
  local name = argv[1]
  if name == "--help" or name == "-h" or name == "help" then
    local cmd = argv[2] and commands.BY_NAME[argv[2]]
    local help = require("msal.cli.help")
    output.new(sys):print(cmd and help.command(cmd) or help.main())
    return exit_codes.OK
  end
  if name == "--version" then
    -- and the interpreter, which the installed command picks itself (bin/msal)
    output.new(sys):print("msal (lua-msal) " .. require("msal")._VERSION .. " on "
      .. (jit and jit.version or _VERSION) .. "\n")
    return exit_codes.OK
  end
  local cmd = name and commands.BY_NAME[name]
  if not cmd then
    local out = output.new(sys)
    local why = name and ("unknown command '" .. name .. "'") or "no command given"
    return out:fail(exit_codes.usage(why .. "; commands: token, accounts, logout, decode, git-credential (see msal --help)"))
  end
  -- an unexpected raise is a bug: one line, and the traceback with --verbose
  local ok, code = xpcall(run_command, debug.traceback, cmd, argv, sys)
  if ok then return code end
  local out = output.new(sys)
  local verbose = args.verbose(argv)
  local first = tostring(code):match("^[^\n]*")
  out:fail(require("msal.errors").ClientAuthError("unexpected_error", verbose and tostring(code) or first))
  return exit_codes.FAILURE
end

return main
