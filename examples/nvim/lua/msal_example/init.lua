--- The example plugin's logic, over `msal.nvim`: a token silently from a
-- file cache when it can, the device-code flow when the user must sign in,
-- never a frozen editor meanwhile.
--
--     vim.g.msal_example = {
--       client_id = "…", authority = "https://login.microsoftonline.com/organizations",
--       scopes = { "User.Read" }, cache_path = "…",   -- both optional
--     }
-- @module msal_example
local M = {}

local app -- one application for the editor: its cache and connections last

local function settings()
  local g = vim.g.msal_example
  if type(g) ~= "table" or type(g.client_id) ~= "string" then
    error("msal_example: set vim.g.msal_example = { client_id = \"…\", authority = \"…\" } first", 0)
  end
  return g
end

-- Made on first use, so a wrong setting is reported by the command that
-- needed it, not at startup.
local function get_app()
  if app then return app end
  local g = settings()
  local path = g.cache_path or (vim.fn.stdpath("data") .. "/msal_example/token_cache.json")
  vim.fn.mkdir(vim.fn.fnamemodify(path, ":h"), "p")
  app = require("msal.nvim").PublicClientApplication.new({
    auth = { client_id = g.client_id, authority = g.authority or "https://login.microsoftonline.com/organizations" },
    -- the file MSAL's other libraries share; tokens survive a restart
    cache = { location = "file", path = path },
  })
  return app
end

local function fail(err)
  vim.notify("msal_example: " .. tostring(err), vim.log.levels.ERROR)
end

--- :MsalToken. Silent first (the cache, or a refresh token), the device
-- code flow only when the authority wants the user; the token goes to the
-- unnamed register (and `+` when there is a clipboard). Returns at once:
-- the result arrives through vim.schedule.
function M.token()
  local ok, a = pcall(get_app)
  if not ok then return fail(a) end
  local nvim = require("msal.nvim")
  a:acquire_token({
    scopes = settings().scopes or { "User.Read" },
    account = a:get_all_accounts()[1],
    device_code_callback = nvim.device_code_callback,
  }, { interaction = "device_code" }):next(function(r)
    vim.fn.setreg('"', r.access_token)
    local reg = '"'
    if vim.fn.has("clipboard") == 1 and pcall(vim.fn.setreg, "+", r.access_token) then reg = "+" end
    -- only the token's start: messages end up in logs and screenshots
    vim.notify(("msal_example: token for %s (%s, expires %s) yanked to register %s: %s…"):format(
      r.account and r.account.username or "?", r.from_cache and "from the cache" or "new",
      os.date("%H:%M", tonumber(r.expires_on) or 0), reg, r.access_token:sub(1, 12)))
  end, fail)
end

--- :MsalSignOut. Forgets every account and its tokens (the next
-- :MsalToken signs in again).
function M.sign_out()
  local ok, a = pcall(get_app)
  if not ok then return fail(a) end
  local accounts, removals = a:get_all_accounts(), {}
  for i, account in ipairs(accounts) do removals[i] = a:remove_account(account) end
  require("msal").all(removals):next(function()
    vim.notify(("msal_example: signed out (%d account%s removed)"):format(#accounts, #accounts == 1 and "" or "s"))
  end, fail)
end

return M
