--- Whole-file reads and writes for specs, so that each spec does not carry
-- its own copy of the same four lines.
local M = {}

--- The file's bytes, or nil when it cannot be opened.
-- @param path
-- @return string or nil
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes text as the whole file (raises when it cannot).
-- @param path
-- @param text
-- @return path
function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
  return path
end

--- Whether the file can be opened for reading.
-- @param path
-- @return boolean
function M.exists(path)
  local f = io.open(path, "rb")
  if not f then return false end
  f:close()
  return true
end

return M
