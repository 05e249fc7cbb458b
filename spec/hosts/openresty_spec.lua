-- msal.openresty inside real nginx workers (Debian's nginx + lua-nginx-module,
-- luajit2, lua-resty-core): silent hits from a lua_shared_dict cache, a slow
-- refresh that leaves its worker responsive, one token request for 50
-- concurrent requests on two workers, a cache that outlives a killed
-- worker, and the named error where a phase cannot wait.
local cjson = require("cjson")
local core = require("msal.core")
local Promise = require("msal.promise")
local entra = require("entra")
local nginx = require("nginx")
local proc = require("proc")

local CLIENT = "lua-msal-openresty"
local HID = entra.UID .. "." .. entra.TENANT

local function authority() return entra.base() .. "/" .. entra.TENANT end

-- The cache of a user signed in at the Entra-like authority, as JSON;
-- without its access tokens when `expired`, so the next silent call refreshes.
local function signed_in_cache(expired)
  return (entra.signed_in_app(CLIENT, authority(), expired)):get_token_cache():serialize()
end

local refresh_requests = entra.refresh_requests


local function seed(srv, json)
  local res = assert(srv:send("/seed?hid=" .. HID, { method = "POST", body = json }):await())
  assert.equal(200, res.status)
end

local function percentile(list, p)
  table.sort(list)
  return list[math.max(1, math.ceil(#list * p))]
end

local function sleep_ms(ms) core.sleep_ms(ms) end

describe("msal.openresty in nginx #host", function()
  local srv

  setup(function()
    srv = nginx.start_app({
      app = "msal_host_app",
      init = ("%q, %q"):format(authority(), CLIENT),
      http = [[
        lua_shared_dict tokens 16m;
        lua_shared_dict locks 1m;
      ]],
      server = [[
        location = /token { content_by_lua_block { require("msal_host_app").token() } }
        location = /seed { content_by_lua_block { require("msal_host_app").seed() } }
        location = /plain { content_by_lua_block { ngx.header["x-worker"] = ngx.worker.pid() ngx.say("ok") } }
        location = /get { content_by_lua_block { ngx.say(ngx.shared.tokens:get(ngx.var.arg_k) or "") } }
        location = /promise_style { content_by_lua_block { require("msal_host_app").promise_style() } }
        location = /phase {
          content_by_lua_block { ngx.say("body") }
          header_filter_by_lua_block { require("msal_host_app").header_filter_await() }
        }
      ]],
    })
  end)

  teardown(function()
    if srv then
      local log = srv:error_log()
      if os.getenv("MSAL_NGINX_LOG") then io.stderr:write(log) end
      srv:stop()
      -- a Lua error in a worker is a failure even when the answer looked right
      assert.falsy(log:find("lua entry thread aborted", 1, true), log)
    end
  end)

  before_each(function() entra.reset() end)

  it("serves a silent hit from the shared dictionary in a handler", function()
    seed(srv, signed_in_cache(false))
    local before = refresh_requests()
    local status, doc = srv:get_json("/token?hid=" .. HID)
    assert.equal(200, status, cjson.encode(doc))
    assert.is_true(doc.from_cache)
    assert.equal(before, refresh_requests())
  end)

  it("answers other requests on the worker while a refresh waits 2 s for the token endpoint", function()
    seed(srv, signed_in_cache(true))
    entra.next({ endpoint = "token", delay_ms = 2000, when = { grant_type = "refresh_token" } })
    local slow = srv:send("/token?mark=1&hid=" .. HID)
    local slow_worker
    for _ = 1, 200 do
      local res = assert(srv:send("/get?k=slow_worker"):await())
      slow_worker = res.body:match("%d+")
      if slow_worker then break end
      sleep_ms(5)
    end
    assert.truthy(slow_worker, "the slow request never started")
    -- batches of 20 concurrent plain requests until 20 landed on that worker
    local on_slow = {}
    local t0 = core.now_ms()
    while #on_slow < 20 and core.now_ms() - t0 < 1500 do
      local batch = {}
      for i = 1, 20 do
        local started = core.now_ms()
        batch[i] = srv:send("/plain"):next(function(res)
          return { worker = res.headers["x-worker"], ms = core.now_ms() - started }
        end)
      end
      for _, r in ipairs(assert(Promise.all(batch):await())) do
        if r.worker == slow_worker then on_slow[#on_slow + 1] = r.ms end
      end
    end
    assert.is_true(#on_slow >= 20, "only " .. #on_slow .. " plain requests reached the refreshing worker")
    assert.equal("pending", slow:state())
    local p95 = percentile(on_slow, 0.95)
    assert.is_true(p95 < 100, ("p95 of plain requests on the refreshing worker: %d ms"):format(p95))
    local res = assert(slow:await())
    assert.equal(200, res.status, res.body)
    assert.is_false(cjson.decode(res.body).from_cache)
  end)

  it("makes one token request for 50 concurrent requests on both workers, and all get its token", function()
    seed(srv, signed_in_cache(true))
    local before = refresh_requests()
    entra.next({ endpoint = "token", delay_ms = 500, when = { grant_type = "refresh_token" } })
    local docs, nworkers = srv:concurrent("/token?hid=" .. HID, 50)
    assert.equal(1, refresh_requests() - before)
    for _, d in ipairs(docs) do assert.equal(docs[1].access_token, d.access_token) end
    assert.equal(2, nworkers)
  end)

  it("keeps the cache when a worker is killed", function()
    seed(srv, signed_in_cache(false))
    assert.equal(200, (srv:get_json("/token?hid=" .. HID)))
    local pids = srv:worker_pids()
    assert.equal(2, #pids)
    proc.run("kill -9 " .. pids[1])
    local respawned
    for _ = 1, 200 do
      local now = srv:worker_pids()
      if #now == 2 and now[1] ~= pids[1] and now[2] ~= pids[1] then respawned = true break end
      sleep_ms(10)
    end
    assert.is_true(respawned, "nginx did not start a new worker")
    local before = refresh_requests()
    for _ = 1, 10 do
      local status, doc = srv:get_json("/token?hid=" .. HID)
      assert.equal(200, status)
      assert.is_true(doc.from_cache)
    end
    assert.equal(before, refresh_requests())
  end)

  it("settles promise-style callbacks in a handler without await", function()
    seed(srv, signed_in_cache(false))
    assert.equal(200, (assert(srv:send("/promise_style?hid=" .. HID):await()).status))
    local got
    for _ = 1, 100 do
      got = assert(srv:send("/get?k=promise_style"):await()).body:match("%S+")
      if got then break end
      sleep_ms(10)
    end
    assert.truthy(got, "the :next callback never ran")
  end)

  it("names the phase where await cannot wait", function()
    seed(srv, signed_in_cache(false))
    assert.equal(200, assert(srv:send("/phase?hid=" .. HID):await()).status)
    local msg = assert(srv:send("/get?k=phase_error"):await()).body
    assert.truthy(msg:find("ClientConfigurationError: unsupported_phase", 1, true), msg)
    assert.truthy(msg:find("header_filter", 1, true), msg)
  end)

  it("waits for Retry-After on nginx's timers and then succeeds", function()
    seed(srv, signed_in_cache(true))
    local before = refresh_requests()
    entra.next({ endpoint = "token", status = 503, headers = { ["Retry-After"] = "1" },
      body = { error = "temporarily_unavailable" }, when = { grant_type = "refresh_token" } })
    local t0 = core.now_ms()
    local slow = srv:send("/token?hid=" .. HID)
    -- meanwhile every plain request is answered at once
    for _ = 1, 10 do
      local started = core.now_ms()
      assert(srv:send("/plain"):await())
      -- a worker blocked in the wait would take the whole second
      assert.is_true(core.now_ms() - started < 500)
    end
    local res = assert(slow:await())
    assert.equal(200, res.status, res.body)
    assert.is_true(core.now_ms() - t0 >= 900)
    assert.equal(2, refresh_requests() - before)
  end)
end)
