-- bench/giftcode_claims.lua: gift-code claims by fresh visitors the banner service served, for
-- bench/giftcode_claims.py. Options after `--`, each key=value:
--   cookies=<prefix>  thread n (0-based) reads <prefix>-<n>.txt: one signed visitor cookie a
--                     line (a new visitor id, the campaign recorded as served), and POSTs the
--                     URL once with each, in order (the requests are formatted in init)
-- A thread that used all of its cookies starts over: those claims are a returning visitor's
-- (answered from the holder cache), counted as `reused`. giftcode_claims.py gives each thread as
-- many cookies as the round has codes, so the codes run out (410) before the cookies do.
-- done() prints `BENCH_JSON {...}` (bench/wrk_report.lua) with "reused".

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(here .. "wrk_report.lua")
setup = report.setup

function init(args)
  local prefix
  for _, arg in ipairs(args) do
    local key, value = arg:match("^(%w+)=(.*)$")
    if key == "cookies" then prefix = value end
  end
  assert(prefix, "cookies=<prefix> is required")
  local path = string.format("%s-%d.txt", prefix, tid)
  local file = assert(io.open(path, "r"))
  local requests = {}
  for line in file:lines() do
    if line ~= "" then
      table.insert(requests, wrk.format("POST", wrk.path, { Cookie = line }))
    end
  end
  file:close()
  assert(#requests > 0, "no cookies in " .. path)
  local n = 0
  reused = 0
  request = function()
    n = n + 1
    if n > #requests then
      reused = reused + 1
      return requests[(n - 1) % #requests + 1]
    end
    return requests[n]
  end
end

function done(summary, latency, requests)
  report.write(summary, latency, { { "reused", report.sum("reused") } })
end
