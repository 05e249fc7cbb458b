-- Endpoint URLs are parsed before a token is sent to them: a pattern that
-- took "the host after //" let `http://localhost:1@evil.example/` through as
-- loopback (#14 item 12).
local msal = require("msal")
local url = require("msal.url")
local F = require("fixtures")
local cjson = require("cjson")

describe("msal.url.parse", function()
  it("takes an https URL apart, host lower-cased", function()
    local u = assert(url.parse("HTTPS://Login.Example.COM:8443/t/oauth2?x=1#f"))
    assert.same({ "https", "login.example.com", 8443, "login.example.com:8443", "/t/oauth2", "x=1", "f" },
      { u.scheme, u.hostname, u.port, u.host, u.path, u.query, u.fragment })
    assert.is_nil(u.userinfo)
  end)

  it("reads bracketed IPv6 hosts", function()
    local u = assert(url.parse("http://[::1]:5000/cb"))
    assert.same({ "[::1]", 5000, "/cb" }, { u.hostname, u.port, u.path })
  end)

  it("finds the real host behind user information", function()
    local u = assert(url.parse("http://localhost:1@evil.example/token"))
    assert.equal("evil.example", u.hostname)
    assert.equal("localhost:1", u.userinfo)
  end)

  it("refuses text that is not a URL", function()
    for _, bad in ipairs({
      "login.example.com/x", "https://", "https:///path", "https://:443/", "https://host:0/",
      "https://host:65536/", "https://host:12a/", "https://host:/", "https://ho st/", "https://host/a b",
      "https://host\\@evil/", "https://host/\n", "https://.host/", "https://a..b/", "https://[zz]/",
      "https://host%2f/", 42,
    }) do
      local u, why = url.parse(bad)
      assert.is_nil(u, tostring(bad))
      assert.is_string(why)
    end
  end)
end)

describe("msal.url.endpoint", function()
  it("allows https anywhere and http only to loopback hosts", function()
    for _, ok in ipairs({ "https://login.example.com/t", "http://localhost:3000/t", "http://127.0.0.1/t",
      "http://127.255.0.9:80/t", "http://[::1]:8080/t" }) do
      assert.is_table(url.endpoint(ok), ok)
    end
    for _, bad in ipairs({ "http://login.example.com/t", "http://127.0.0.1.evil.example/t",
      "http://127.0.0.256/t", "http://[::2]/t", "ftp://localhost/t", "http://localhost:1@evil.example/token",
      "https://user:pw@login.example.com/t" }) do
      local u, why = url.endpoint(bad)
      assert.is_nil(u, bad)
      assert.is_string(why)
    end
  end)
end)

describe("endpoints an app will send tokens to", function()
  local function app_with_endpoint(token_endpoint, authority)
    authority = authority or "https://login.microsoftonline.com/" .. F.TENANT
    local transport = require("fake_transport").new()
    local app = msal.PublicClientApplication.new({
      auth = { client_id = F.CLIENT, authority = authority,
        authority_metadata = cjson.encode({ issuer = authority .. "/v2.0", token_endpoint = token_endpoint,
          authorization_endpoint = authority .. "/authorize" }) },
      system = { transport = transport },
    })
    app:get_token_cache():deserialize(cjson.encode(F.signed_in()))
    return app, transport
  end

  it("refuses a token endpoint whose user information hides another host", function()
    local app, transport = app_with_endpoint("http://localhost:1@evil.example/token")
    local r, err = app:acquire_token_silent({ scopes = { "Other.Scope" }, account = app:get_all_accounts()[1],
      force_refresh = true }):await()
    assert.is_nil(r)
    assert.equal("invalid_authority_metadata", err.error_code)
    assert.equal(0, transport.n)
  end)

  it("sends to an IPv6 loopback token endpoint over http", function()
    local app, transport = app_with_endpoint("http://[::1]:9/token")
    transport:push({ status = 400, json = { error = "invalid_grant", error_description = "no" } })
    local r, err = app:acquire_token_silent({ scopes = { "Other.Scope" }, account = app:get_all_accounts()[1],
      force_refresh = true }):await()
    assert.is_nil(r)
    assert.equal("invalid_grant", err.error_code)
    assert.equal(1, transport.n)
    assert.equal("http://[::1]:9/token", transport.requests[1].url)
  end)

  it("refuses an authority with user information, naming the problem", function()
    local ok, err = pcall(msal.PublicClientApplication.new,
      { auth = { client_id = F.CLIENT, authority = "http://localhost:1@evil.example/common" } })
    assert.is_false(ok)
    assert.equal("url_parse_error", err.error_code)
    assert.matches("user information", err.error_message)
  end)

  it("accepts an IPv6 loopback authority over http", function()
    local app = msal.PublicClientApplication.new({ auth = { client_id = F.CLIENT,
      authority = "http://[::1]:8080/" .. F.TENANT } })
    assert.equal("[::1]", app.authority.hostname)
    assert.equal(8080, app.authority.port)
  end)
end)
