-- Runs one case of spec/support/nvim/cases.lua inside a headless Neovim:
--   nvim --headless … --cmd "luafile paths.lua" -c "luafile driver.lua"
-- with MSAL_NVIM_CASE (the case's name), MSAL_NVIM_ARGS (JSON, its
-- arguments) and MSAL_NVIM_OUT (where the JSON result goes). The case ends
-- by calling done(result); the driver then writes the result and quits.
-- A case that raises, or that has not finished after args.deadline_ms,
-- still writes a result ({error = …}) and quits, so the spec sees why.
local out = assert(os.getenv("MSAL_NVIM_OUT"), "MSAL_NVIM_OUT is not set")
local name = assert(os.getenv("MSAL_NVIM_CASE"), "MSAL_NVIM_CASE is not set")
local args = vim.json.decode(os.getenv("MSAL_NVIM_ARGS") or "{}")

local finished = false

local function finish(result)
  if finished then return end
  finished = true
  local f = assert(io.open(out .. ".tmp", "w"))
  f:write(vim.json.encode(result))
  f:close()
  assert(os.rename(out .. ".tmp", out))
  -- quit from the main loop, not from inside whatever called done
  vim.schedule(function() vim.cmd("qa!") end)
end

local deadline = vim.loop.new_timer()
deadline:start(args.deadline_ms or 15000, 0, function()
  vim.schedule(function() finish({ error = "the case did not finish in time" }) end)
end)

local function done(result)
  deadline:stop()
  finish(result)
end

local ok, err = xpcall(function()
  local case = assert(require("cases")[name], "no case named " .. name)
  case(args, done)
end, debug.traceback)
if not ok then finish({ error = tostring(err) }) end
