-- bench/wrk.lua: the one wrk script bench/run.py uses for every endpoint. Options after `--`,
-- each key=value:
--   method=POST     every request with this method (the request stays static: no Lua per request)
--   cold=<base>     GET /recommend/<id> with ids nobody asked for before: base + thread + n x
--                   threads (run.py picks a base from the clock, so runs never share ids)
--   threads=<n>     wrk's thread count (for cold)
--   delay=<ms>      each connection waits 0.5..1.5 x ms before each request: a paced load at
--                   about connections / (delay + latency) requests a second
--   expect=<text>   count the answers whose body lacks this text (bad_bodies)
-- done() prints one line, `BENCH_JSON {...}` (bench/wrk_report.lua): exact counts and latency
-- percentiles (us), and bad_bodies.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(here .. "wrk_report.lua")
setup = report.setup

function init(args)
  local opts = {}
  for _, arg in ipairs(args) do
    local key, value = arg:match("^(%w+)=(.*)$")
    if key then opts[key] = value end
  end
  math.randomseed(tid + 1)
  bad = 0
  if opts.method then
    wrk.method = opts.method
  end
  if opts.cold then
    local base = tonumber(opts.cold)
    local step = tonumber(opts.threads or "1")
    local n = 0
    request = function()
      n = n + 1
      return wrk.format("GET", string.format("/recommend/%.0f", base + tid + n * step))
    end
  end
  if opts.delay then
    local ms = tonumber(opts.delay)
    delay = function()
      return ms * (0.5 + math.random())
    end
  end
  if opts.expect then
    local expect = opts.expect
    response = function(status, headers, body)
      if not body or not string.find(body, expect, 1, true) then
        bad = bad + 1
      end
    end
  end
end

function done(summary, latency, requests)
  report.write(summary, latency, { { "bad_bodies", report.sum("bad") } })
end
