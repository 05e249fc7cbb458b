--- The desktop meaning of a popup, as msal-node and msal-python do it
-- (RFC 8252): listen on loopback, open the system browser at the authorize
-- URL, wait for the one redirect that carries this request's state, then
-- redeem its code.
-- @module msal.flows.popup
local Promise = require("msal.promise")
local errors = require("msal.errors")
local loopback = require("msal.loopback")
local authorize = require("msal.flows.authorize")

local try = errors.try

local popup = {}

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Opens the system browser: xdg-open on Linux and BSD, open on macOS,
-- start on Windows. The URL is passed as one quoted argument.
function popup.default_open_browser(url)
  local sep = package.config:sub(1, 1)
  local cmd
  if sep == "\\" then
    cmd = 'start "" "' .. url:gsub('"', "%%22") .. '"'
  elseif os.execute("command -v xdg-open >/dev/null 2>&1") then
    cmd = "xdg-open " .. shell_quote(url) .. " >/dev/null 2>&1 &"
  else
    cmd = "open " .. shell_quote(url) .. " >/dev/null 2>&1 &"
  end
  local ok = os.execute(cmd)
  if not (ok == true or ok == 0) then error("cannot start a browser (" .. cmd:match("^%S+") .. ")") end
end

-- The port and path a configured redirect URI fixes (http://localhost:PORT/path).
local function fixed(redirect_uri)
  if type(redirect_uri) ~= "string" then return nil, "/" end
  local host, port, path = redirect_uri:match("^http://([^/:]+):?(%d*)(/?[^?#]*)")
  if not host then return nil, "/" end
  return tonumber(port), path ~= "" and path or "/", host
end

--- Runs the flow.
-- @tparam table req as acquire_token_redirect's, plus `success_template`,
--   `error_template` (HTML), `redirect_uri` and `open_browser(url)`
-- @treturn promise of the result
function popup.acquire(app, req)
  return Promise.async(function()
    req = req or {}
    local state = authorize.new_state(req.state)
    local port, path, host = fixed(req.redirect_uri or app.config.auth.redirect_uri)
    local redirect
    local waiting, handle = loopback.wait_for_redirect({
      expected_state = state, port = port or 0, path = path,
      host = (host == "127.0.0.1" or host == "localhost") and host or "localhost",
      timeout_ms = app.config.system.loopback_timeout * 1000,
      success_page = req.success_template, error_page = req.error_template,
      on_listening = function(uri) redirect = uri end,
    })
    if not redirect then
      local _, err = waiting:await()
      error(err, 0)
    end
    -- on the error paths below the wait is closed on purpose: not an
    -- unhandled rejection
    local function stop()
      waiting:catch(function() end)
      handle:close()
    end
    local ireq = {}
    for k, v in pairs(req) do ireq[k] = v end
    ireq.redirect_uri = redirect
    local begun, err = authorize.begin(app, ireq, "popup", state):await()
    if not begun then
      stop()
      error(err, 0)
    end
    local open = req.open_browser or app.config.system.open_browser or popup.default_open_browser
    local ok, oerr = pcall(open, begun.url)
    if not ok then
      stop()
      error(errors.BrowserAuthError("popup_window_error", "the browser could not be opened: " .. tostring(oerr)), 0)
    end
    local got = try(waiting:await())
    local params = got.params
    if params.error then error(errors.from_server(params), 0) end
    return try(authorize.redeem(app, begun.ctx, params.code, params.state):await())
  end)
end

return popup
