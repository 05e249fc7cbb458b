-- The redirect flow in a tiny web handler: /login sends the user to the
-- authority; /callback finishes with handle_redirect_promise; / uses the
-- token silently. The "requests" below are what a browser would send; plug
-- handle() into any server (OpenResty, a CGI, …).
--   scripts/examples
local msal = require("msal")
local example = require("local_authority")

local app = example.app()

--- One request in, one response out: {status, location?, body}.
local function handle(method, target)
  local path = target:match("^[^?]*")
  if path == "/login" then
    local r = assert(app:login_redirect({ scopes = { "User.Read" } }):await())
    return { status = 302, location = r.url }
  elseif path == "/callback" then
    local result, err = app:handle_redirect_promise(target):await()
    if not result then return { status = 400, body = "sign-in failed: " .. tostring(err and err.error_code) } end
    return { status = 302, location = "/" }
  elseif path == "/" and method == "GET" then
    local account = app:get_all_accounts()[1]
    if not account then return { status = 302, location = "/login" } end
    local result, err = app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await()
    if not result then
      if msal.is_interaction_required(err) then return { status = 302, location = "/login" } end
      return { status = 500, body = tostring(err) }
    end
    return { status = 200, body = "hello " .. result.account.username .. " (token from cache: " .. tostring(result.from_cache) .. ")" }
  end
  return { status = 404, body = "not found" }
end

-- A browser visiting the app.
local http = require("msal.transport.curl").new()
local target = "/"
for _ = 1, 6 do
  local res = handle("GET", target)
  print(("GET %s -> %d %s"):format(target:sub(1, 40), res.status, res.body or res.location:sub(1, 60)))
  if res.status == 200 then break end
  if res.location:match("^https?://") then
    -- the authority's page: it signs the user in and redirects back to us
    local page = assert(http:send({ method = "GET", url = res.location }):await())
    target = page.headers.location:gsub("^https?://[^/]+", "")
  else
    target = res.location
  end
end
