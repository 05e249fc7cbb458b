-- A churn of strings, tables and closures through a Lua state's heap: with
-- core.heap_arena, through its 2 MiB page and past it (this makes ~30 MB),
-- arrays growing past the page's 64 KiB blocks. Run by bigalloc_check.c on
-- Lua 5.4 and by a child of bigalloc_spec on the spec's interpreter. Raises
-- when a kept value is not intact; returns how many it kept (840).
local keep = {}
for round = 1, 40 do
  local t = {}
  for i = 1, 2000 do
    local s = ("v%d.%d"):format(round, i):rep(i % 7 + 1)
    t[i] = { s = s, f = function() return s end, n = i }
  end
  for i = 1, 2000, 97 do keep[#keep + 1] = t[i] end
  local arr = {} for i = 1, 30000 do arr[i] = i end -- grows past 64 KiB: moves out
  assert(arr[30000] == 30000 and #arr == 30000)
  if round % 8 == 0 then collectgarbage() end
end
for _, v in ipairs(keep) do
  local round, i = v.s:match("^v(%d+)%.(%d+)")
  assert(tonumber(i) == v.n and v.f() == v.s and #v.s == #("v" .. round .. "." .. i) * (v.n % 7 + 1))
end
return #keep
