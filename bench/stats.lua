--- What the benchmarks share: they run from the repository's root, and
-- load this with dofile("bench/stats.lua").
local stats = {}

--- The median of a list of numbers (sorts the list in place).
function stats.median(t)
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) / 2] end
  return (t[n / 2] + t[n / 2 + 1]) / 2
end

return stats
