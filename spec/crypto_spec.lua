-- The C core's cryptography: known-answer vectors, strict decoders, JWT
-- splitting, JWS signatures (cross-checked with the openssl command) and
-- AES-GCM.
local crypto = require("msal.core").crypto
local proc = require("proc")
local files = require("files")

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- s with byte i changed (LuaJIT has no ~ operator)
local function flip(s, i)
  i = i or math.floor(#s / 2) + 1
  return s:sub(1, i - 1) .. string.char((s:byte(i) + 1) % 256) .. s:sub(i + 1)
end

local function b64u(s) return crypto.b64url_encode(s) end

local function jwt(header, payload, sig)
  return b64u(header) .. "." .. b64u(payload) .. "." .. b64u(sig or "")
end

-- Generating RSA keys is slow under ASan: one of each kind for the file.
local keys = {}
local function key(kind)
  if not keys[kind] then
    local pem, jwk = crypto.generate_key(kind)
    keys[kind] = { pem = pem, jwk = jwk }
  end
  return keys[kind].pem, keys[kind].jwk
end

describe("random", function()
  it("gives the asked number of bytes, different each time", function()
    assert.equal(0, #crypto.random_bytes(0))
    assert.equal(32, #crypto.random_bytes(32))
    assert.equal(1024 * 1024, #crypto.random_bytes(1024 * 1024))
    assert.not_equal(crypto.random_bytes(16), crypto.random_bytes(16))
  end)

  it("refuses counts outside 0 to 1 MiB", function()
    assert.has_error(function() crypto.random_bytes(-1) end)
    assert.has_error(function() crypto.random_bytes(1024 * 1024 + 1) end)
    assert.has_error(function() crypto.random_string(1024 * 1024 + 1) end)
    assert.has_error(function() crypto.random_bytes("many") end)
  end)

  it("makes strings of the RFC 7636 unreserved characters, all of them used", function()
    local s = crypto.random_string(20000)
    assert.equal(20000, #s)
    assert.is_nil(s:find("[^A-Za-z0-9%-%._~]"))
    local seen, count = {}, 0
    for c in s:gmatch(".") do
      if not seen[c] then seen[c], count = true, count + 1 end
    end
    assert.equal(66, count)
    assert.equal(0, #crypto.random_string(0))
    assert.equal(43, #crypto.random_string(43))
  end)

  it("spreads the characters evenly (no modulo bias)", function()
    -- 66 * 3000 draws: a biased generator (bytes mod 66) would give the
    -- first 58 characters 5/4 of the others' share, far outside this band.
    local n = 66 * 3000
    local s = crypto.random_string(n)
    local counts = {}
    for c in s:gmatch(".") do counts[c] = (counts[c] or 0) + 1 end
    for _, c in pairs(counts) do
      assert.is_true(c > 2700 and c < 3300, "count " .. c)
    end
  end)

  it("makes version 4 UUIDs", function()
    local u = crypto.uuid4()
    assert.truthy(u:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"), u)
    assert.equal(u:lower(), u)
    assert.not_equal(u, crypto.uuid4())
  end)
end)

describe("hashes", function()
  it("sha256 matches FIPS 180-2 vectors", function()
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", crypto.sha256_hex("abc"))
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", crypto.sha256_hex(""))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      crypto.sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
    assert.equal(32, #crypto.sha256("abc"))
    assert.equal(crypto.sha256_hex("abc"), hex(crypto.sha256("abc")))
    assert.equal(crypto.sha256_hex("a\0b"), hex(crypto.sha256("a\0b")))
    assert.not_equal(crypto.sha256_hex("a\0b"), crypto.sha256_hex("a"))
  end)

  it("hmac_sha256 matches RFC 4231", function()
    -- test cases 1, 2 and 6 (a key longer than the block)
    assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      hex(crypto.hmac_sha256(string.rep("\11", 20), "Hi There")))
    assert.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad", hex(crypto.hmac_sha256("", "")))
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      hex(crypto.hmac_sha256("Jefe", "what do ya want for nothing?")))
    assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      hex(crypto.hmac_sha256(string.rep("\170", 131), "Test Using Larger Than Block-Size Key - Hash Key First")))
  end)
end)

describe("base64", function()
  local rfc4648 = {
    { "", "", "" }, { "f", "Zg==", "Zg" }, { "fo", "Zm8=", "Zm8" }, { "foo", "Zm9v", "Zm9v" },
    { "foob", "Zm9vYg==", "Zm9vYg" }, { "fooba", "Zm9vYmE=", "Zm9vYmE" }, { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
  }

  it("encodes and decodes the RFC 4648 vectors", function()
    for _, v in ipairs(rfc4648) do
      assert.equal(v[2], crypto.b64_encode(v[1]))
      assert.equal(v[3], crypto.b64url_encode(v[1]))
      assert.equal(v[1], crypto.b64_decode(v[2]))
      assert.equal(v[1], crypto.b64url_decode(v[3]))
    end
  end)

  it("uses - and _ in base64url, + and / in base64", function()
    assert.equal("-_8", crypto.b64url_encode("\251\255"))
    assert.equal("+/8=", crypto.b64_encode("\251\255"))
    assert.equal("\251\255", crypto.b64url_decode("-_8"))
    assert.equal("\251\255", crypto.b64_decode("+/8="))
  end)

  it("round-trips every byte value", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    for cut = 0, 3 do
      local s = all:sub(1, #all - cut)
      assert.equal(s, crypto.b64url_decode(crypto.b64url_encode(s)))
      assert.equal(s, crypto.b64_decode(crypto.b64_encode(s)))
    end
  end)

  it("base64url refuses what is not canonical base64url", function()
    local bad = {
      { "Zm9v=", "padding" }, { "Zg==", "padding" }, { "Zm8=", "padding" },
      { "Zm+v", "invalid character" }, { "Zm/v", "invalid character" }, { "Zm9v\n", "" },
      { "Zm 9", "invalid character" }, { "Zm9\0", "invalid character" }, { "Zm.v", "invalid character" },
      { "Z", "impossible length" }, { "Zm9vY", "impossible length" },
      { "Zh", "trailing bits" }, { "Zm9", "trailing bits" }, { "Zm9vYh", "trailing bits" },
    }
    for _, v in ipairs(bad) do
      local out, err, code = crypto.b64url_decode(v[1])
      assert.is_nil(out, v[1])
      assert.is_string(err)
      assert.equal("BAD_DATA", code)
      assert.truthy(err:find(v[2], 1, true), v[1] .. ": " .. err)
    end
  end)

  it("base64 refuses missing or misplaced padding, url characters and spare bits", function()
    for _, s in ipairs({ "Zg", "Zg=", "Zm9", "Z===", "Zg=a", "=Zg=", "Zh==", "Zm9=", "-_8=", "Zm9v\n", "Zm9vY===" }) do
      local out, err = crypto.b64_decode(s)
      assert.is_nil(out, s)
      assert.is_string(err)
    end
  end)

  it("accepts the extra argument gsub passes along", function()
    assert.equal("foo", crypto.b64url_decode(("Zm9v"):gsub("=+$", "")))
  end)
end)

describe("PKCE", function()
  it("matches RFC 7636 appendix B", function()
    local octets = string.char(116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
      37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121)
    assert.equal("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", crypto.b64url_encode(octets))
    assert.equal("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
      crypto.pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))
  end)

  it("makes a fresh 43-character verifier and its S256 challenge", function()
    local v, c, m = crypto.pkce()
    assert.equal(43, #v)
    assert.is_nil(v:find("[^A-Za-z0-9_%-]"))
    assert.equal("S256", m)
    assert.equal(crypto.pkce_challenge(v), c)
    assert.equal(crypto.b64url_encode(crypto.sha256(v)), c)
    assert.not_equal(v, (crypto.pkce()))
  end)

  it("refuses verifiers RFC 7636 does not allow", function()
    assert.has_error(function() crypto.pkce_challenge(string.rep("a", 42)) end)
    assert.has_error(function() crypto.pkce_challenge(string.rep("a", 129)) end)
    assert.has_error(function() crypto.pkce_challenge(string.rep("a", 42) .. "+") end)
    assert.has_error(function() crypto.pkce_challenge(string.rep("a", 42) .. "\0") end)
    assert.equal(43, #crypto.pkce_challenge(string.rep("a", 128)))
  end)
end)

describe("constant_time_equal", function()
  it("compares whole strings", function()
    assert.is_true(crypto.constant_time_equal("", ""))
    assert.is_true(crypto.constant_time_equal("nonce-1", "nonce-1"))
    assert.is_false(crypto.constant_time_equal("nonce-1", "nonce-2"))
    assert.is_false(crypto.constant_time_equal("nonce-1", "Nonce-1"))
    assert.is_false(crypto.constant_time_equal("nonce", "nonce-1"))
    assert.is_false(crypto.constant_time_equal("nonce-1", "nonce"))
    assert.is_false(crypto.constant_time_equal("a\0b", "a\0c"))
    assert.has_error(function() crypto.constant_time_equal("a", nil) end)
  end)
end)

describe("jwt_decode", function()
  local H, P = '{"alg":"RS256","typ":"JWT"}', '{"sub":"1","nonce":"n"}'

  it("splits a token into header and payload JSON, signature and signing input", function()
    local tok = jwt(H, P, "\1\2\3sig")
    local h, p, s, input = crypto.jwt_decode(tok)
    assert.equal(H, h)
    assert.equal(P, p)
    assert.equal("\1\2\3sig", s)
    assert.equal(b64u(H) .. "." .. b64u(P), input)
    local _, _, _, len = crypto.jwt_decode(tok, nil, true)
    assert.equal(#input, len)
  end)

  it("allows an empty signature (alg none is the caller's to refuse)", function()
    local h, p, s, input = crypto.jwt_decode(b64u('{"alg":"none"}') .. "." .. b64u(P) .. ".")
    assert.equal('{"alg":"none"}', h)
    assert.equal(P, p)
    assert.equal("", s)
    assert.equal(b64u('{"alg":"none"}') .. "." .. b64u(P), input)
  end)

  local function refused(tok, why, max)
    local a, err, code = crypto.jwt_decode(tok, max)
    assert.is_nil(a, tok:sub(1, 60))
    assert.is_string(err)
    assert.equal("BAD_DATA", code)
    if why then assert.truthy(err:find(why, 1, true), err) end
  end

  it("refuses tokens without exactly three parts", function()
    refused("", "found one")
    refused(b64u(H), "found one")
    refused(b64u(H) .. "." .. b64u(P), "found two")
    refused(jwt(H, P, "s") .. ".x", "more than three")
    refused(jwt(H, P, "s") .. ".", "more than three")
    refused("...", "more than three")
  end)

  it("refuses empty headers and payloads", function()
    refused("." .. b64u(P) .. ".c2ln", "header is empty")
    refused(b64u(H) .. "..c2ln", "payload is empty")
    refused("..", "header is empty")
  end)

  it("refuses parts that are not strict base64url", function()
    refused(b64u(H) .. "=." .. b64u(P) .. ".c2ln", "header is not base64url")
    refused(b64u(H) .. "." .. b64u(P) .. "+." .. "c2ln", "payload is not base64url")
    refused(b64u(H) .. "." .. b64u(P) .. ".c2l/", "signature is not base64url")
    refused(b64u(H) .. "." .. b64u(P) .. ".c2ln=", "signature is not base64url")
    refused(b64u(H) .. "." .. b64u(P) .. ".c", "impossible length")
    assert.equal("sin", select(3, crypto.jwt_decode(b64u(H) .. "." .. b64u(P) .. ".c2lu")))
  end)

  it("caps the token size", function()
    local big = jwt(H, '{"x":"' .. string.rep("a", 70000) .. '"}', "s")
    refused(big, "token too large")
    assert.is_string((crypto.jwt_decode(big, #big)))
    refused(big, "token too large", #big - 1)
    local exact = jwt(H, P, "s")
    assert.is_string((crypto.jwt_decode(exact, #exact)))
    refused(exact, "token too large", #exact - 1)
    assert.has_error(function() crypto.jwt_decode(exact, 0) end)
    assert.has_error(function() crypto.jwt_decode(nil) end)
  end)
end)

describe("JWS", function()
  local input = b64u('{"alg":"x"}') .. "." .. b64u('{"sub":"1"}')

  for _, c in ipairs({ { "RS256", "RSA" }, { "PS256", "RSA" }, { "ES256", "EC" } }) do
    local alg, kind = c[1], c[2]
    describe(alg, function()
      it("signs and verifies", function()
        local pem, jwk = key(kind)
        local sig = assert(crypto.jws_sign(alg, pem, input))
        assert.equal(alg == "ES256" and 64 or 256, #sig)
        assert.is_true(crypto.jws_verify(alg, jwk, input, sig))
      end)

      it("fails on a changed signature, message, or another key", function()
        local pem, jwk = key(kind)
        local sig = assert(crypto.jws_sign(alg, pem, input))
        assert.is_false(crypto.jws_verify(alg, jwk, input, flip(sig)))
        assert.is_false(crypto.jws_verify(alg, jwk, input, flip(sig, 1)))
        assert.is_false(crypto.jws_verify(alg, jwk, input, flip(sig, #sig)))
        assert.is_false(crypto.jws_verify(alg, jwk, flip(input), sig))
        assert.is_false(crypto.jws_verify(alg, jwk, input, sig:sub(2)))
        assert.is_false(crypto.jws_verify(alg, jwk, input, sig .. "\0"))
        assert.is_false(crypto.jws_verify(alg, jwk, input, ""))
        local _, other = crypto.generate_key(kind)
        assert.is_false(crypto.jws_verify(alg, other, input, sig))
      end)
    end)
  end

  it("ES256 signatures are randomised, PS256 too, RS256 deterministic", function()
    local rsa, ec = key("RSA"), key("EC")
    assert.not_equal(crypto.jws_sign("ES256", ec, input), crypto.jws_sign("ES256", ec, input))
    assert.not_equal(crypto.jws_sign("PS256", rsa, input), crypto.jws_sign("PS256", rsa, input))
    assert.equal(crypto.jws_sign("RS256", rsa, input), crypto.jws_sign("RS256", rsa, input))
  end)

  it("does not accept an RS256 signature as PS256 or the reverse", function()
    local pem, jwk = key("RSA")
    assert.is_false(crypto.jws_verify("PS256", jwk, input, crypto.jws_sign("RS256", pem, input)))
    assert.is_false(crypto.jws_verify("RS256", jwk, input, crypto.jws_sign("PS256", pem, input)))
  end)

  local function refused(alg, jwk, why)
    local sig = alg == "ES256" and string.rep("\1", 64) or string.rep("\1", 256)
    local ok, err, code = crypto.jws_verify(alg, jwk, input, sig)
    assert.is_nil(ok)
    assert.is_string(err)
    assert.is_true(code == "BAD_DATA" or code == "CRYPTO", tostring(code))
    if why then assert.truthy(err:find(why, 1, true), err) end
  end

  local function with(t, changes)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    for k, v in pairs(changes) do c[k] = v end
    return c
  end

  it("refuses a key whose kty does not fit the alg", function()
    local _, rsa = key("RSA")
    local _, ec = key("EC")
    refused("ES256", rsa, "kty does not match")
    refused("RS256", ec, "kty does not match")
    refused("PS256", ec, "kty does not match")
    refused("RS256", with(rsa, { kty = "oct" }), "kty does not match")
    refused("RS256", { n = rsa.n, e = rsa.e }, "no kty")
  end)

  it("refuses a key published for another alg or use", function()
    local _, rsa = key("RSA")
    refused("PS256", with(rsa, { alg = "RS256" }), "another alg")
    assert.is_true(crypto.jws_verify("RS256", with(rsa, { alg = "RS256", use = "sig" }), input,
      crypto.jws_sign("RS256", (key("RSA")), input)))
    refused("RS256", with(rsa, { use = "enc" }), "not for signatures")
  end)

  it("refuses algs it does not implement, none included", function()
    local _, rsa = key("RSA")
    for _, alg in ipairs({ "none", "HS256", "RS384", "rs256", "", "RS256\0", "RS2" }) do
      refused(alg, rsa, "unsupported alg")
    end
  end)

  it("refuses RSA keys under 2048 bits", function()
    local n1024 = b64u("\193" .. string.rep("\1", 127))
    refused("RS256", { kty = "RSA", n = n1024, e = "AQAB" }, "2048 bits")
    local n2047 = b64u("\127" .. string.rep("\1", 255))
    refused("RS256", { kty = "RSA", n = n2047, e = "AQAB" }, "2048 bits")
  end)

  it("refuses malformed RSA members", function()
    local _, rsa = key("RSA")
    refused("RS256", with(rsa, { n = false }), "not a string")
    refused("RS256", with(rsa, { e = 65537 }), "not a string")
    refused("RS256", { kty = "RSA", e = "AQAB" }, "no n")
    refused("RS256", { kty = "RSA", n = rsa.n }, "no e")
    refused("RS256", with(rsa, { n = rsa.n .. "=" }), "n is not base64url")
    refused("RS256", with(rsa, { n = "/" .. rsa.n:sub(2) }), "n is not base64url")
    refused("RS256", with(rsa, { e = "AQ" }), "exponent") -- e = 1
    refused("RS256", with(rsa, { e = "AAE" }), "exponent") -- 1 with a leading zero byte
    refused("RS256", with(rsa, { e = "AAA" }), "exponent") -- 0
    refused("RS256", with(rsa, { e = "AQA" }), "exponent") -- 256: even
  end)

  it("refuses EC keys not on P-256 or not on the curve", function()
    local _, ec = key("EC")
    refused("ES256", with(ec, { crv = "P-384" }), "P-256")
    refused("ES256", { kty = "EC", x = ec.x, y = ec.y }, "P-256")
    refused("ES256", with(ec, { x = b64u(string.rep("\1", 31)) }), "32 bytes")
    refused("ES256", with(ec, { y = b64u(string.rep("\1", 33)) }), "y")
    refused("ES256", with(ec, { x = b64u(string.rep("\1", 32)), y = b64u(string.rep("\2", 32)) }), "curve")
    refused("ES256", { kty = "EC", crv = "P-256", x = ec.x }, "no y")
  end)

  it("reads the JWK raw, past any metatable", function()
    local pem, jwk = key("EC")
    local sig = crypto.jws_sign("ES256", pem, input)
    local proxy = setmetatable({}, { __index = jwk })
    local ok, err = crypto.jws_verify("ES256", proxy, input, sig)
    assert.is_nil(ok)
    assert.truthy(err:find("no kty", 1, true))
  end)

  it("raises on arguments of the wrong type", function()
    local pem, jwk = key("EC")
    assert.has_error(function() crypto.jws_verify("ES256", "jwk", input, "") end)
    assert.has_error(function() crypto.jws_verify("ES256", jwk, nil, "") end)
    assert.has_error(function() crypto.jws_sign("HS256", pem, input) end)
    assert.has_error(function() crypto.jws_sign("ES256\0", pem, input) end)
    assert.has_error(function() crypto.jws_sign("ES256", nil, input) end)
    assert.has_error(function() crypto.generate_key("DSA") end)
    assert.has_error(function() crypto.generate_key("RSA", 1024) end)
    assert.has_error(function() crypto.generate_key("EC", 2048) end)
  end)

  it("signing refuses keys that do not fit the alg, and non-keys", function()
    local rsa, ec = key("RSA"), key("EC")
    local s, err = crypto.jws_sign("ES256", rsa, input)
    assert.is_nil(s)
    assert.truthy(err:find("EC key", 1, true), err)
    s, err = crypto.jws_sign("RS256", ec, input)
    assert.is_nil(s)
    assert.truthy(err:find("RSA key", 1, true), err)
    s, err = crypto.jws_sign("RS256", "not a key", input)
    assert.is_nil(s)
    assert.truthy(err:find("private key", 1, true), err)
    s, err = crypto.jws_sign("RS256", rsa:sub(1, 200), input)
    assert.is_nil(s)
    assert.is_string(err)
  end)

  it("generates keys in the expected forms", function()
    local pem, jwk = key("RSA")
    assert.truthy(pem:find("-----BEGIN PRIVATE KEY-----", 1, true))
    assert.same({ "RSA", "AQAB", 256 }, { jwk.kty, jwk.e, #crypto.b64url_decode(jwk.n) })
    pem, jwk = key("EC")
    assert.truthy(pem:find("-----BEGIN PRIVATE KEY-----", 1, true))
    assert.same({ "EC", "P-256", 32, 32 },
      { jwk.kty, jwk.crv, #crypto.b64url_decode(jwk.x), #crypto.b64url_decode(jwk.y) })
  end)
end)

-- The openssl command as an independent implementation: what it signs
-- verifies here and what is signed here verifies there.
describe("JWS against the openssl command", function()
  local dir, remove_dir

  -- Whether cmd (run in dir) succeeded, and its output.
  local function run(cmd)
    local out, code = proc.sh(cmd, { dir = dir })
    return code == 0, out
  end
  local function write(name, data) files.write(dir .. "/" .. name, data) end
  local function read(name) return assert(files.read(dir .. "/" .. name)) end

  -- ECDSA-Sig-Value (DER) <-> JOSE r||s, written out to be independent of C
  local function der_int(b)
    b = b:gsub("^%z+", "")
    if b == "" then b = "\0" end
    if b:byte(1) >= 128 then b = "\0" .. b end
    return "\2" .. string.char(#b) .. b
  end
  local function raw_to_der(raw)
    local body = der_int(raw:sub(1, 32)) .. der_int(raw:sub(33, 64))
    return "\48" .. string.char(#body) .. body
  end
  local function der_to_raw(der)
    assert(der:byte(1) == 48 and der:byte(3) == 2)
    local rl = der:byte(4)
    local r = der:sub(5, 4 + rl)
    assert(der:byte(5 + rl) == 2)
    local s = der:sub(7 + rl, 6 + rl + der:byte(6 + rl))
    local function pad(x) x = x:gsub("^%z+", ""); return string.rep("\0", 32 - #x) .. x end
    return pad(r) .. pad(s)
  end

  setup(function()
    dir, remove_dir = proc.tempdir()
    local ok, out = run("openssl version")
    assert(ok, "the openssl command is needed: " .. out)
  end)
  teardown(function()
    if remove_dir then remove_dir() end
  end)

  local opts = {
    RS256 = "",
    PS256 = "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -sigopt rsa_mgf1_md:sha256",
    ES256 = "",
  }
  local msg = "eyJhbGciOiJ4In0.eyJzdWIiOiIxIn0"

  for _, c in ipairs({ { "RS256", "RSA" }, { "PS256", "RSA" }, { "ES256", "EC" } }) do
    local alg, kind = c[1], c[2]
    it(alg .. " signatures verify both ways", function()
      local pem, jwk = key(kind)
      write("key.pem", pem)
      write("msg", msg)
      assert(run("openssl pkey -in key.pem -pubout -out pub.pem"))
      -- openssl signs, we verify
      local ok, out = run("openssl dgst -sha256 " .. opts[alg] .. " -sign key.pem -out sig msg")
      assert(ok, out)
      local sig = read("sig")
      if alg == "ES256" then sig = der_to_raw(sig) end
      assert.is_true(crypto.jws_verify(alg, jwk, msg, sig))
      assert.is_false(crypto.jws_verify(alg, jwk, msg .. "x", sig))
      -- we sign, openssl verifies
      sig = assert(crypto.jws_sign(alg, pem, msg))
      write("sig", alg == "ES256" and raw_to_der(sig) or sig)
      ok, out = run("openssl dgst -sha256 " .. opts[alg] .. " -verify pub.pem -signature sig msg")
      assert(ok and out:find("Verified OK", 1, true), out)
      write("sig", alg == "ES256" and raw_to_der(flip(sig)) or flip(sig))
      assert.is_false((run("openssl dgst -sha256 " .. opts[alg] .. " -verify pub.pem -signature sig msg")))
    end)
  end

  it("signing refuses a 1024-bit RSA key, an encrypted key and a curve other than P-256", function()
    assert(run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out small.pem"))
    local s, err = crypto.jws_sign("RS256", read("small.pem"), msg)
    assert.is_nil(s)
    assert.truthy(err:find("2048 bits", 1, true), err)
    assert(run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:pw -out enc.pem"))
    assert.truthy(read("enc.pem"):find("ENCRYPTED", 1, true))
    s, err = crypto.jws_sign("ES256", read("enc.pem"), msg)
    assert.is_nil(s)
    assert.is_string(err)
    assert(run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 -out k1.pem"))
    s, err = crypto.jws_sign("ES256", read("k1.pem"), msg)
    assert.is_nil(s)
    assert.truthy(err:find("P-256", 1, true), err)
  end)

  it("signing accepts a traditional (PKCS#1) RSA key", function()
    local pem, jwk = key("RSA")
    write("key.pem", pem)
    assert(run("openssl pkey -in key.pem -traditional -out rsa.pem"))
    assert.truthy(read("rsa.pem"):find("BEGIN RSA PRIVATE KEY", 1, true))
    local sig = assert(crypto.jws_sign("RS256", read("rsa.pem"), msg))
    assert.is_true(crypto.jws_verify("RS256", jwk, msg, sig))
  end)
end)

describe("AES-256-GCM", function()
  local k = string.rep("k", 32)

  it("opens the McGrew-Viega test case 14 (zero key and IV)", function()
    local blob = string.rep("\0", 12) .. unhex("cea7403d4d606b6e074ec5d3baf39d18") ..
        unhex("d0d1c8a799996bf0265b98b5d48ab919")
    assert.equal(string.rep("\0", 16), crypto.aes256gcm_open(string.rep("\0", 32), blob))
    local empty = string.rep("\0", 12) .. unhex("530f8afbc74536b9a963b4f1c4cb738b")
    assert.equal("", crypto.aes256gcm_open(string.rep("\0", 32), empty))
  end)

  it("round-trips, with and without associated data", function()
    for _, pt in ipairs({ "", "x", "refresh token", string.rep("\0\1\2", 10000) }) do
      local blob = crypto.aes256gcm_seal(k, pt)
      assert.equal(12 + #pt + 16, #blob)
      assert.equal(pt, crypto.aes256gcm_open(k, blob))
      blob = crypto.aes256gcm_seal(k, pt, "aad")
      assert.equal(pt, crypto.aes256gcm_open(k, blob, "aad"))
    end
    assert.not_equal(crypto.aes256gcm_seal(k, "same"), crypto.aes256gcm_seal(k, "same"))
  end)

  local function refused(...)
    local pt, err, code = crypto.aes256gcm_open(...)
    assert.is_nil(pt)
    assert.equal("authentication failed", err)
    assert.equal("BAD_DATA", code)
  end

  it("refuses a wrong key, a changed byte anywhere, a short blob, other associated data", function()
    local blob = crypto.aes256gcm_seal(k, "secret", "aad")
    refused(string.rep("K", 32), blob, "aad")
    for i = 1, #blob do refused(k, flip(blob, i), "aad") end
    refused(k, blob:sub(1, -2), "aad")
    refused(k, blob .. "\0", "aad")
    refused(k, blob:sub(1, 27), "aad")
    refused(k, "", "aad")
    refused(k, blob)
    refused(k, blob, "aaD")
    refused(k, crypto.aes256gcm_seal(k, "secret"), "aad")
  end)

  it("raises on keys that are not 32 bytes", function()
    assert.has_error(function() crypto.aes256gcm_seal(string.rep("k", 31), "x") end)
    assert.has_error(function() crypto.aes256gcm_seal(string.rep("k", 33), "x") end)
    assert.has_error(function() crypto.aes256gcm_open(string.rep("k", 16), string.rep("\0", 40)) end)
    assert.has_error(function() crypto.aes256gcm_seal(k, nil) end)
  end)
end)

describe("public_key (a JWK built once for many verifications)", function()
  local input = b64u('{"alg":"x"}') .. "." .. b64u('{"sub":"1"}')

  it("verifies like jws_verify, again and again, and refuses the other type's alg", function()
    for _, c in ipairs({ { "RS256", "RSA" }, { "PS256", "RSA" }, { "ES256", "EC" } }) do
      local alg, kind = c[1], c[2]
      local pem, jwk = key(kind)
      local k = assert(crypto.public_key(jwk))
      assert.matches("^msal.public_key %(" .. kind, tostring(k))
      local sig = assert(crypto.jws_sign(alg, pem, input))
      for _ = 1, 3 do assert.is_true(k:verify(alg, input, sig)) end
      assert.is_false(k:verify(alg, flip(input), sig))
      -- a prefix of a longer text: the token itself, up to its signing input
      assert.is_true(k:verify(alg, input .. ".c2ln", sig, #input))
      assert.is_false(k:verify(alg, input .. ".c2ln", sig, #input - 1))
      assert.has_error(function() k:verify(alg, input, sig, #input + 1) end)
      assert.has_error(function() k:verify(alg, input, sig, -1) end)
      local ok, msg, code = k:verify(alg == "ES256" and "RS256" or "ES256", input, sig)
      assert.is_nil(ok)
      assert.equal("BAD_DATA", code, msg)
      ok, msg, code = k:verify("HS256", input, sig)
      assert.is_nil(ok)
      assert.equal("BAD_DATA", code, msg)
    end
  end)

  it("checks RS256 and PS256 in turn with one RSA key that names no alg, never one for the other", function()
    local pem, jwk = key("RSA")
    local k = assert(crypto.public_key(jwk))
    local rs, ps = assert(crypto.jws_sign("RS256", pem, input)), assert(crypto.jws_sign("PS256", pem, input))
    for _ = 1, 3 do
      assert.is_true(k:verify("RS256", input, rs))
      assert.is_true(k:verify("PS256", input, ps))
      assert.is_false(k:verify("PS256", input, rs))
      assert.is_false(k:verify("RS256", input, ps))
      assert.is_false(k:verify("PS256", flip(input), ps))
    end
  end)

  it("keeps a JWK's alg: a key published for RS256 does not check PS256", function()
    local pem, jwk = key("RSA")
    jwk.alg = "RS256"
    local k = assert(crypto.public_key(jwk))
    local ok, msg, code = k:verify("PS256", input, assert(crypto.jws_sign("PS256", pem, input)))
    assert.is_nil(ok)
    assert.equal("BAD_DATA", code, msg)
  end)

  it("refuses unusable JWKs (BAD_DATA, or CRYPTO where OpenSSL refuses), and closes once or twice", function()
    local _, rsa = key("RSA")
    local _, ec = key("EC")
    for _, bad in ipairs({
      {}, { kty = "oct", k = "c2VjcmV0" }, { kty = "RSA", e = rsa.e }, { kty = "RSA", n = rsa.n:sub(1, 100), e = rsa.e },
      { kty = "RSA", n = rsa.n, e = rsa.e, use = "enc" }, { kty = "RSA", n = rsa.n, e = rsa.e, alg = "RSA-OAEP" },
      { kty = "RSA", n = rsa.n, e = rsa.e, alg = "ES256" }, { kty = "EC", crv = "P-384", x = ec.x, y = ec.y },
      { kty = "EC", crv = "P-256", x = ec.x, y = ec.x }, { kty = "RSA", n = "!!", e = rsa.e },
    }) do
      local k, msg, code = crypto.public_key(bad)
      assert.is_nil(k)
      assert.equal(bad.x == ec.x and bad.y == ec.x and "CRYPTO" or "BAD_DATA", code, msg)
    end
    assert.has_error(function() crypto.public_key("jwk") end)
    local k = assert(crypto.public_key(rsa))
    getmetatable(k).__gc(k)
    getmetatable(k).__gc(k)
    assert.equal("msal.public_key (closed)", tostring(k))
    assert.has_error(function() k:verify("RS256", input, "x") end)
  end)
end)
