-- The API reference and the LuaLS stubs cover the public API: ldoc runs
-- without warnings, every public function has a doc comment above it, and
-- every public function has an annotation in types/.
local api = require("public_api")
local root = os.getenv("MSAL_TEST_ROOT") or "."

local function read(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

local function lines_of(path)
  local t = {}
  for l in (read(path) .. "\n"):gmatch("(.-)\n") do t[#t + 1] = l end
  return t
end

describe("docs", function()
  it("ldoc builds the reference without warnings", function()
    local out = os.tmpname()
    os.remove(out)
    local p = assert(io.popen(("cd %q && env -u LD_PRELOAD ldoc -c config.ld -d %q . 2>&1; echo rc=$?"):format(root, out)))
    local log = p:read("a")
    p:close()
    os.execute(("rm -rf %q"):format(out))
    assert.matches("rc=0", log, 1, true)
    local warnings = {}
    for l in log:gmatch("[^\n]+") do
      if l:find("warning", 1, true) or l:find("not found", 1, true) and not l:find("markdown", 1, true) then
        warnings[#warnings + 1] = l
      end
    end
    assert.same({}, warnings)
  end)

  it("every public function has a doc comment", function()
    local list = api.list()
    assert.is_true(#list > 50)
    local missing, cache = {}, {}
    for _, e in ipairs(list) do
      local info = debug.getinfo(e.fn, "S")
      if info.what == "Lua" and info.source:sub(1, 1) == "@" then
        local file = info.source:sub(2)
        cache[file] = cache[file] or lines_of(file)
        local ls = cache[file]
        local i = info.linedefined - 1
        while i > 0 and ls[i]:match("^%s*$") do i = i - 1 end
        if i < 1 or not ls[i]:match("^%s*%-%-") then
          missing[#missing + 1] = e.name .. " (" .. file:gsub("^.*/lua/", "") .. ":" .. info.linedefined .. ")"
        end
      end
    end
    assert.same({}, missing)
  end)

  it("every public function has a LuaLS annotation in types/", function()
    local types = read(root .. "/types/msal.lua")
    assert.matches("^%-%-%-@meta", types)
    local missing = {}
    for _, e in ipairs(api.list()) do
      local name = e.name:gsub("^msal%.openresty%.", "msal_openresty."):gsub("^msal%.credential_chain%.", "msal_credential_chain.")
      if not types:find("\nfunction " .. name .. "(", 1, true) then missing[#missing + 1] = e.name end
    end
    assert.same({}, missing)
  end)

  it("docs/errors.md lists the codes the code raises (scripts/gen-errors)", function()
    local before = read(root .. "/docs/errors.md")
    local rc = os.execute(("cd %q && env -u LD_PRELOAD scripts/gen-errors"):format(root))
    assert.is_true(rc == true or rc == 0) -- 5.4 gives true, LuaJIT 0
    assert.equal(before, read(root .. "/docs/errors.md"))
  end)
end)
