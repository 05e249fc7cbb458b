-- csrc/bigalloc.c (big Lua 5.4 blocks in huge pages) and csrc/blockarena.c
-- (core.heap_arena) checked in a C program against a real Lua 5.4 state,
-- built with ASan and UBSan: a host allocator left alone, the wrapper
-- installed once, more live big strings than it tracks, a big block grown and
-- shrunk, a dead string swept before a new one; the arena's reuse, growth in
-- place, limits and release, and a churn of Lua values through it and past it.
local proc = require("proc")
local ROOT = os.getenv("MSAL_TEST_ROOT") or "."

describe("big Lua blocks in huge pages", function()
  it("keep their content through every path of the wrapped allocator", function()
    local dir, remove_dir = proc.tempdir()
    finally(remove_dir)
    local bin = dir .. "/bigalloc_check"
    local out, code = proc.sh(("gcc -std=c99 -D_DEFAULT_SOURCE -g -O1 -fsanitize=address,undefined " ..
      "-fno-sanitize-recover=undefined -Wall -Wextra -Werror -I/usr/include/lua5.4 -Icsrc " ..
      "spec/support/c/bigalloc_check.c csrc/bigalloc.c csrc/blockarena.c csrc/hugemem.c csrc/core.c " ..
      "csrc/clock.c csrc/buf.c csrc/poller.c -llua5.4 -o %s"):format(proc.quote(bin)),
      { dir = ROOT, plain = true })
    assert.equal(0, code, out)
    out, code = proc.sh("ASAN_OPTIONS=detect_leaks=1 " .. proc.quote(bin), { dir = ROOT, plain = true })
    assert.equal(0, code, out)
    assert.matches("bigalloc: ok", out)
  end)
end)

describe("core.heap_arena", function()
  it("serves this interpreter's values through the arena and past it, each kept value intact", function()
    -- in a child: the arena lives as long as its process, as in bin/msal
    local dir, remove_dir = proc.tempdir()
    finally(remove_dir)
    local script = proc.lua_script(dir .. "/child.lua", ([[
      local core = require("msal.core")
      io.write(tostring(core.heap_arena()), " ", tostring(core.heap_arena()), "\n")
      io.write(dofile(%q), " kept\n")
    ]]):format(ROOT .. "/spec/support/heap_churn.lua"))
    local out, code, err = proc.run(proc.LUA .. " " .. proc.quote(script))
    assert.equal(0, code, err)
    assert.equal("true true\n840 kept\n", out)
  end)
end)
