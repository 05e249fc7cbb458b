-- wrk script: each request names one of the bench's accounts, at random
-- (MSAL_BENCH_ACCOUNTS of them), on the path given as wrk's URL.
local n = tonumber(os.getenv("MSAL_BENCH_ACCOUNTS") or "10000")
local TENANT_ID = "00000000-0000-0000-bbbb-000000000002"
local path

function init()
  path = wrk.path
  math.randomseed(os.time())
end

function request()
  local i = math.random(1, n)
  return wrk.format("GET", path .. ("?hid=aaaaaaaa-0000-4000-8000-%012d.%s"):format(i, TENANT_ID))
end
