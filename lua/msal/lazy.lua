--- Modules loaded on their first use. A `msal token` cache hit is a whole
-- process, and compiling the flows it never runs (device code, popup,
-- confidential and managed-identity flows, token validation) was a
-- measurable part of it (bench/README.md, the command line).
-- @module msal.lazy
local lazy = {}

--- A stand-in for `require(name)`: the module is required when a field is
-- first read, and from then on the stand-in reads through to it.
-- @tparam string name the module
-- @tparam[opt] table fields the only field names the stand-in shows
-- (others read as nil), for a public table that shows part of a module
-- @treturn table the stand-in
function lazy.require(name, fields)
  local shown
  if fields then
    shown = {}
    for _, f in ipairs(fields) do shown[f] = true end
  end
  return setmetatable({}, { __index = function(self, k)
    if shown and not shown[k] then return nil end
    local mod = require(name)
    if shown then
      for f in pairs(shown) do rawset(self, f, mod[f]) end
      return mod[k]
    end
    setmetatable(self, { __index = mod })
    return mod[k]
  end })
end

return lazy
