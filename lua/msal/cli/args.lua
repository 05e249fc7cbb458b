--- The command line's arguments: long options (`--name value`,
-- `--name=value`), their short forms (`-s value`, `-svalue`), `--` to end
-- the options, and positionals; checked against a command's option list
-- (msal.cli.commands).
-- @module msal.cli.args
local args = {}

--- The key of an option in the parsed table: its name with underscores.
-- @tparam string name e.g. "client-id"
-- @treturn string e.g. "client_id"
function args.key(name)
  return (name:gsub("%-", "_"))
end

local function find(options)
  local long, short = {}, {}
  for _, o in ipairs(options) do
    long[o[1]] = o
    if o.short then short[o.short] = o end
  end
  return long, short
end

local function allowed(o, value)
  if not o.choices then return true end
  for _, c in ipairs(o.choices) do
    if c == value then return true end
  end
  return false
end

--- Parses argv from index `first` on.
-- @tparam table argv the arguments
-- @tparam table options the command's options
-- @tparam[opt=1] integer first
-- @treturn[1] table the options given, by key (a repeatable option: a list)
-- @treturn[1] table the positionals
-- @treturn[2] nil
-- @treturn[2] string what is wrong
function args.parse(argv, options, first)
  local long, short = find(options)
  local given, positionals = {}, {}
  local i, n, rest = first or 1, #argv, false
  while i <= n do
    local a = argv[i]
    if rest or a == "-" or a:sub(1, 1) ~= "-" then
      positionals[#positionals + 1] = a
    elseif a == "--" then
      rest = true
    else
      local o, value, shown
      if a:sub(1, 2) == "--" then
        local name, v = a:match("^%-%-([^=]+)=(.*)$")
        name = name or a:sub(3)
        o, value, shown = long[name], v, "--" .. name
      else
        o, shown = short[a:sub(2, 2)], a:sub(1, 2)
        if #a > 2 then value = a:sub(3) end
      end
      if not o then return nil, "unknown option " .. shown end
      local key = args.key(o[1])
      if not o.arg then
        if value ~= nil then return nil, "--" .. o[1] .. " takes no value" end
        given[key] = true
      else
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, "--" .. o[1] .. " needs a value (" .. o.arg .. ")" end
        end
        if not allowed(o, value) then
          return nil, "--" .. o[1] .. " must be one of " .. table.concat(o.choices, ", ") .. ", not '" .. value .. "'"
        end
        if o.repeatable then
          local l = given[key] or {}
          l[#l + 1] = value
          given[key] = l
        elseif given[key] ~= nil then
          return nil, "--" .. o[1] .. " is given twice"
        else
          given[key] = value
        end
      end
    end
    i = i + 1
  end
  return given, positionals
end

--- Whether the command line asks for --verbose (`-v`), before it is parsed:
-- the modules then compile from source (bin/msal) and an unexpected error
-- prints its whole traceback (msal.cli.main).
-- @tparam table argv
-- @treturn boolean
function args.verbose(argv)
  for _, a in ipairs(argv) do
    if a == "--verbose" or a == "-v" then return true end
  end
  return false
end

return args
