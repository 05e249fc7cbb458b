-- Writes the man page of `msal` (man/msal.1) from the help text's source,
-- msal.cli.commands, so `--help` and `man msal` never disagree.
--
--   make man        (LUA_PATH=lua/?.lua lua5.4 man/gen_man.lua > man/msal.1)
local commands = require("msal.cli.commands")
local exit_codes = require("msal.cli.exit_codes")
local help = require("msal.cli.help")

-- Text as roff reads it literally: backslashes, dashes, and a line that
-- would start with a control character.
local function esc(s)
  s = s:gsub("\\", "\\e"):gsub("%-", "\\-")
  return (s:gsub("\n([.'])", "\n\\&%1"):gsub("^([.'])", "\\&%1"))
end

local out = {}
local function line(s) out[#out + 1] = s end

line('.TH MSAL 1 "" "lua-msal" "User Commands"')
line(".SH NAME")
line("msal \\- OAuth 2.0 / OpenID Connect tokens for shell scripts, CI and git")
line(".SH SYNOPSIS")
for _, c in ipairs(commands.LIST) do
  line(".B msal " .. esc(c.name))
  line(esc(c.synopsis))
  line(".br")
end
line(".SH DESCRIPTION")
line("Gets tokens the way Microsoft's MSAL libraries do, from a token cache shared with msal\\-node, " ..
  "msal\\-python and the Azure CLI, and signs in when the cache cannot answer.")
line("Results go to stdout and nothing else does; messages, the device code and errors go to stderr, one line each.")
for _, c in ipairs(commands.LIST) do
  line(".SH " .. esc(("msal " .. c.name):upper()))
  line(esc(c.summary) .. ".")
  for _, p in ipairs(c.description) do
    line(".PP")
    line(esc(p))
  end
  line(".SS Options")
  for _, o in ipairs(c.options) do
    line(".TP")
    line(".B " .. esc(help.option_label(o)))
    line(esc(help.option_text(o)))
  end
  if c.examples then
    line(".SS Examples")
    for _, e in ipairs(c.examples) do
      line(".PP")
      line(".nf")
      line(esc(e))
      line(".fi")
    end
  end
end
line(".SH CONFIGURATION")
line(esc(commands.PRECEDENCE))
line(".SH ENVIRONMENT")
for _, e in ipairs(commands.ENVIRONMENT) do
  line(".TP")
  line(".B " .. esc(e[1]))
  line(esc(e[2]))
end
line(".SH FILES")
line(".TP")
line(".I $XDG_CACHE_HOME/msal/token_cache.json")
line("the default token cache (else ~/.cache/msal/token_cache.json)")
line(".TP")
line(".I ~/.azure/msal_token_cache.json")
line("the Azure CLI's token cache (--azure-cli-cache; $AZURE_CONFIG_DIR moves it)")
line(".TP")
line(".I $XDG_CACHE_HOME/msal/luac/")
line("msal's modules compiled by earlier runs, one file per Lua interpreter (else ~/.cache/msal/luac/); " ..
  "read only when private to the user, recompiled when a module changes, ignored under --verbose; safe to remove")
line(".TP")
line(".I $XDG_CONFIG_HOME/msal/config.json")
line("the configuration file (else ~/.config/msal/config.json)")
line(".SH EXIT STATUS")
for _, m in ipairs(exit_codes.MEANINGS) do
  line(".TP")
  line(".B " .. m[1])
  line(esc(m[2]))
end
io.write(table.concat(out, "\n"), "\n")
