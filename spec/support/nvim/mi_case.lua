-- Run by spec/hosts/nvim_mi_spec.lua inside a headless Neovim:
--   nvim --headless -u NONE --cmd "luafile paths.lua" -c "luafile mi_case.lua"
-- Two acquire_token calls of msal.nvim's ManagedIdentityApplication
-- against the fake IMDS at MSAL_MI_URL, awaited in a coroutine while a
-- timer ticks; the result goes to MSAL_NVIM_OUT as JSON, then Neovim quits.
local out = assert(os.getenv("MSAL_NVIM_OUT"), "MSAL_NVIM_OUT is not set")
local url = assert(os.getenv("MSAL_MI_URL"), "MSAL_MI_URL is not set")
local mn = require("msal.nvim")

local function finish(result)
  local f = assert(io.open(out .. ".tmp", "w"))
  f:write(vim.json.encode(result))
  f:close()
  assert(os.rename(out .. ".tmp", out))
  vim.schedule(function() vim.cmd("qa!") end)
end

local ticks = 0
local timer = vim.loop.new_timer()
timer:start(10, 10, function() ticks = ticks + 1 end)

coroutine.wrap(function()
  local ok, err = xpcall(function()
    local app = mn.ManagedIdentityApplication.new({ system = { env = { AZURE_POD_IDENTITY_AUTHORITY_HOST = url } } })
    local r1, e1 = app:acquire_token({ resource = "https://vault.azure.net" }):await()
    local r2, e2 = app:acquire_token({ resource = "https://vault.azure.net" }):await()
    timer:stop()
    finish({
      first = r1 and { access_token = r1.access_token, from_cache = r1.from_cache } or { error = tostring(e1) },
      second = r2 and { access_token = r2.access_token, from_cache = r2.from_cache } or { error = tostring(e2) },
      ticks = ticks,
    })
  end, debug.traceback)
  if not ok then finish({ error = tostring(err) }) end
end)()
