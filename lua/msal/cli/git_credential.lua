--- `msal git-credential get|store|erase`: git's credential-helper protocol
-- (git-credential(1)), answering an https remote's username and password
-- with an access token: Azure DevOps takes an Entra token as the password.
--
-- git's own settings (`msal.scope`, `msal.clientId`, `msal.tenant`,
-- `msal.authority`, `msal.account`) are matched against the remote's URL
-- (`git config --get-urlmatch`), so each host may have its own; they come
-- after the command line and before the environment.
-- @module msal.cli.git_credential
local context = require("msal.cli.context")
local exit_codes = require("msal.cli.exit_codes")
local system = require("msal.cli.system")

local git_credential = {}

--- Azure DevOps' resource, as Git Credential Manager asks for it.
git_credential.AZURE_DEVOPS_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"

-- git's attribute lines are at most this long here (a URL, a token)
local MAX_LINE = 65536

--- Reads git's attributes: `key=value` lines up to an empty line or the end.
-- @tparam file stdin
-- @treturn table the attributes (a repeated key, e.g. `wwwauth[]`, keeps the first)
function git_credential.read_attributes(stdin)
  local attrs = {}
  for _ = 1, 1000 do
    local line = stdin:read("*l")
    if line == nil then break end
    line = line:gsub("\r$", "")
    if line == "" then break end
    if #line <= MAX_LINE then
      local k, v = line:match("^([^=]+)=(.*)$")
      if k and attrs[k] == nil then attrs[k] = v end
    end
  end
  return attrs
end

-- git's names (lower-cased by git) for the settings it may hold.
local GIT_KEYS = { scope = "scope", clientid = "client_id", tenant = "tenant", authority = "authority",
  account = "account" }

local function url_of(attrs)
  return "https://" .. attrs.host .. "/" .. (attrs.path or "")
end

--- git's `msal.*` settings for a URL, by settings key.
-- @tparam table sys msal.cli.system's table
-- @tparam string url
-- @treturn table
function git_credential.git_settings(sys, url)
  local text = sys.read_command("git config --get-urlmatch msal " .. system.quote(url)) or ""
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local name, value = line:match("^msal%.([%w]+)%s+(.*)$")
    local key = name and GIT_KEYS[name:lower()]
    if key == "scope" then
      local l = out.scope or {}
      for w in value:gmatch("[^%s,]+") do l[#l + 1] = w end
      out.scope = l
    elseif key then
      out[key] = value
    end
  end
  return out
end

--- Before the settings: reads git's attributes, then git's settings for
-- the remote (the layer between the command line and the environment).
-- @treturn table the extra settings layer
-- @treturn table the run's state: `{action, attrs}`
function git_credential.prepare(_, positionals, sys)
  local action = positionals[1]
  local attrs = git_credential.read_attributes(sys.stdin)
  local extra = {}
  if action == "get" and attrs.protocol == "https" and attrs.host and attrs.host ~= "" then
    extra = git_credential.git_settings(sys, url_of(attrs))
  end
  return extra, { action = action, attrs = attrs }
end

-- Drops the cached access tokens whose secret is the refused password.
local function erase(s, out, password)
  local app, err = context.app(s, out)
  if not app then return out:fail(err) end
  local tc = app:get_token_cache()
  local same = require("msal.core").crypto.constant_time_equal
  local ok, rerr = pcall(tc.access, tc, true, function()
    local store = tc.store
    for _, key in ipairs(store:find("AccessToken", { client_id = app.client_id })) do
      local e = store:get("AccessToken", key)
      if e and type(e.secret) == "string" and same(e.secret, password) then store:remove("AccessToken", key) end
    end
  end)
  if not ok then return out:fail(rerr) end
  return exit_codes.OK
end

--- Runs the command.
-- @treturn integer the exit status
function git_credential.run(s, _, out, sys, state)
  local attrs = state.attrs
  if state.action == "store" then return exit_codes.OK end
  if state.action == "erase" then
    if attrs.protocol ~= "https" or not attrs.password or attrs.password == "" then return exit_codes.OK end
    return erase(s, out, attrs.password)
  end
  -- get: only https remotes; for anything else git asks its other helpers
  if attrs.protocol ~= "https" or not attrs.host or attrs.host == "" then return exit_codes.OK end
  local scopes = s.scopes
  if not scopes or #scopes == 0 then scopes = { git_credential.AZURE_DEVOPS_SCOPE } end
  local chain, stop = context.chain(s, out, sys)
  if not chain then return out:fail(stop) end
  local r, err = chain:get_token({ scopes = scopes }):await()
  stop()
  if not r then return out:fail(err) end
  local username = r.account and r.account.username
  if not username or username == "" or username:find("[%z\r\n]") then username = "msal" end
  out:print(("username=%s\npassword=%s\npassword_expiry_utc=%d\n"):format(username, r.access_token,
    r.expires_on or 0))
  return exit_codes.OK
end

return git_credential
