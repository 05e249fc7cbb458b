-- The `msal` command: bin/msal spawned with the interpreter running this
-- spec (lua5.4, or luajit in the LuaJIT run) against the local Entra-like
-- authority (MSAL_TEST_ENTRA) and, for a sign-in in headless Chromium, the
-- local OpenID provider (MSAL_TEST_OIDC); plus its parts in-process
-- (settings, output formats, the countdown, msal.credential_chain).
--
-- Every child gets a clean environment (env -i): HOME is the test's own
-- directory, so no user configuration, cache, CI or DISPLAY leaks in.
local cjson = require("cjson")
local core = require("msal.core")
local entra = require("entra")
local files = require("files")
local msal = require("msal")
local proc = require("proc")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local BIN = ROOT .. "/bin/msal"
local CLIENT = "lua-msal-app"
local DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798/.default"

local function authority() return entra.base() .. "/" .. entra.TENANT end

-- What a child keeps from this process: the sanitizer run's preload and
-- options (a Lua child loads the ASan build of msal.core), and PATH.
local PASS = { "PATH", "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "MSAL_TEST_ASAN" }

-- opts: `plain` drops the ASan preload; `no_module_paths` leaves out this
-- process's LUA_PATH and LUA_CPATH.
local function env_words(home, vars, opts)
  opts = opts or {}
  local w = { "env", "-i" }
  local function add(k, v) w[#w + 1] = proc.quote(k .. "=" .. v) end
  for _, k in ipairs(PASS) do
    local v = os.getenv(k)
    if v and not (opts.plain and k == "LD_PRELOAD") then add(k, v) end
  end
  if not opts.no_module_paths then
    add(jit and "LUA_PATH" or "LUA_PATH_5_4", package.path)
    add(jit and "LUA_CPATH" or "LUA_CPATH_5_4", package.cpath)
  end
  add("HOME", home)
  -- on an Azure VM the chain would probe the real IMDS
  if not (vars and vars.MSAL_IMDS_PROBE) then add("MSAL_IMDS_PROBE", "never") end
  local keys = {}
  for k in pairs(vars or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do add(k, vars[k]) end
  return table.concat(w, " ")
end

local function msal_cmd(home, argstr, vars)
  return env_words(home, vars) .. " " .. proc.LUA .. " " .. proc.quote(BIN) .. " " .. argstr
end

-- Runs `msal <argstr>`; returns stdout, the exit status, stderr.
local function run(home, argstr, opts)
  opts = opts or {}
  local cmd = msal_cmd(home, argstr, opts.env)
  if opts.stdin then
    files.write(home .. "/stdin", opts.stdin)
    cmd = cmd .. " <" .. proc.quote(home .. "/stdin")
  end
  return proc.run(cmd)
end

-- `msal` in the background (it waits for a sign-in), stdout and stderr
-- apart.
local bg_runs = 0
local function start(home, argstr, vars)
  bg_runs = bg_runs + 1
  local base = home .. "/bg" .. bg_runs
  local line = "( " .. msal_cmd(home, argstr, vars) .. " >" .. proc.quote(base .. ".out") .. " 2>" ..
    proc.quote(base .. ".err") .. " </dev/null; echo $? >" .. proc.quote(base .. ".rc.tmp") .. "; mv " ..
    proc.quote(base .. ".rc.tmp") .. " " .. proc.quote(base .. ".rc") .. ") </dev/null >/dev/null 2>&1 &"
  local ok = os.execute(line)
  assert(ok == true or ok == 0, "cannot start " .. line)
  local h = {}
  function h.stderr() return files.read(base .. ".err") or "" end
  function h.stdout() return files.read(base .. ".out") or "" end
  -- waits until stderr matches pattern; returns the captures
  function h.shows(pattern, limit_ms)
    local deadline = core.now_ms() + (limit_ms or 20000)
    while core.now_ms() < deadline do
      local caps = { h.stderr():match(pattern) }
      if caps[1] then return (table.unpack or unpack)(caps) end
      if files.exists(base .. ".rc") then break end
      core.sleep_ms(50)
    end
    error("msal never showed " .. pattern .. "; stderr:\n" .. h.stderr() .. "\nstdout:\n" .. h.stdout())
  end
  function h.wait(limit_ms)
    local deadline = core.now_ms() + (limit_ms or 30000)
    while core.now_ms() < deadline do
      local rc = files.read(base .. ".rc")
      if rc then return tonumber(rc:match("%d+")) end
      core.sleep_ms(20)
    end
    error("msal did not exit; stderr:\n" .. h.stderr())
  end
  return h
end

local function control(path, body)
  local res = assert(require("msal.transport.curl").new():send({ method = "POST", url = entra.base() .. path,
    headers = { ["content-type"] = "application/json" }, body = cjson.encode(body) }):await())
  assert(res.status == 200, path .. " answered " .. res.status .. ": " .. res.body)
end

-- The options pointing msal at the local authority and the test's cache.
local function at(home, extra)
  return ("--authority %s --client-id %s --cache %s %s"):format(proc.quote(authority()), CLIENT,
    proc.quote(home .. "/cache/token_cache.json"), extra or "")
end

-- Signs the default user in through the library, saving into the cache
-- file the command reads.
local function seed(home, scopes)
  local app = msal.PublicClientApplication.new({ auth = { client_id = CLIENT, authority = authority() },
    cache = { location = "file", path = home .. "/cache/token_cache.json" } })
  return entra.sign_in(app, scopes), app
end

local function one_line(s)
  return s:match("^[^\n]+\n$") ~= nil
end

local home, remove_home
local function fresh()
  entra.reset()
  home, remove_home = proc.tempdir()
  assert(os.execute("mkdir -m 700 " .. proc.quote(home .. "/cache")))
end
local function cleanup()
  if remove_home then remove_home() end
end

describe("msal token", function()
  before_each(fresh)
  after_each(cleanup)

  it("signs in with a device code from an empty cache, then answers from the cache without a request", function()
    -- the default cache, under XDG_CACHE_HOME, in a directory not made yet
    local env = { XDG_CACHE_HOME = home .. "/xdg-cache" }
    local src = ("--authority %s --client-id %s"):format(proc.quote(authority()), CLIENT)
    local h = start(home, "token --scope User.Read --interactive device-code " .. src, env)
    local url, code = h.shows("open the page (http://%S+) and enter the code (%S+) ")
    assert.matches("/devicelogin$", url)
    control("/__control/device", { user_code = code, action = "approve" })
    local rc = h.wait()
    local out, err = h.stdout(), h.stderr()
    assert.equal(0, rc, err)
    assert.is_true(one_line(out), "stdout: " .. out)
    local token = out:sub(1, -2)
    assert.is_nil(err:find(token, 1, true), "the token is on stderr")
    assert.matches("expires in 1[45]:%d%d", err) -- the countdown
    local cache = cjson.decode(files.read(home .. "/xdg-cache/msal/token_cache.json"))
    assert.is_not_nil(next(cache.RefreshToken), "the sign-in was not saved")
    assert.equal("drwx------", (proc.run("ls -ld " .. proc.quote(home .. "/xdg-cache/msal"), { plain = true }):sub(1, 10)))

    local before = #entra.requests()
    local again, rc2, err2 = run(home, "token --scope User.Read --interactive never " .. src, { env = env })
    assert.equal(0, rc2, err2)
    assert.equal(token .. "\n", again)
    assert.equal("", err2)
    assert.equal(before, #entra.requests(), "the cache hit made a request")
    assert.equal(0, entra.refresh_requests())
  end)

  it("exits 3 with one line when the cache cannot answer and interaction is not allowed", function()
    local out, rc, err = run(home, "token -s User.Read --interactive never " .. at(home))
    assert.equal(3, rc)
    assert.equal("", out)
    assert.is_true(one_line(err), err)
    assert.matches("^msal: error: InteractionRequiredAuthError: no_account: ", err)
    -- CI set means never by default
    out, rc, err = run(home, "token -s User.Read " .. at(home), { env = { CI = "true" } })
    assert.equal(3, rc)
    assert.equal("", out)
    assert.is_true(one_line(err), err)
    assert.same({}, entra.requests())
  end)

  it("prints only the token on stdout in every output format", function()
    local r = seed(home)
    local token = r.access_token
    local expected = {
      token = token .. "\n",
      header = "Authorization: Bearer " .. token .. "\n",
    }
    for _, verbose in ipairs({ "", "--verbose" }) do
      for _, fmt in ipairs({ "token", "header", "json", "env" }) do
        local out, rc, err = run(home, ("token -s User.Read -o %s --interactive never %s %s"):format(fmt, verbose, at(home)))
        assert.equal(0, rc, err)
        assert.is_nil(err:find(token, 1, true), "the token is on stderr (" .. fmt .. verbose .. ")")
        if verbose == "" then assert.equal("", err) else assert.matches("%[info%] credential chain: token from shared_cache", err) end
        if expected[fmt] then
          assert.equal(expected[fmt], out)
        elseif fmt == "json" then
          local doc = cjson.decode(out)
          assert.equal(token, doc.access_token)
          assert.equal("Bearer", doc.token_type)
          assert.same({ "User.Read" }, doc.scopes)
          assert.equal("test.user@example.com", doc.account.username)
          assert.equal(r.expires_on, doc.expires_on)
        else
          local vars = {}
          for k, v in out:gmatch("([A-Z_]+)=([^\n]*)\n") do vars[k] = v end
          assert.equal(token, vars.MSAL_ACCESS_TOKEN)
          assert.equal("Bearer", vars.MSAL_TOKEN_TYPE)
          assert.equal(tostring(r.expires_on), vars.MSAL_EXPIRES_ON)
          assert.equal("test.user@example.com", vars.MSAL_ACCOUNT)
          -- every line is NAME=value: sh can eval it
          assert.is_nil(out:gsub("MSAL_[A-Z_]+=[^\n]*\n", ""):match("%S"))
        end
      end
    end
  end)

  it("exits 2 on usage errors, with one line", function()
    local cases = {
      { "token --bogus " .. at(home), "unknown option %-%-bogus" },
      { "token " .. at(home), "a scope is needed" },
      { "token -s x -o xml " .. at(home), "%-%-output must be one of" },
      { "token -s x --tenant t " .. at(home), "%-%-tenant or %-%-authority" },
      { "token -s x --cache a --azure-cli-cache " .. at(home):gsub("%-%-cache %S+", ""), "not both" },
      { "frobnicate", "unknown command" },
      { "", "no command given" },
      { "decode a b", "unexpected argument" },
      { "git-credential fetch", "get, store, erase" },
    }
    for _, c in ipairs(cases) do
      local out, rc, err = run(home, c[1])
      assert.equal(2, rc, c[1] .. ": " .. err)
      assert.equal("", out)
      assert.is_true(one_line(err), err)
      assert.matches("^msal: error: usage: .*" .. c[2], err)
    end
    local _, rc, err = run(home, "token -s x " .. at(home), { env = { MSAL_INTERACTIVE = "sometimes" } })
    assert.equal(2, rc)
    assert.matches("MSAL_INTERACTIVE must be one of browser, device%-code, never, not 'sometimes'", err)
  end)

  it("exits 4 when the authority refuses", function()
    entra.next({ endpoint = "devicecode", canned = "invalid_scope" })
    local out, rc, err = run(home, "token -s User.Read --interactive device-code " .. at(home))
    assert.equal(4, rc, err)
    assert.equal("", out)
    assert.is_true(one_line(err), err)
    assert.matches("^msal: error: ServerError: invalid_scope: AADSTS70011", err)
    -- and a refused refresh (a scope the cache has no token for)
    seed(home)
    entra.next({ endpoint = "token", canned = "invalid_client", when = { grant_type = "refresh_token" } })
    out, rc, err = run(home, "token -s api://other/.default --interactive never " .. at(home))
    assert.equal(4, rc, err)
    assert.equal("", out)
    assert.matches("^msal: error: ServerError: invalid_client: ", err)
  end)

  it("exits 5 when the authority cannot be reached", function()
    -- a port the kernel gave and took back: nothing listens there
    local port = assert(proc.run("node -e " .. proc.quote("const s = require('net').createServer(); " ..
      "s.listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })"), { plain = true }):match("%d+"))
    local closed = ("http://127.0.0.1:%s/%s"):format(port, entra.TENANT)
    local out, rc, err = run(home, ("token -s User.Read --interactive device-code --authority %s --cache %s")
      :format(closed, proc.quote(home .. "/cache/c.json")))
    assert.equal(5, rc, err)
    assert.equal("", out)
    assert.is_true(one_line(err), err)
    assert.matches("^msal: error: ClientAuthError: network_error: ", err)
  end)

  it("exits 6 on an unreadable cache and leaves the file as it was", function()
    local path = home .. "/cache/token_cache.json"
    files.write(path, "{ this is not a token cache")
    assert(os.execute("chmod 600 " .. proc.quote(path)))
    for _, cmd in ipairs({ "token -s User.Read --interactive device-code ", "accounts ", "logout --all " }) do
      local out, rc, err = run(home, cmd .. at(home))
      assert.equal(6, rc, cmd .. err)
      assert.equal("", out)
      assert.is_true(one_line(err), err)
      assert.matches("^msal: error: ClientAuthError: invalid_cache: ", err)
    end
    assert.equal("{ this is not a token cache", files.read(path))
    assert.same({}, entra.requests())
  end)

  it("exits 6 when the cache file's directory cannot be made, saying which part is in the way", function()
    -- a link to nowhere: the directory is missing, and cannot be made there
    assert(os.execute("ln -s " .. proc.quote(home .. "/nowhere") .. " " .. proc.quote(home .. "/link")))
    -- it fails before any request: no authority is asked
    local out, rc, err = run(home, "token -s User.Read --interactive never --authority https://127.0.0.1:9/t" ..
      " --cache " .. proc.quote(home .. "/link/sub/token_cache.json"))
    assert.equal(6, rc, err)
    assert.equal("", out)
    assert.is_true(one_line(err), err)
    assert.matches("^msal: error: ClientAuthError: cache_io_error: cannot make the cache directory: cannot stat " ..
      home:gsub("%p", "%%%0") .. "/link: ", err)
    assert.is_nil(require("msal.core").fileio.stat(home .. "/nowhere"))
  end)

  it("exits 7 when the cache holds several accounts and none is named; --account picks one", function()
    seed(home)
    entra.config({ users = { { upn = "second@example.com", name = "Second", oid = "00000000-0000-0000-aaaa-000000000009",
      tid = entra.TENANT } } })
    local second = seed(home)
    local out, rc, err = run(home, "token -s User.Read --interactive never " .. at(home))
    assert.equal(7, rc, err)
    assert.equal("", out)
    assert.matches("^msal: error: ClientAuthError: credential_unavailable: .*2 accounts in the token cache", err)
    out, rc, err = run(home, "token -s User.Read --interactive never --account SECOND@example.com " .. at(home))
    assert.equal(0, rc, err)
    assert.equal(second.access_token .. "\n", out)
  end)

  it("answers a cache hit without loading libcurl, OpenSSL, lua-cjson or the flows it does not run", function()
    -- what keeps a hit's process short (bench/README.md, the command line)
    local r = seed(home)
    files.write(home .. "/probe.lua", [[
      local rc = require("msal.cli.main").run(arg)
      local names = {}
      for k in pairs(package.loaded) do names[#names + 1] = k end
      io.stderr:write(table.concat(names, " "), "\n")
      os.exit(rc)]])
    local out, rc, err = proc.run(env_words(home) .. " " .. proc.LUA .. " " .. proc.quote(home .. "/probe.lua") ..
      " token -s User.Read --interactive never " .. at(home))
    assert.equal(0, rc, err)
    assert.equal(r.access_token .. "\n", out)
    local loaded = {}
    for name in err:gmatch("%S+") do loaded[name] = true end
    assert.is_true(loaded["msal.flows.silent"], err)
    for _, name in ipairs({ "msal.core.http", "msal.core.crypto", "msal.core.redis", "msal.transport.curl", "msal.flows.device_code", "msal.flows.popup",
        "msal.flows.authorize", "msal.loopback", "msal.flows.client_credential", "msal.jwt",
        "msal.flows.managed_identity", "msal.managed_identity.sources", "msal.flows.refresh",
        "msal.application.confidential", "msal.application.managed_identity", "cjson", "cjson.safe" }) do
      assert.is_nil(loaded[name], name .. " was loaded")
    end
  end)

  it("run 8 at once on one cache file, makes one token request per needed refresh and corrupts nothing", function()
    -- a redeemed refresh token is refused, so a second refresh of the same
    -- token would fail; each takes 150 ms, so all eight are waiting then
    entra.config({ rt_single_use = true })
    entra.next({ endpoint = "token", when = { grant_type = "refresh_token" }, override = {}, delay_ms = 150,
      count = 1000 })
    seed(home)
    local path = home .. "/cache/token_cache.json"
    for round = 1, 3 do
      local doc = cjson.decode(files.read(path))
      doc.AccessToken = {}
      files.write(path, cjson.encode(doc))
      local before = entra.refresh_requests()
      local runs = {}
      for i = 1, 8 do runs[i] = start(home, "token -s User.Read --interactive never " .. at(home)) end
      local token
      for i, h in ipairs(runs) do
        local rc = h.wait(60000)
        assert.equal(0, rc, "round " .. round .. ", run " .. i .. ": " .. h.stderr())
        local out = h.stdout()
        assert.is_true(one_line(out), out)
        token = token or out
        assert.equal(token, out, "round " .. round .. ": two runs printed different tokens")
      end
      assert.equal(1, entra.refresh_requests() - before, "round " .. round)
      doc = cjson.decode(files.read(path))
      local function count(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end
      assert.equal(1, count(doc.Account), "round " .. round)
      assert.equal(1, count(doc.RefreshToken), "round " .. round)
      assert.equal(1, count(doc.AccessToken), "round " .. round)
      local _, at_entry = next(doc.AccessToken)
      assert.equal(token, at_entry.secret .. "\n")
    end
  end)

  it("gets an app token for a service principal from the environment, and never shows its secret", function()
    local env = { AZURE_CLIENT_ID = "lua-msal-confidential", AZURE_TENANT_ID = entra.TENANT,
      AZURE_AUTHORITY_HOST = entra.base(), AZURE_CLIENT_SECRET = "s3cret" }
    local out, rc, err = run(home, "token -s https://graph.microsoft.com/.default --interactive never -v " .. at(home),
      { env = env })
    assert.equal(0, rc, err)
    assert.matches("^[%w%-_%.]+\n$", out)
    assert.matches("token from environment", err)
    assert.is_nil(err:find("s3cret", 1, true))
  end)

  it("moves past a managed identity it cannot reach, to the cache", function()
    local r = seed(home)
    local env = { IDENTITY_ENDPOINT = "http://127.0.0.1:1/msi", IDENTITY_HEADER = "h" }
    local out, rc, err = run(home, "token -s User.Read --interactive never -v " .. at(home), { env = env })
    assert.equal(0, rc, err)
    assert.equal(r.access_token .. "\n", out)
    assert.matches("managed_identity: the App Service endpoint cannot be reached", err)
    -- chosen alone, it says so and exits 7
    out, rc, err = run(home, "token -s https://vault.azure.net/.default --credential managed_identity " .. at(home),
      { env = env })
    assert.equal(7, rc, err)
    assert.equal("", out)
    assert.is_true(one_line(err), err)
    assert.matches("cannot be reached", err)
  end)

  it("takes options from flags, then the environment, then the configuration file", function()
    local r = seed(home)
    local closed = "http://127.0.0.1:1/" .. entra.TENANT
    files.write(home .. "/cfg.json", cjson.encode({ scope = "User.Read", authority = authority(), client_id = CLIENT,
      interactive = "never", cache = home .. "/cache/token_cache.json", output = "header" }))
    local env = { XDG_CONFIG_HOME = home .. "/xdg" }
    assert(os.execute("mkdir -p " .. proc.quote(home .. "/xdg/msal")))
    os.rename(home .. "/cfg.json", home .. "/xdg/msal/config.json")
    local out, rc, err = run(home, "token", { env = env })
    assert.equal(0, rc, err)
    assert.equal("Authorization: Bearer " .. r.access_token .. "\n", out)
    -- the environment beats the file: another authority finds no token
    env.MSAL_AUTHORITY = closed
    out, rc, err = run(home, "token", { env = env })
    assert.equal(3, rc, err)
    -- the flag beats the environment
    out, rc, err = run(home, "token -o token --authority " .. proc.quote(authority()), { env = env })
    assert.equal(0, rc, err)
    assert.equal(r.access_token .. "\n", out)
    -- a tenant replaces the authority's tenant at a lower level
    out, rc, err = run(home, "token --tenant " .. entra.TENANT, { env = { XDG_CONFIG_HOME = home .. "/xdg",
      MSAL_AUTHORITY = entra.base() .. "/organizations" } })
    assert.equal(0, rc, err)
    -- a configuration file is data: an unknown key is refused
    files.write(home .. "/xdg/msal/config.json", '{"scope": "User.Read", "exec": "rm -rf /"}')
    out, rc, err = run(home, "token", { env = { XDG_CONFIG_HOME = home .. "/xdg" } })
    assert.equal(2, rc)
    assert.matches("unknown key 'exec'", err)
    files.write(home .. "/xdg/msal/config.json", "return { scope = 'x' }")
    out, rc, err = run(home, "token", { env = { XDG_CONFIG_HOME = home .. "/xdg" } })
    assert.equal(2, rc)
    assert.matches("is not a JSON object", err)
    out, rc, err = run(home, "token --config " .. proc.quote(home .. "/none.json"))
    assert.equal(2, rc)
    assert.matches("cannot read the configuration file", err)
  end)

  it("colors stderr only for a terminal, and never with NO_COLOR", function()
    local function tty(vars, flags)
      -- script(1) gives the command a terminal; its output is the terminal's
      local out = proc.run("script -qefc " .. proc.quote(msal_cmd(home, "token " .. (flags or ""), vars)) .. " /dev/null",
        { plain = true })
      assert.matches("a scope is needed", out)
      return out
    end
    assert.matches("\27[31m", tty({}), 1, true)
    assert.is_nil(tty({ NO_COLOR = "1" }):find("\27[", 1, true))
    assert.is_nil(tty({}, "--color never"):find("\27[", 1, true))
    assert.matches("\27[31m", tty({ NO_COLOR = "1" }, "--color always"), 1, true)
    local _, rc, err = run(home, "token")
    assert.equal(2, rc)
    assert.is_nil(err:find("\27[", 1, true), "colors on a stderr that is not a terminal")
  end)
end)

describe("msal token in headless Chromium", function()
  before_each(fresh)
  after_each(cleanup)

  it("signs in with a device code on the OpenID provider's pages, then answers from the cache", function()
    local issuer = require("oidc").base()
    local script = ROOT .. "/spec/support/node/browser_login.js"
    assert(files.exists("/usr/bin/chromium"), "/usr/bin/chromium is missing: scripts/setup installs it")
    local args = ("token -s api.read --protocol-mode oidc --authority %s --client-id lua-msal-public --cache %s")
      :format(proc.quote(issuer), proc.quote(home .. "/cache/oidc.json"))
    local h = start(home, args .. " --interactive device-code")
    local url, code = h.shows("open (http://%S+) and enter the code (%S+)")
    local browser = proc.background("node " .. proc.quote(script) .. " " .. proc.quote(url) .. " --user carol --device-code " ..
      proc.quote(code), home .. "/browser", { plain = true })
    local brc = browser:wait(40000)
    assert.equal(0, brc, browser:output())
    local rc = h.wait(30000)
    assert.equal(0, rc, h.stderr())
    local out = h.stdout()
    assert.is_true(one_line(out), out)
    -- silently now: the provider's access tokens live 300 s, inside the
    -- renewal offset, so this is the refresh token's work (the Entra test
    -- above shows a hit that makes no request)
    local out2, rc2, err2 = run(home, args .. " --interactive never")
    assert.equal(0, rc2, err2)
    assert.is_true(one_line(out2), out2)
    assert.equal("", err2)
  end)
end)

describe("msal token in the system browser", function()
  before_each(fresh)
  after_each(cleanup)

  it("signs in through the loopback redirect in headless Chromium, the URL shown on stderr", function()
    local issuer = require("oidc").base()
    -- the "system browser": an xdg-open first on PATH that hands the URL
    -- to headless Chromium
    local script = ROOT .. "/spec/support/node/browser_login.js"
    assert(os.execute("mkdir -p " .. proc.quote(home .. "/bin")))
    files.write(home .. "/bin/xdg-open", "#!/bin/sh\nunset LD_PRELOAD\nexec node " .. proc.quote(script) ..
      " --user dave \"$1\" >" .. proc.quote(home .. "/browser.out") .. " 2>&1\n")
    assert(os.execute("chmod +x " .. proc.quote(home .. "/bin/xdg-open")))
    local args = ("token -s api.read --protocol-mode oidc --authority %s --client-id lua-msal-public --cache %s")
      :format(proc.quote(issuer), proc.quote(home .. "/cache/oidc.json"))
    local h = start(home, args .. " --interactive browser", { PATH = home .. "/bin:" .. os.getenv("PATH") })
    local rc = h.wait(45000)
    local err = h.stderr()
    assert.equal(0, rc, err .. "\nbrowser: " .. tostring(files.read(home .. "/browser.out")))
    assert.matches("msal: signing in in the browser; if it did not open, go to: " .. issuer:gsub("%p", "%%%0") ..
      "/auth%?", err)
    -- the browser finishes on its own, after msal had the redirect
    local deadline = core.now_ms() + 15000
    while not (files.read(home .. "/browser.out") or ""):find("browser_login: ", 1, true) and core.now_ms() < deadline do
      core.sleep_ms(50)
    end
    assert.matches("landed on the loopback redirect", files.read(home .. "/browser.out"))
    local out = h.stdout()
    assert.is_true(one_line(out), out)
    assert.is_nil(err:find(out:sub(1, -2), 1, true))
    local accounts = run(home, "accounts --protocol-mode oidc --authority " .. proc.quote(issuer) ..
      " --client-id lua-msal-public --cache " .. proc.quote(home .. "/cache/oidc.json"))
    assert.matches("^dave\t", accounts)
  end)
end)

describe("msal installed in a rocks tree", function()
  before_each(fresh)
  after_each(cleanup)

  it("starts the Lua its C core was built for, with the tree's modules, and no LUA_PATH", function()
    -- the layout luarocks makes: bin/msal as it is (no wrapper), the modules
    -- and the C core under this interpreter's ABI
    local abi, tree = _VERSION:match("%d+%.%d+"), home .. "/tree"
    local core_dir = assert(package.searchpath("msal.core", package.cpath)):match("^(.*)/core%.so$")
    local q = proc.quote
    local _, code = proc.sh(("mkdir -p %s %s %s && cp %s %s && ln -s %s %s && ln -s %s %s"):format(
      q(tree .. "/bin"), q(tree .. "/share/lua/" .. abi), q(tree .. "/lib/lua/" .. abi), q(BIN), q(tree .. "/bin/msal"),
      q(ROOT .. "/lua/msal"), q(tree .. "/share/lua/" .. abi .. "/msal"), q(core_dir), q(tree .. "/lib/lua/" .. abi .. "/msal")),
      { plain = true })
    assert.equal(0, code)
    -- run as a command: its shell part picks the interpreter
    local out, status, err = proc.run(env_words(home, nil, { no_module_paths = true }) .. " " ..
      q(tree .. "/bin/msal") .. " --version")
    assert.equal(0, status, err)
    assert.equal("msal (lua-msal) " .. msal._VERSION .. " on " .. (jit and jit.version or _VERSION) .. "\n", out)
    assert.equal("", err)
  end)
end)

describe("msal accounts and logout", function()
  before_each(fresh)
  after_each(cleanup)

  it("lists the cached accounts and removes them", function()
    local out, rc = run(home, "accounts " .. at(home))
    assert.equal(0, rc)
    assert.equal("", out)
    local r = seed(home)
    out, rc = run(home, "accounts " .. at(home))
    assert.equal(0, rc)
    assert.equal(("test.user@example.com\t%s\t%s\n"):format(r.account.home_account_id, entra.TENANT), out)
    out, rc = run(home, "accounts -o json " .. at(home))
    assert.equal(0, rc)
    local list = cjson.decode(out)
    assert.equal(1, #list)
    assert.equal("test.user@example.com", list[1].username)
    local err
    out, rc, err = run(home, "logout --account nobody@example.com " .. at(home))
    assert.equal(1, rc)
    assert.matches("no_account", err)
    out, rc, err = run(home, "logout " .. at(home))
    assert.equal(0, rc, err)
    assert.equal("", out)
    assert.matches("removed the account", err)
    out = run(home, "accounts " .. at(home))
    assert.equal("", out)
    local cache = cjson.decode(files.read(home .. "/cache/token_cache.json"))
    assert.same({}, cache.AccessToken)
    assert.same({}, cache.RefreshToken)
    assert.same({}, entra.requests("logout"))
  end)

  it("logs out every account with --all, and asks which one when there are several", function()
    seed(home)
    entra.config({ users = { { upn = "second@example.com", name = "Second", oid = "00000000-0000-0000-aaaa-000000000009",
      tid = entra.TENANT } } })
    seed(home)
    local _, rc, err = run(home, "logout " .. at(home))
    assert.equal(2, rc)
    assert.matches("2 accounts in the cache: give %-%-account USER or %-%-all", err)
    _, rc, err = run(home, "logout --all " .. at(home))
    assert.equal(0, rc, err)
    assert.equal("", (run(home, "accounts " .. at(home))))
  end)
end)

describe("msal decode", function()
  before_each(fresh)
  after_each(cleanup)

  it("shows a real token's header and claims, from the argument or stdin", function()
    seed(home)
    local cache = cjson.decode(files.read(home .. "/cache/token_cache.json"))
    local _, idt = next(cache.IdToken)
    for _, how in ipairs({ "arg", "stdin" }) do
      local out, rc, err
      if how == "arg" then
        out, rc, err = run(home, "decode " .. proc.quote(idt.secret))
      else
        out, rc, err = run(home, "decode -", { stdin = idt.secret .. "\n" })
      end
      assert.equal(0, rc, err)
      local doc = cjson.decode(out)
      assert.equal("RS256", doc.header.alg)
      assert.equal(entra.TENANT, doc.claims.tid)
      assert.equal(CLIENT, doc.claims.aud)
      assert.equal("test.user@example.com", doc.claims.preferred_username)
      -- integers stay integers
      assert.matches('"exp": %d+,?\n', out)
    end
  end)

  it("says clearly when the input is no JWT", function()
    for _, input in ipairs({ "at.2.opaque-token", "a.b", "", "e30.e30" }) do
      local out, rc, err = run(home, "decode -", { stdin = input })
      assert.equal(2, rc, input)
      assert.equal("", out)
      assert.is_true(one_line(err), err)
      assert.matches("^msal: error: ClientAuthError: token_parsing_error: not a JWT", err)
    end
  end)
end)

describe("msal git-credential", function()
  before_each(fresh)
  after_each(cleanup)

  -- git, with this test's HOME and no system configuration, the helper
  -- set to bin/msal and pointed at the local authority by the environment.
  -- git itself runs without the sanitizer run's preload (a leak report of
  -- git's would be its exit status); the helper, a Lua child, with it.
  local function git(args, input)
    local vars = { MSAL_AUTHORITY = authority(), MSAL_CLIENT_ID = CLIENT, MSAL_CACHE = home .. "/cache/token_cache.json",
      MSAL_INTERACTIVE = "never", GIT_CONFIG_NOSYSTEM = "1", GIT_TERMINAL_PROMPT = "0" }
    local preload = os.getenv("LD_PRELOAD")
    local helper = "!" .. (preload and ("env " .. proc.quote("LD_PRELOAD=" .. preload) .. " ") or "") .. proc.LUA ..
      " " .. proc.quote(BIN) .. " git-credential"
    files.write(home .. "/git-in", input)
    return proc.run(env_words(home, vars, { plain = true }) .. " git -c credential.helper= -c " .. proc.quote("credential.helper=" .. helper) ..
      " " .. args .. " <" .. proc.quote(home .. "/git-in"))
  end

  it("answers git credential fill for an https remote with the cached Azure DevOps token", function()
    local r = seed(home, { DEVOPS })
    local out, rc, err = git("credential fill", "protocol=https\nhost=dev.azure.com\npath=org/project/_git/repo\n\n")
    assert.equal(0, rc, err)
    -- git keeps the path to itself unless credential.useHttpPath is set
    assert.equal("protocol=https\nhost=dev.azure.com\nusername=test.user@example.com\n" ..
      "password=" .. r.access_token .. "\n", out)
    assert.equal(0, entra.refresh_requests())
  end)

  it("takes the scope from git's msal.scope for the remote's URL", function()
    seed(home, { DEVOPS })
    files.write(home .. "/.gitconfig", '[msal "https://git.example.com"]\n\tscope = api://example-git/.default\n')
    local out, rc, err = git("credential fill", "protocol=https\nhost=git.example.com\n\n")
    assert.equal(0, rc, err)
    local password = out:match("\npassword=(%S+)\n")
    assert.is_string(password)
    local last = entra.requests("token")
    last = last[#last]
    assert.equal("refresh_token", last.form.grant_type)
    assert.matches("api://example-git/.default", last.form.scope, 1, true)
  end)

  it("drops the token git reports refused, so the next fill refreshes", function()
    local r = seed(home, { DEVOPS })
    local _, rc, err = git("credential reject", "protocol=https\nhost=dev.azure.com\nusername=test.user@example.com\n" ..
      "password=" .. r.access_token .. "\n\n")
    assert.equal(0, rc, err)
    local out
    out, rc, err = git("credential fill", "protocol=https\nhost=dev.azure.com\n\n")
    assert.equal(0, rc, err)
    local password = out:match("\npassword=(%S+)\n")
    assert.is_string(password)
    assert.not_equal(r.access_token, password)
    assert.equal(1, entra.refresh_requests())
  end)

  it("stays quiet for a remote that is not https", function()
    local out, rc = run(home, "git-credential get " .. at(home), { stdin = "protocol=ssh\nhost=example.com\n\n" })
    assert.equal(0, rc)
    assert.equal("", out)
  end)
end)

describe("msal --help and the man page", function()
  it("has help for every command, and the man page is made from it", function()
    local h = assert(proc.run(proc.LUA .. " " .. proc.quote(BIN) .. " --help"))
    for _, c in ipairs(require("msal.cli.commands").LIST) do
      assert.matches("\n  " .. c.name:gsub("%-", "%%-") .. " ", h)
      local out, rc = proc.run(proc.LUA .. " " .. proc.quote(BIN) .. " " .. c.name .. " --help")
      assert.equal(0, rc)
      assert.matches("^usage: msal " .. c.name:gsub("%-", "%%-"), out)
      for _, o in ipairs(c.options) do assert.matches("--" .. o[1]:gsub("%-", "%%-"), out) end
      assert.matches("  3  interaction required but not allowed", out, 1, true)
    end
    local man = proc.run(proc.LUA .. " " .. proc.quote(ROOT .. "/man/gen_man.lua"))
    assert.equal(files.read(ROOT .. "/man/msal.1"), man, "man/msal.1 is stale: run make man")
  end)
end)

describe("msal.cli in-process", function()
  local settings = require("msal.cli.settings")
  local commands = require("msal.cli.commands")
  local args = require("msal.cli.args")
  local output = require("msal.cli.output")

  local function sink()
    local s = { text = "" }
    function s.write(_, ...)
      for _, v in ipairs({ ... }) do s.text = s.text .. v end
    end
    function s.flush() end
    return s
  end

  local function resolve(argv, env, extra)
    local cmd = commands.BY_NAME.token
    local given = assert(args.parse(argv, cmd.options))
    return settings.resolve(cmd, given, { getenv = function(k) return env[k] end }, extra)
  end

  it("resolves flags over git's layer over the environment over the file over the defaults", function()
    local s = assert(resolve({}, { HOME = "/h" }))
    assert.equal("04b07795-8ddb-461a-bbee-02f9e1bf7b46", s.client_id)
    assert.equal("https://login.microsoftonline.com/organizations", s.authority)
    assert.equal("/h/.cache/msal/token_cache.json", s.cache)
    assert.equal("device_code", s.interactive)
    s = assert(resolve({}, { HOME = "/h", XDG_CACHE_HOME = "/x", DISPLAY = ":0" }))
    assert.equal("/x/msal/token_cache.json", s.cache)
    assert.equal("browser", s.interactive)
    s = assert(resolve({}, { HOME = "/h", DISPLAY = ":0", CI = "1" }))
    assert.equal("never", s.interactive)
    s = assert(resolve({ "--azure-cli-cache" }, { HOME = "/h", MSAL_CACHE = "/env.json" }))
    assert.equal("/h/.azure/msal_token_cache.json", s.cache)
    s = assert(resolve({}, { HOME = "/h", MSAL_CACHE = "/env.json", MSAL_SCOPE = "a/x, b/y  c/z" }))
    assert.equal("/env.json", s.cache)
    assert.same({ "a/x", "b/y", "c/z" }, s.scopes)
    s = assert(resolve({ "-s", "f" }, { HOME = "/h", MSAL_SCOPE = "e" }, { scope = { "g" } }))
    assert.same({ "f" }, s.scopes)
    s = assert(resolve({}, { HOME = "/h", MSAL_SCOPE = "e", MSAL_CLIENT_ID = "env" }, { scope = { "g" } }))
    assert.same({ "g" }, s.scopes)
    assert.equal("env", s.client_id)
    s = assert(resolve({ "--tenant", "contoso.com" }, { HOME = "/h", MSAL_AUTHORITY = "https://login.example/common/v2" }))
    assert.equal("https://login.example/contoso.com/v2", s.authority)
    s = assert(resolve({ "--authority", "https://a.example/t1" }, { HOME = "/h", MSAL_TENANT = "t2" }))
    assert.equal("https://a.example/t1", s.authority)
  end)

  it("formats results and quotes env values for the shell", function()
    local r = { access_token = "eyJ.a.b", expires_on = 1700000000, scopes = { "User.Read" }, token_type = "bearer",
      account = { username = "o'brien @x.com", home_account_id = "h", tenant_id = "t" } }
    assert.equal("Authorization: Bearer eyJ.a.b\n", output.format_token(r, "header"))
    local env = output.format_token(r, "env")
    assert.matches("\nMSAL_ACCOUNT='o'\\''brien @x.com'\n$", env)
    local sh = proc.run("sh -c " .. proc.quote(env .. 'printf %s "$MSAL_ACCOUNT|$MSAL_EXPIRES_ON"'), { plain = true })
    assert.equal("o'brien @x.com|1700000000", sh)
  end)

  it("counts down in place on a terminal and clears the line at the end", function()
    local err = sink()
    local out = output.new({ stdout = sink(), stderr = err, getenv = function() return nil end,
      isatty = function() return true end })
    local callback, stop = require("msal.cli.interact").device_code(out)
    callback({ message = "enter the code ABC", expires_in = 65 })
    msal.Promise.new(function(resolve) require("msal.loop").set_timeout(1100, resolve) end):await()
    stop()
    assert.matches("enter the code ABC", err.text, 1, true)
    assert.matches("\r\27[K", err.text, 1, true)
    assert.matches("expires in 1:05", err.text, 1, true)
    assert.matches("expires in 1:04", err.text, 1, true)
    assert.matches("\r\27%[K$", err.text)
  end)
end)

describe("msal.credential_chain", function()
  before_each(function() entra.reset() end)

  -- no IMDS probe unless a test asks: on an Azure VM the default would
  -- probe the real IMDS
  local function env_of(t)
    return function(k)
      if k == "MSAL_IMDS_PROBE" and t[k] == nil then return "never" end
      return t[k]
    end
  end

  it("gets the token from the first step that can, and says what each one met", function()
    local chain = msal.credential_chain({ client_id = CLIENT, authority = authority(), cache = { location = "memory" },
      interactive = "never", env = env_of({ AZURE_CLIENT_ID = "a", AZURE_FEDERATED_TOKEN_FILE = "/var/run/token" }) })
    local _, err = chain:get_token({ scopes = { "User.Read" } }):await()
    assert.equal("InteractionRequiredAuthError", err.name)
    assert.equal("no_account", err.error_code)
    assert.equal("environment", err.attempts[1].name)
    assert.equal("credential_unavailable", err.attempts[1].error.error_code)
    assert.matches("AZURE_CLIENT_ID and AZURE_TENANT_ID are not both set", err.attempts[1].error.error_message)
    assert.is_true(err.attempts[2].error.skipped)
    assert.equal("shared_cache", err.attempts[3].name)
    local r = entra.sign_in(chain.app)
    local got = assert(chain:get_token({ scopes = { "User.Read" } }):await())
    assert.equal("shared_cache", got.credential)
    assert.equal(r.access_token, got.access_token)
  end)

  it("gets an app token for a service principal from the environment (secret, federated token file)", function()
    local dir, remove = proc.tempdir()
    local token_file = dir .. "/token"
    files.write(token_file, "eyJhbGciOiJub25lIn0.e30.\n")
    for _, cred in ipairs({ { AZURE_CLIENT_SECRET = "s3cret" }, { AZURE_FEDERATED_TOKEN_FILE = token_file } }) do
      local vars = { AZURE_CLIENT_ID = "lua-msal-confidential", AZURE_TENANT_ID = entra.TENANT,
        AZURE_AUTHORITY_HOST = entra.base() .. "/" }
      for k, v in pairs(cred) do vars[k] = v end
      local chain = msal.credential_chain({ client_id = CLIENT, authority = authority(), cache = { location = "memory" },
        interactive = "never", env = env_of(vars) })
      local r = assert(chain:get_token({ scopes = { "https://graph.microsoft.com/.default" } }):await())
      assert.equal("environment", r.credential)
      assert.is_string(r.access_token)
      assert.equal(entra.TENANT, r.tenant_id)
      assert.is_true(assert(chain:get_token({ scopes = { "https://graph.microsoft.com/.default" } }):await()).from_cache)
    end
    local forms = entra.grant_forms("client_credentials")
    assert.equal(2, #forms)
    assert.equal("s3cret", forms[1].client_secret)
    assert.equal("eyJhbGciOiJub25lIn0.e30.", forms[2].client_assertion)
    -- an unreadable certificate file stops the chain: a later step would hide it
    local chain = msal.credential_chain({ client_id = CLIENT, authority = authority(), cache = { location = "memory" },
      interactive = "never", env = env_of({ AZURE_CLIENT_ID = "x", AZURE_TENANT_ID = entra.TENANT,
        AZURE_CLIENT_CERTIFICATE_PATH = dir .. "/missing.pem" }) })
    local _, err = chain:get_token({ scopes = { "https://graph.microsoft.com/.default" } }):await()
    assert.equal("invalid_environment", err.error_code)
    assert.matches("AZURE_CLIENT_CERTIFICATE_PATH", err.error_message)
    remove()
  end)

  it("gets a token from the managed identity the environment names, and moves on when it cannot be reached", function()
    local mi = require("mi_fake").start()
    mi:reset({})
    local ok, err = pcall(function()
      local chain = msal.credential_chain({ client_id = CLIENT, authority = authority(), cache = { location = "memory" },
        interactive = "never", env = env_of({ IDENTITY_ENDPOINT = mi.url .. "/msi/token", IDENTITY_HEADER = "h" }) })
      local r = assert(chain:get_token({ scopes = { "https://vault.azure.net/.default" } }):await())
      assert.equal("managed_identity", r.credential)
      assert.is_string(r.access_token)
      local log = mi:log()
      assert.equal("https://vault.azure.net", log[#log].query.resource)
      assert.equal("h", log[#log].headers["x-identity-header"])
      -- nothing listening: unavailable, and the cache step is tried next
      chain = msal.credential_chain({ client_id = CLIENT, authority = authority(), cache = { location = "memory" },
        interactive = "never", env = env_of({ IDENTITY_ENDPOINT = "http://127.0.0.1:1/msi/token", IDENTITY_HEADER = "h" }),
        system = { http_timeout_ms = 2000 } })
      local _, e = chain:get_token({ scopes = { "https://vault.azure.net/.default" } }):await()
      assert.equal("managed_identity", e.attempts[2].name)
      assert.equal("credential_unavailable", e.attempts[2].error.error_code)
      assert.matches("cannot be reached", e.attempts[2].error.error_message)
      assert.equal("shared_cache", e.attempts[3].name)
    end)
    mi:stop()
    assert(ok, err)
  end)

  it("probes IMDS once, without the Metadata header, then gets its token", function()
    local mi = require("mi_fake").start()
    mi:reset({})
    -- what IMDS answers a request without the header
    mi:script({ { status = 400, json = { error = "invalid_request", error_description = "Required metadata header not specified" } } })
    local ok, err = pcall(function()
      -- AKS pod identity names the endpoint: probed on any machine
      local chain = msal.credential_chain({ client_id = CLIENT, authority = authority(), cache = { location = "memory" },
        interactive = "never", env = env_of({ AZURE_POD_IDENTITY_AUTHORITY_HOST = mi.url, MSAL_IMDS_PROBE = "azure" }) })
      local r = assert(chain:get_token({ scopes = { "https://vault.azure.net/.default" } }):await())
      assert.equal("managed_identity", r.credential)
      r = assert(chain:get_token({ scopes = { "https://storage.azure.com/.default" } }):await())
      assert.equal("managed_identity", r.credential)
      local log = mi:log()
      assert.equal(3, #log)
      assert.equal("/metadata/identity/oauth2/token", log[1].path)
      assert.is_nil(log[1].headers.metadata)
      assert.equal("true", log[2].headers.metadata)
      assert.equal("https://vault.azure.net", log[2].query.resource)
      assert.equal("https://storage.azure.com", log[3].query.resource)
    end)
    mi:stop()
    assert(ok, err)
  end)

  it("probes IMDS's own address only on an Azure VM, and moves on when it does not answer", function()
    local dir, remove = proc.tempdir()
    local tag = dir .. "/chassis_asset_tag"
    local sent = {}
    local transport = { request = function(_, req, cb)
      sent[#sent + 1] = req
      cb({ kind = "timeout", message = "no answer" })
    end }
    local function chain_on(tag_text, opts)
      files.write(tag, tag_text)
      local o = { client_id = CLIENT, authority = authority(), cache = { location = "memory" }, interactive = "never",
        env = env_of({ MSAL_IMDS_PROBE = "azure" }), azure_vm_tag_file = tag, system = { transport = transport } }
      for k, v in pairs(opts or {}) do o[k] = v end
      return msal.credential_chain(o)
    end
    local _, e = chain_on("7783-7084-3265-9085-8269-3286-77\n", { imds_probe_timeout_ms = 300 })
      :get_token({ scopes = { "https://vault.azure.net/.default" } }):await()
    assert.equal(1, #sent)
    assert.equal("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01", sent[1].url)
    assert.is_nil(sent[1].headers.Metadata)
    assert.equal(300, sent[1].timeout_ms)
    assert.equal("credential_unavailable", e.attempts[2].error.error_code)
    assert.matches("IMDS did not answer at http://169.254.169.254/%S+ within 300 ms", e.attempts[2].error.error_message)
    assert.equal("shared_cache", e.attempts[3].name)
    -- another machine: no request at all, and the reason
    sent = {}
    _, e = chain_on("No Asset Tag\n"):get_token({ scopes = { "https://vault.azure.net/.default" } }):await()
    assert.same({}, sent)
    assert.is_true(e.attempts[2].error.skipped)
    assert.matches("not an Azure VM", e.attempts[2].error.error_message)
    -- never: not even on an Azure VM; always: even elsewhere
    _, e = chain_on("7783-7084-3265-9085-8269-3286-77", { imds_probe = "never" })
      :get_token({ scopes = { "https://vault.azure.net/.default" } }):await()
    assert.same({}, sent)
    assert.matches("IMDS probing is off", e.attempts[2].error.error_message)
    chain_on("", { imds_probe = "always" }):get_token({ scopes = { "https://vault.azure.net/.default" } }):await()
    assert.equal(1, #sent)
    remove()
  end)

  it("signs in with a device code as its last step", function()
    local shown
    local chain = msal.credential_chain({ client_id = CLIENT, authority = authority(), cache = { location = "memory" },
      interactive = "device_code", env = env_of({}), device_code_callback = function(info)
        shown = info
        control("/__control/device", { user_code = info.user_code, action = "approve" })
      end })
    local r = assert(chain:get_token({ scopes = { "User.Read" } }):await())
    assert.equal("interactive", r.credential)
    assert.is_string(shown.user_code)
    assert.equal(1, #chain.app:get_all_accounts())
  end)

  it("stops at a failure a later step would hide", function()
    local chain = msal.credential_chain({ client_id = CLIENT, authority = "http://127.0.0.1:1/" .. entra.TENANT,
      cache = { location = "memory" }, interactive = "device_code", env = env_of({}) })
    local _, err = chain:get_token({ scopes = { "User.Read" } }):await()
    assert.equal("network_error", err.error_code)
    assert.equal("interactive", err.attempts[#err.attempts].name)
  end)

  it("refuses unknown options and steps", function()
    local ok, err = pcall(msal.credential_chain, { exclude = { "broker" } })
    assert.is_false(ok)
    assert.equal("ClientConfigurationError", err.name)
    assert.matches("unknown credential 'broker'", err.error_message)
    ok, err = pcall(msal.credential_chain, { clientid = "x" })
    assert.is_false(ok)
    assert.matches("unknown credential_chain option 'clientid'", err.error_message)
    ok, err = pcall(msal.credential_chain, { interactive = "popup", cache = { location = "memory" } })
    assert.is_false(ok)
    assert.matches("'interactive' must be", err.error_message)
    for _, c in ipairs({ { { imds_probe = "sometimes" }, "'imds_probe' must be" },
        { { imds_probe_timeout_ms = 0 }, "'imds_probe_timeout_ms' must be" },
        { { azure_vm_tag_file = 1 }, "'azure_vm_tag_file' must be a path" },
        { { env = env_of({ MSAL_IMDS_PROBE = "yes" }) }, "MSAL_IMDS_PROBE must be" } }) do
      c[1].cache = { location = "memory" }
      ok, err = pcall(msal.credential_chain, c[1])
      assert.is_false(ok)
      assert.equal("ClientConfigurationError", err.name)
      assert.matches(c[2], err.error_message, 1, true)
    end
  end)
end)
