--- The managed identity flow: a token for a resource from the cache (MSAL's
-- entries: no account, client_id = the identity, realm "managed_identity"),
-- else from the source the environment names, with its retry policy and,
-- for Azure Arc, its challenge. Past refresh_on the token is fetched again
-- and the cached one served if that fails. Callers asking for the same
-- resource at once share one request.
-- @module msal.flows.managed_identity
local Promise = require("msal.promise")
local core = require("msal.core")
local errors = require("msal.errors")
local fetch_lock = require("msal.cache.fetch_lock")
local network = require("msal.network")
local options = require("msal.request_options")
local sources = require("msal.managed_identity.sources")
local retry = require("msal.managed_identity.retry")
local arc = require("msal.managed_identity.arc")
local response = require("msal.managed_identity.response")

local flow = {}

--- Where MSAL caches managed identity tokens: its placeholder authority
-- `https://login.microsoftonline.com/managed_identity/`.
flow.ENVIRONMENT, flow.REALM = "login.microsoftonline.com", "managed_identity"
local ENV, REALM = flow.ENVIRONMENT, flow.REALM
-- A partitioned cache (Redis, a shared dictionary) keeps these tokens in
-- the realm's partition ("app" mode), or its default one ("account").
local PARTITION = { tenant_id = REALM }

