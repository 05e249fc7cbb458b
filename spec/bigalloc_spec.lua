-- csrc/bigalloc.c (big Lua 5.4 blocks in huge pages) checked in a C program
-- against a real Lua 5.4 state, built with ASan and UBSan: a host allocator
-- left alone, the wrapper installed once, more live big strings than it
-- tracks, a big block grown and shrunk, a dead string swept before a new one.
local proc = require("proc")
local ROOT = os.getenv("MSAL_TEST_ROOT") or "."

describe("big Lua blocks in huge pages", function()
  it("keep their content through every path of the wrapped allocator", function()
    local dir, remove_dir = proc.tempdir()
    finally(remove_dir)
    local bin = dir .. "/bigalloc_check"
    local out, code = proc.sh(("gcc -std=c99 -D_DEFAULT_SOURCE -g -O1 -fsanitize=address,undefined " ..
      "-fno-sanitize-recover=undefined -Wall -Wextra -Werror -I/usr/include/lua5.4 -Icsrc " ..
      "spec/support/c/bigalloc_check.c csrc/bigalloc.c csrc/hugemem.c -llua5.4 -o %s"):format(proc.quote(bin)),
      { dir = ROOT, plain = true })
    assert.equal(0, code, out)
    out, code = proc.sh("ASAN_OPTIONS=detect_leaks=1 " .. proc.quote(bin), { dir = ROOT, plain = true })
    assert.equal(0, code, out)
    assert.matches("bigalloc: ok", out)
  end)
end)
