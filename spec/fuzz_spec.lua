-- The C parsers' fuzz targets (fuzz/) built with gcc, ASan and UBSan and run
-- over their corpora and a batch of generated inputs: a crash, a sanitizer
-- report or a broken round-trip property fails the spec. (Longer runs under
-- libFuzzer: see the build lines at the top of each target.)
local proc = require("proc")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."

-- In the tree's root, without the ASan preload (gcc and the targets are not
-- the ASan build of msal.core).
local function sh(cmd)
  return proc.sh(cmd, { dir = ROOT, plain = true })
end

local targets = {
  jwt = "csrc/b64.c csrc/jwt.c",
  store = "csrc/store.c csrc/json.c csrc/buf.c csrc/hugemem.c",
  http1 = "csrc/http1.c",
  resp = "csrc/resp.c",
  jwk = "csrc/b64.c csrc/jws.c csrc/buf.c csrc/hugemem.c -lcrypto",
}

describe("fuzz targets", function()
  local dir, remove_dir
  setup(function()
    dir, remove_dir = proc.tempdir()
  end)
  teardown(function()
    if remove_dir then remove_dir() end
  end)

  for name, sources in pairs(targets) do
    it(name .. " survives its corpus and 20,000 generated inputs", function()
      local bin = dir .. "/fuzz_" .. name
      local out, code = sh(("gcc -std=c99 -D_DEFAULT_SOURCE -g -O1 -fsanitize=address,undefined " ..
        "-fno-sanitize-recover=undefined -Wall -Wextra -Werror -Icsrc fuzz/fuzz_%s.c fuzz/run_corpus.c %s -o %s")
        :format(name, sources, bin))
      assert.equal(0, code, out)
      out, code = sh(("ASAN_OPTIONS=detect_leaks=1 %s fuzz/corpus/%s"):format(bin, name))
      assert.equal(0, code, out)
      out, code = sh(("ASAN_OPTIONS=detect_leaks=1 %s -random 20000"):format(bin))
      assert.equal(0, code, out)
    end)
  end
end)
