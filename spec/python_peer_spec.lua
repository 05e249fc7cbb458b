-- One cache file shared with msal-python (Debian's python3-msal 1.21 and
-- python3-msal-extensions: the Azure CLI's engine), both signing in to the
-- Entra-like authority (#14 item 3a). msal-python writes the authority's
-- host as the environment (login.microsoftonline.com, where we write
-- login.windows.net), keys refresh tokens with their target and leaves
-- client_info and name out of accounts. A refresh here must update its
-- entries in place: a second copy listed the user twice and left
-- msal-python redeeming its older refresh token, which a rotating server
-- has already consumed.
local msal = require("msal")
local cjson = require("cjson")
local entra = require("entra")
local proc = require("proc")
local files = require("files")

local PY = "/usr/bin/python3" -- Debian's interpreter, where python3-msal is installed
local PEER = (os.getenv("MSAL_TEST_ROOT") or ".") .. "/spec/support/python/entra_peer.py"
local CLIENT = "lua-msal-app"
local PUBLIC = "https://login.microsoftonline.com"
local CLOUD = { ["login.microsoftonline.com"] = true, ["login.windows.net"] = true,
  ["login.microsoft.com"] = true, ["sts.windows.net"] = true }

-- Runs the msal-python peer on the cache file; its decoded answer.
local function python(command, path, ...)
  local args = { PY, PEER, command, path, CLIENT, entra.TENANT, entra.base(), ... }
  for i, a in ipairs(args) do args[i] = proc.quote(a) end
  local out, code, err = proc.run(table.concat(args, " "), { plain = true })
  assert(code == 0, "msal-python failed: " .. tostring(err))
  return cjson.decode(out)
end

-- lua-msal on the same file, at the public cloud's authority with the
-- local server's endpoints (its OpenID configuration as it serves it).
local function lua_app(path)
  local transport = require("msal.transport.curl").new()
  local res = assert(transport:send({ method = "GET",
    url = entra.base() .. "/" .. entra.TENANT .. "/v2.0/.well-known/openid-configuration" }):await())
  assert.equal(200, res.status)
  return msal.PublicClientApplication.new({
    auth = { client_id = CLIENT, authority = PUBLIC .. "/" .. entra.TENANT, authority_metadata = res.body },
    cache = { location = "file", path = path } })
end

-- The file's entries of the user (and the client's app metadata) in the
-- public cloud, by section: {key = entry}.
local function entries_of(path, hid)
  local doc = cjson.decode((assert(files.read(path))))
  local out = {}
  for _, section in ipairs({ "Account", "IdToken", "AccessToken", "RefreshToken", "AppMetadata" }) do
    local mine = {}
    for k, e in pairs(doc[section] or {}) do
      if CLOUD[(e.environment or ""):lower()] and (section == "AppMetadata" and e.client_id == CLIENT
          or section ~= "AppMetadata" and e.home_account_id == hid and (section == "Account" or e.client_id == CLIENT)) then
        mine[k] = e
      end
    end
    out[section] = mine
  end
  return out
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- The refresh tokens the server was sent since its log was cleared.
local function refreshes_sent()
  local rts = {}
  for i, f in ipairs(entra.grant_forms("refresh_token")) do rts[i] = f.refresh_token end
  return rts
end

local function clear_requests()
  local res = assert(require("msal.transport.curl").new():send({ method = "DELETE",
    url = entra.base() .. "/__control/requests" }):await())
  assert(res.status < 300)
end

-- Redeems a refresh token at the server (as another process would); the
-- new refresh token.
local function redeem(rt)
  local network = require("msal.network")
  local res = assert(require("msal.transport.curl").new():send({ method = "POST",
    url = entra.base() .. "/" .. entra.TENANT .. "/oauth2/v2.0/token",
    headers = { ["content-type"] = "application/x-www-form-urlencoded" },
    body = network.form_encode({ { "client_id", CLIENT }, { "grant_type", "refresh_token" },
      { "refresh_token", rt }, { "scope", "User.Read offline_access openid profile" } }) }):await())
  assert.equal(200, res.status, res.body)
  return assert(cjson.decode(res.body).refresh_token)
end

describe("a cache file shared with msal-python", function()
  local dir, remove_dir
  before_each(function()
    dir, remove_dir = proc.tempdir()
    entra.reset()
    -- a refresh token redeemed once is spent: reusing msal-python's older
    -- one fails
    entra.config({ rt_single_use = true })
  end)
  after_each(function()
    remove_dir()
    entra.reset()
  end)

  it("refreshes msal-python's user in its entries, and msal-python then redeems the new refresh token", function()
    local path = dir .. "/msal_token_cache.json"
    local signed = python("sign_in", path, "User.Read")
    local hid = signed.home_account_id
    local before = entries_of(path, hid)
    local _, py_rt = next(before.RefreshToken)
    assert.equal(signed.refresh_token, py_rt.secret)
    local rt_key = next(before.RefreshToken)
    -- msal-python's shape, which the fix must keep
    assert.truthy(rt_key:find("-refreshtoken-" .. CLIENT .. "--user.read", 1, true))
    local _, py_account = next(before.Account)
    assert.is_nil(py_account.client_info)

    local app = lua_app(path)
    local all = app:get_all_accounts()
    assert.equal(1, #all)
    local r = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = all[1], force_refresh = true }):await())
    assert.is_false(r.from_cache)
    assert.same({ signed.refresh_token }, refreshes_sent())
    assert.equal(1, #app:get_all_accounts())
    assert.equal(1, #lua_app(path):get_all_accounts())

    -- one entry per credential, each where msal-python put it
    local after = entries_of(path, hid)
    for _, section in ipairs({ "Account", "IdToken", "AccessToken", "RefreshToken", "AppMetadata" }) do
      assert.equal(1, count(after[section]), section)
      for k in pairs(before[section]) do
        if section ~= "AccessToken" then assert.is_table(after[section][k], section .. " " .. k) end
      end
    end
    local rt = after.RefreshToken[rt_key]
    assert.are_not.equal(signed.refresh_token, rt.secret)
    assert.equal("login.microsoftonline.com", rt.environment)
    local _, at = next(after.AccessToken)
    assert.equal(r.access_token, at.secret)
    assert.equal("login.microsoftonline.com", at.environment)

    -- msal-python redeems the refresh token lua-msal got, and only that
    clear_requests()
    local py = python("silent", path, "User.Read")
    assert.equal(1, py.accounts)
    assert.is_string(py.access_token, cjson.encode(py))
    assert.same({ rt.secret }, refreshes_sent())
  end)

  it("folds the copies an older lua-msal left beside msal-python's entries into them", function()
    local path = dir .. "/msal_token_cache.json"
    local signed = python("sign_in", path, "User.Read")
    local hid = signed.home_account_id
    -- msal-python's refresh token redeemed elsewhere: its entry gets the new
    -- one, the copy below keeps the spent one
    local fresh = redeem(signed.refresh_token)
    -- what a refresh here used to add: the same user, client and cloud under
    -- msal-node's keys and login.windows.net
    local doc = cjson.decode((assert(files.read(path))))
    local store = require("msal.core").store.new()
    for _, section in ipairs({ "Account", "IdToken", "RefreshToken", "AppMetadata" }) do
      for _, e in pairs(doc[section]) do
        local copy = {}
        for k, v in pairs(e) do copy[k] = v end
        copy.environment = "login.windows.net"
        if section == "RefreshToken" then
          e.secret = fresh
          copy.target, copy.last_modification_time = nil, nil
        end
        if section == "Account" then copy.client_info, copy.name = "e30", "Test User" end
        assert(store:put(section, copy))
      end
    end
    for section, entries in pairs(cjson.decode(store:serialize())) do
      for k, e in pairs(entries) do
        assert.is_nil(doc[section][k])
        doc[section][k] = e
      end
    end
    files.write(path, cjson.encode(doc))
    assert.equal(2, count(entries_of(path, hid).RefreshToken))
    clear_requests()

    local app = lua_app(path)
    local all = app:get_all_accounts()
    assert.equal(1, #all)
    assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = all[1], force_refresh = true }):await())
    -- the spent copy (when tried first) is refused and dropped, the next
    -- refresh token is tried
    local used = refreshes_sent()
    assert.equal(fresh, used[#used])
    local after = entries_of(path, hid)
    for _, section in ipairs({ "Account", "IdToken", "AccessToken", "RefreshToken", "AppMetadata" }) do
      assert.equal(1, count(after[section]), section)
      local _, e = next(after[section])
      assert.equal("login.microsoftonline.com", e.environment, section)
    end
    local _, rt = next(after.RefreshToken)
    local _, account = next(after.Account)
    assert.equal("Test User", account.name)

    clear_requests()
    assert.is_string(python("silent", path, "User.Read").access_token)
    assert.same({ rt.secret }, refreshes_sent())
  end)
end)
