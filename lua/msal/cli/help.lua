--- The `--help` texts, made from msal.cli.commands (the man page is made
-- from the same table by man/gen_man.lua).
-- @module msal.cli.help
local commands = require("msal.cli.commands")
local exit_codes = require("msal.cli.exit_codes")

local help = {}

local WIDTH = 100

-- Words of text wrapped to lines of at most WIDTH: the first after
-- `indent`, the others after `rest` (default: indent).
local function wrap(text, indent, rest)
  local lines, line = {}, nil
  for word in text:gmatch("%S+") do
    if line and #line + 1 + #word > WIDTH then
      lines[#lines + 1] = line
      line = nil
    end
    line = line and (line .. " " .. word) or ((#lines == 0 and indent or rest or indent) .. word)
  end
  if line then lines[#lines + 1] = line end
  return table.concat(lines, "\n")
end
help.wrap = wrap

--- An option as the help and the man page name it: `-s, --scope SCOPE`.
-- @tparam table o
-- @treturn string
function help.option_label(o)
  local s = "--" .. o[1] .. (o.arg and (" " .. o.arg) or "")
  if o.short then s = "-" .. o.short .. ", " .. s end
  return s
end

--- What an option's help adds: its environment variable.
-- @tparam table o
-- @treturn string
function help.option_text(o)
  local s = o.help
  if o.env then s = s .. " [env " .. o.env .. "]" end
  return s
end

--- The help of one command.
-- @tparam table cmd an entry of commands.LIST
-- @treturn string
function help.command(cmd)
  local out = { "usage: msal " .. cmd.name .. " " .. cmd.synopsis, "", "msal " .. cmd.name .. ": " .. cmd.summary, "" }
  for _, p in ipairs(cmd.description) do
    out[#out + 1] = wrap(p, "")
    out[#out + 1] = ""
  end
  out[#out + 1] = "Options:"
  for _, o in ipairs(cmd.options) do
    out[#out + 1] = "  " .. help.option_label(o)
    out[#out + 1] = wrap(help.option_text(o), "      ")
  end
  if cmd.examples then
    out[#out + 1] = ""
    out[#out + 1] = "Examples:"
    for _, e in ipairs(cmd.examples) do out[#out + 1] = "  " .. e end
  end
  out[#out + 1] = ""
  out[#out + 1] = "Exit status:"
  for _, m in ipairs(exit_codes.MEANINGS) do out[#out + 1] = wrap(m[2], ("  %d  "):format(m[1]), "     ") end
  out[#out + 1] = ""
  out[#out + 1] = wrap(commands.PRECEDENCE, "")
  return table.concat(out, "\n") .. "\n"
end

--- The help of `msal` itself.
-- @treturn string
function help.main()
  local out = { "usage: msal COMMAND [options]", "",
    "Gets OAuth 2.0 / OpenID Connect tokens the way Microsoft's MSAL libraries do, for shell scripts, CI and git.",
    "", "Commands:" }
  for _, c in ipairs(commands.LIST) do out[#out + 1] = ("  %-16s %s"):format(c.name, c.summary) end
  out[#out + 1] = ""
  out[#out + 1] = "Run msal COMMAND --help for a command's options (or man msal)."
  out[#out + 1] = ""
  out[#out + 1] = "Environment:"
  for _, e in ipairs(commands.ENVIRONMENT) do
    out[#out + 1] = wrap(e[1], "  ")
    out[#out + 1] = wrap(e[2], "      ")
  end
  out[#out + 1] = ""
  out[#out + 1] = "Exit status:"
  for _, m in ipairs(exit_codes.MEANINGS) do out[#out + 1] = wrap(m[2], ("  %d  "):format(m[1]), "     ") end
  return table.concat(out, "\n") .. "\n"
end

return help
