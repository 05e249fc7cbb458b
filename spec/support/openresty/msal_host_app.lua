-- The nginx side of spec/hosts/openresty_spec.lua and bench/openresty_bench:
-- one application per worker over msal.openresty with a shared-dictionary
-- cache, and the handlers the spec's locations call.
local cjson = require("cjson.safe")
local mo = require("msal.openresty")

local M = {}

local app

--- init_worker: the app of this worker, against `authority` (the
-- Entra-like authority's tenant); `opts.cache` replaces the
-- shared-dictionary cache (e.g. `{location = "redis", url = …}`).
function M.init(authority, client_id, opts)
  opts = opts or {}
  mo.setup()
  app = mo.PublicClientApplication.new({
    auth = { client_id = client_id, authority = authority },
    cache = opts.cache or mo.shared_dict_cache("tokens", { lock_dict = "locks", lock_timeout = opts.lock_timeout or 10 }),
    system = { http_timeout_ms = 10000 },
  })
end

local function reply(status, doc)
  ngx.status = status
  ngx.header["content-type"] = "application/json"
  ngx.header["x-worker"] = ngx.worker.pid()
  ngx.say(cjson.encode(doc))
end

-- The account, as a web app would keep it in its session after sign-in
-- (here: looked up once per worker).
local accounts = {}
local function account_of(hid)
  local a = accounts[hid]
  if not a then
    a = app:get_account({ home_account_id = hid }) or { home_account_id = hid }
    accounts[hid] = a
  end
  return a
end

--- GET /token?hid=…[&scope=…][&mark=1]: a token from acquire_token_silent.
function M.token()
  local args = ngx.req.get_uri_args()
  if args.mark then ngx.shared.tokens:set("slow_worker", ngx.worker.pid()) end
  -- get_account reads the cache: a cache that cannot be read raises there
  local found, account = pcall(account_of, args.hid)
  if not found then
    local e = type(account) == "table" and account or { error_code = "error", error_message = tostring(account) }
    return reply(401, { error = e.error_code, name = e.name, message = e.error_message })
  end
  local result, err = app:acquire_token_silent({ scopes = { args.scope or "User.Read" },
    account = account }):await()
  if not result then
    return reply(401, { error = err.error_code, name = err.name, message = err.error_message })
  end
  reply(200, { access_token = result.access_token, from_cache = result.from_cache })
end

--- GET /hit?hid=…: the bench's handler: the token, nothing else.
function M.hit()
  local result = app:acquire_token_silent({ scopes = { "User.Read" },
    account = account_of(ngx.var.arg_hid) }):await()
  ngx.say(result and result.access_token or "none")
end

--- POST /seed?hid=…: the body (a unified-cache JSON of that account)
-- becomes the account's partition.
function M.seed()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  local tc = app:get_token_cache()
  tc:for_partition({ home_account_id = ngx.var.arg_hid }):access(true, function() tc:deserialize(body) end)
  reply(200, { ok = true })
end

--- GET /promise_style?hid=…: acquire_token_silent with :next and no await;
-- the callback stores the token in the dictionary once it runs.
function M.promise_style()
  ngx.shared.tokens:delete("promise_style")
  app:acquire_token_silent({ scopes = { "User.Read" }, account = account_of(ngx.var.arg_hid) })
    :next(function(r) ngx.shared.tokens:set("promise_style", r.access_token) end)
  ngx.say("started")
end

--- header_filter_by_lua: an await that would need the network, where no
-- light thread can wait; what it raised goes to the dictionary.
function M.header_filter_await()
  local ok, err = pcall(function()
    return app:acquire_token_silent({ scopes = { "Never.Cached" }, account = account_of(ngx.var.arg_hid) }):await()
  end)
  ngx.shared.tokens:set("phase_error", ok and "no error" or (type(err) == "table" and
    (err.name .. ": " .. err.error_code .. ": " .. err.error_message) or tostring(err)))
end

return M