-- Sources that take the hash of a token the resource refused (a claims
-- challenge) and issue a new one (MSAL's list).
local REVOKES = { ServiceFabric = true }

local result_mt = { __tostring = function() return "managed identity token (redacted)" end }

local function result_of(t, resource, from_cache, cid)
  return setmetatable({
    access_token = t.secret, token_type = t.token_type or "Bearer", expires_on = t.expires_on,
    ext_expires_on = t.ext_expires_on or t.expires_on, refresh_on = t.refresh_on, scopes = { resource },
    from_cache = from_cache, correlation_id = cid,
  }, result_mt)
end

-- The cached token of resource: the store's status and the entry's fields.
local function cached(app, resource, now)
  local tc = app.token_cache
  return tc:for_partition(PARTITION):access(false, function()
    local status, at, expires_on, ext, refresh_on =
      tc.store:find_access_token("", ENV, app.client_id, REALM, resource:lower(), now, app.renewal_offset)
    if not at then return status end
    return status, { secret = at.secret, token_type = at.token_type, expires_on = expires_on,
      ext_expires_on = ext, refresh_on = refresh_on }
  end)
end

-- Stores a checked answer as msal-node does (an AccessToken entry only);
-- the entry's key replaces an older token of the same resource.
local function save(app, resource, r, now)
  local t = { secret = r.access_token, token_type = r.token_type, expires_on = now + r.expires_in,
    refresh_on = r.refresh_in and now + r.refresh_in or nil }
  t.ext_expires_on = t.expires_on
  local tc = app.token_cache
  tc:for_partition(PARTITION):access(true, function()
    tc.store:put("AccessToken", {
      home_account_id = "", environment = ENV, credential_type = "AccessToken", client_id = app.client_id,
      secret = t.secret, realm = REALM, target = resource, token_type = t.token_type,
      cached_at = tostring(now), expires_on = tostring(t.expires_on), extended_expires_on = tostring(t.ext_expires_on),
      refresh_on = t.refresh_on and tostring(t.refresh_on) or nil,
    })
  end)
  return t
end

-- The app's source, detected on first use (as MSAL) and kept.
local function source_of(app)
  if app.source then return app.source end
  local src, err = sources.detect(app.config.system, app.identity)
  if not src then return nil, err end
  app.log:info("managed identity source: " .. src.name)
  if src.name == "ServiceFabric" and app.identity.kind ~= "system_assigned" then
    app.log:warning("ServiceFabric: a user-assigned identity is configured in the cluster, not at run time")
  end
  app.source = src
  return src
end

-- One request to the source (and, for Azure Arc, the challenge's second).
local function fetch(app, resource, cid, revoked_sha256)
  return Promise.async(function()
    local src = errors.try(source_of(app))
    local sys = app.config.system
    local now = math.floor(app.clock())
    local req = sources.request(src, resource, app.identity,
      { correlation_id = cid, token_sha256_to_refresh = revoked_sha256,
        client_capabilities = app.config.client_capabilities })
    req.timeout_ms = sys.http_timeout_ms
    local transport = network.transport(app)
    local res = errors.try(retry.send(transport, req, src, sys.disable_internal_retries, app.log):await())
    if src.arc and res.status == 401 then
      req.headers.authorization = errors.try(arc.authorization(res, src.arc.token_dir))
      app.log:info("AzureArc: answering the challenge with the key file")
      res = errors.try(retry.send(transport, req, src, sys.disable_internal_retries, app.log):await())
    end
    local r = errors.try(response.check(src.name, res, now))
    if src.confirm_identity and not response.confirms(app.identity, r.doc) then
      error(errors.ManagedIdentityError("user_assigned_managed_identity_not_confirmed",
        src.name .. ": the answer does not confirm the user-assigned identity asked for (an agent without"
        .. " user-assigned support answers with the machine's own identity)", { source = src.name }), 0)
    end
    return result_of(save(app, resource, r, now), resource, false, cid)
  end)
end

-- Across processes that share the cache, one request too (msal.cache.fetch_lock).
local function locked_fetch(app, resource, cid, force)
  if force then return fetch(app, resource, cid) end
  local whose = { client_id = app.client_id, home_account_id = "", tenant_id = REALM }
  return fetch_lock.fetch(app, table.concat({ "managed_identity", app.client_id, resource:lower() }, "\0"), whose,
    function()
      local status, hit = cached(app, resource, math.floor(app.clock()))
      return status == "hit" and result_of(hit, resource, true, cid) or nil
    end, function() return fetch(app, resource, cid) end)
end

-- The fetch of a resource, shared by its callers while it is in flight.
-- The entry is recorded before fetch runs: a transport may yield inside
-- it (a cosocket suspends the nginx request), and a caller arriving
-- meanwhile must find it.
local function single_flight(app, resource, cid, force)
  local key = (force and "force\0" or "") .. resource
  local p = app.inflight[key]
  if p then return p end
  local settle
  p = Promise.new(function(resolve) settle = resolve end)
  app.inflight[key] = p
  -- handles both outcomes, so this bookkeeping is no unhandled rejection
  local function done() app.inflight[key] = nil end
  p:next(done, done)
  settle(locked_fetch(app, resource, cid, force))
  return p
end

--- acquire_token: the cached token, else one from the source (one request
-- for concurrent callers, in this process and, through the cache plugin's
-- refresh lock, in the others that share the cache).
-- @tparam table app the ManagedIdentityApplication
-- @tparam table req `{resource, force_refresh, claims, correlation_id}`
-- @treturn promise of the result
function flow.acquire(app, req)
  local _, bad = options.check("acquire_token managed_identity", req)
  if bad then return Promise.reject(bad) end
  if req == nil or req.resource == nil or req.resource == "" then
    return Promise.reject(errors.ClientConfigurationError("url_empty_error",
      "acquire_token needs the resource, e.g. {resource = \"https://vault.azure.net\"}"))
  end
  -- MSAL asks for the resource: a scope's /.default goes
  local resource = req.resource:gsub("/%.default$", "")
  local cid = req.correlation_id or core.crypto.uuid4()
  local claims = req.claims ~= nil and req.claims ~= ""
  local status, hit
  if not req.force_refresh then
    local ok
    ok, status, hit = pcall(cached, app, resource, math.floor(app.clock()))
    if not ok then
      return Promise.reject(errors.is_error(status) and status or errors.ClientAuthError("unexpected_error", tostring(status)))
    end
  end
  if claims then
    -- a claims challenge: the token the resource refused is not served again
    local src = app.source or select(1, source_of(app))
    local sha = hit and src and REVOKES[src.name] and core.crypto.sha256_hex(hit.secret) or nil
    app.log:info("claims in the request: skipping the cached token")
    return fetch(app, resource, cid, sha)
  end
  if status == "hit" then
    app.log:verbose("managed identity token served from the cache")
    return Promise.fulfilled(result_of(hit, resource, true, cid))
  end
  local p = single_flight(app, resource, cid, req.force_refresh)
  if status == "refresh_due" and hit then
    -- past refresh_on: a failed refresh leaves a valid token to serve
    p = p:catch(function(err)
      app.log:warning("proactive refresh failed, serving the cached token: " .. tostring(err.error_code))
      return result_of(hit, resource, true, cid)
    end)
  end
  return p
end

return flow
