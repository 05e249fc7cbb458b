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

  it("every public function has an LDoc comment", function()
    local list = api.list()
    assert.is_true(#list > 50)
    local missing = {}
    for _, e in ipairs(list) do
      local src = api.source(e)
      if src.file and not src.lines then
        missing[#missing + 1] = e.name .. " (" .. src.file:gsub("^.*/lua/", "") .. ":" .. src.line .. ")"
      end
    end
    assert.same({}, missing)
  end)

  -- The stubs: types/msal.lua and one file per module (require("msal.nvim")
  -- finds types/msal/nvim.lua), read into {file -> text}.
  local TYPE_FILES = { "msal.lua", "msal/credential_chain.lua", "msal/jwt.lua", "msal/nvim.lua", "msal/openresty.lua" }
  local MODULES = { { "msal.credential_chain.", "msal/credential_chain.lua", "credential_chain." },
    { "msal.openresty.", "msal/openresty.lua", "openresty." }, { "msal.nvim.", "msal/nvim.lua", "nvim." },
    { "msal.jwt.", "msal/jwt.lua", "jwt." } }

  -- Where a public function's stub is: its file and its `function` line's name.
  local function stub_of(name)
    if name:find(":", 1, true) then return "msal.lua", name end
    for _, m in ipairs(MODULES) do
      if name:sub(1, #m[1]) == m[1] then return m[2], m[3] .. name:sub(#m[1] + 1) end
    end
    return "msal.lua", name
  end

  -- {["file|name"] = {annotation lines}} and {class -> {field -> type}}
  local function parse_types(dir)
    local funcs, classes = {}, {}
    for _, f in ipairs(TYPE_FILES) do
      local block, class = {}, nil
      for _, l in ipairs(lines_of(dir .. "/" .. f)) do
        local c = l:match("^%-%-%-@class ([%w_.]+)")
        if c then class = c classes[c] = classes[c] or {} end
        local fname, ftype = l:match("^%-%-%-@field ([%w_]+)%??%s+(%S+)")
        if fname and class then classes[class][fname] = ftype end
        local fn = l:match("^function ([%w_.:]+)%(")
        if fn then
          funcs[f .. "|" .. fn] = block
          block, class = {}, nil
        elseif l:match("^%-%-%-") then
          block[#block + 1] = l
        else
          block = {}
          if l ~= "" and not l:match("^%-%-") then class = nil end
        end
      end
    end
    return funcs, classes
  end

  it("every public function has a typed LuaLS annotation in types/", function()
    local funcs = parse_types(root .. "/types")
    for _, f in ipairs(TYPE_FILES) do
      assert.matches("^%-%-%-@meta", read(root .. "/types/" .. f))
      assert(loadfile(root .. "/types/" .. f)) -- valid Lua, as LuaLS reads it
    end
    local missing, untyped = {}, {}
    for _, e in ipairs(api.list()) do
      local file, name = stub_of(e.name)
      local block = funcs[file .. "|" .. name]
      if not block then
        missing[#missing + 1] = e.name
      else
        -- `any` only where the LDoc says any (a promise's value, a
        -- rejection reason): elsewhere it means the LDoc lacks a type
        local doc = api.doc(e) or { params = {}, returns = {} }
        local said = {}
        for _, p in ipairs(doc.params) do if p.type == "any" then said["param " .. p.name] = true end end
        for _, r in ipairs(doc.returns) do if r.type == "any" then said["return"] = true end end
        for _, l in ipairs(block) do
          local pn = l:match("^%-%-%-@param ([%w_.]+)%??%s+any%f[^%w_]")
          if pn and not said["param " .. pn] then untyped[#untyped + 1] = e.name .. " param " .. pn end
          if l:match("^%-%-%-@return any%f[^%w_]") and not said["return"] then untyped[#untyped + 1] = e.name .. " return" end
        end
      end
    end
    assert.same({}, missing)
    assert.same({}, untyped)
  end)

  it("types/ is what scripts/gen-types makes of the code now", function()
    local dir = os.tmpname()
    os.remove(dir)
    local rc = os.execute(("env -u LD_PRELOAD lua5.4 %q/scripts/gen-types %q"):format(root, dir))
    local diff = io.popen(("diff -ru %q %q 2>&1"):format(root .. "/types", dir)):read("a")
    os.execute(("rm -rf %q"):format(dir))
    assert.is_true(rc == true or rc == 0) -- 5.4 gives true, LuaJIT 0
    assert.equal("", diff, "run scripts/gen-types: types/ is stale")
  end)

  it("the configuration, option and request classes have exactly the keys the checkers accept", function()
    local _, classes = parse_types(root .. "/types")
    local function keys(t)
      local out = {}
      for k in pairs(t) do out[#out + 1] = k end
      table.sort(out)
      return out
    end
    local function same(class, checker)
      assert.is_table(classes[class], class .. " is not declared")
      assert.same(keys(checker), keys(classes[class]), class)
    end
    local config = require("msal.config")
    same("msal.Configuration", config.SCHEMA)
    same("msal.AuthOptions", config.SCHEMA.auth)
    same("msal.OIDCOptions", config.SCHEMA.auth.oidc_options)
    same("msal.SystemOptions", config.SCHEMA.system)
    same("msal.MemoryCacheOptions", config.CACHE_KEYS.memory)
    same("msal.FileCacheOptions", config.CACHE_KEYS.file)
    same("msal.RedisCacheOptions", config.CACHE_KEYS.redis)
    local mi = require("msal.managed_identity.config")
    same("msal.ManagedIdentityConfiguration", mi.SCHEMA)
    same("msal.ManagedIdentityId", mi.SCHEMA.managed_identity)
    same("msal.ManagedIdentitySystemOptions", mi.SCHEMA.system)
    same("msal.AccountFilter", require("msal.cache.account_filter").KEYS)
    same("msal.JwtOptions", require("msal.jwt").OPTIONS)
    same("msal.CredentialChainOptions", require("msal.credential_chain").OPTIONS)
    -- an account has every field a tenant's view of it copies
    for _, f in ipairs(require("msal.cache.accounts").VIEW_FIELDS) do
      assert.is_string(classes["msal.AccountInfo"][f], "msal.AccountInfo." .. f)
    end
    -- each request kind: the `req` of its method is (one of) a class with its keys
    local funcs = parse_types(root .. "/types")
    for kind, m in pairs(require("msal.request_options").METHODS) do
      local found = false
      for _, app in ipairs({ "PublicClientApplication", "ConfidentialClientApplication", "ManagedIdentityApplication" }) do
        for _, l in ipairs(funcs["msal.lua|" .. app .. ":" .. m.name] or {}) do
          local union = l:match("^%-%-%-@param req%??%s+(%S+)")
          for class in (union or ""):gmatch("[^|]+") do
            if classes[class] and table.concat(keys(classes[class]), ",") == table.concat(keys(m.keys), ",") then
              found = true
            end
          end
        end
      end
      assert.is_true(found, "no request class with the keys of " .. kind)
    end
  end)

  it("docs/errors.md lists the codes the code raises (scripts/gen-errors)", function()
    local before = read(root .. "/docs/errors.md")
    local rc = os.execute(("cd %q && env -u LD_PRELOAD scripts/gen-errors"):format(root))
    assert.is_true(rc == true or rc == 0) -- 5.4 gives true, LuaJIT 0
    assert.equal(before, read(root .. "/docs/errors.md"))
  end)
end)
