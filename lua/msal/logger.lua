--- The logger: MSAL's levels, and personal data (PII) kept out unless the
-- user turned it on. Tokens, secrets and codes are never passed here in
-- the first place; `pii` messages carry user names and account ids.
-- @module msal.logger
local logger = {}

local LEVELS = { error = 1, warning = 2, info = 3, verbose = 4, trace = 5 }
logger.LEVELS = LEVELS

local Logger = {}
Logger.__index = Logger

--- Makes a logger.
-- @tparam[opt] table opts `level` ("error"…"trace", default "warning"),
--   `pii` (default false), `sink` `function(level, message, contains_pii)`
--   (default: none, so a library stays quiet unless asked)
function logger.new(opts)
  opts = opts or {}
  local level = LEVELS[opts.level or "warning"]
  if not level then error("unknown log level '" .. tostring(opts.level) .. "'", 2) end
  return setmetatable({ level = level, pii = opts.pii == true, sink = opts.sink }, Logger)
end

--- Logs a message at a level; `pii_message`, when given, replaces it only
-- if PII logging is on.
function Logger:log(level, message, pii_message)
  if not self.sink or LEVELS[level] > self.level then return end
  if pii_message and self.pii then
    self.sink(level, pii_message, true)
  else
    self.sink(level, message, false)
  end
end

--- Whether a message at level would reach the sink: callers on hot paths
-- (a cache hit) ask first rather than build a message nobody reads.
function Logger:enabled(level)
  return self.sink ~= nil and LEVELS[level] <= self.level
end

for name in pairs(LEVELS) do
  Logger[name] = function(self, message, pii_message) return self:log(name, message, pii_message) end
end

return logger
