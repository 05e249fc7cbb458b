-- A transport for unit specs: answers from a script, records every request,
-- and keeps the contract of the real ones (done called once, from the loop,
-- never synchronously). Integration specs use the local providers instead.
local loop = require("msal.loop")
local network = require("msal.network")

local Fake = {}
Fake.__index = Fake

local fake = {}

--- new{ {status=, body=|json=, headers=}, … } or new(function(req) -> res|nil, err)
function fake.new(script)
  return setmetatable({ script = script or {}, requests = {}, n = 0 }, Fake)
end

function Fake:push(res)
  self.script[#self.script + 1] = res
  return self
end

function Fake:request(req, done)
  self.n = self.n + 1
  local rec = { method = req.method, url = req.url, headers = req.headers, body = req.body }
  if req.body and (req.headers or {})["content-type"] and req.headers["content-type"]:find("urlencoded", 1, true) then
    rec.form = network.form_decode(req.body)
  end
  self.requests[#self.requests + 1] = rec
  local res, err
  if type(self.script) == "function" then
    res, err = self.script(rec)
  else
    res = table.remove(self.script, 1)
    if res == nil then err = { kind = "connect", message = "fake transport: no scripted answer" } end
  end
  if res and res.error then res, err = nil, res.error end
  if res then
    local body = res.body
    if res.json then body = require("cjson").encode(res.json) end
    res = { status = res.status or 200, headers = res.headers or { ["content-type"] = "application/json" }, body = body or "" }
  end
  local closed = false
  loop.defer(function()
    if not closed then done(err, res) end
  end)
  return { close = function() closed = true end }
end

return fake
