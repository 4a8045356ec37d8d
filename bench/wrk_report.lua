-- bench/wrk_report.lua: what every bench wrk script shares, loaded by each with
--   local report = dofile(<its own directory> .. "wrk_report.lua")
-- (wrk runs scripts in its own LuaJIT with no package path of ours, so the path is the
-- script's). It numbers the threads (`tid`, 0-based, for the scripts' init()), keeps them for
-- done(), and writes the one line bench/wrk_output.py reads instead of wrk's rounded report:
--   BENCH_JSON {"requests": .., "duration_us": .., "bytes": .., "errors": {..},
--               "latency_us": {..}, <the script's own counts>}

local report = {}
local threads = {}
local next_tid = 0

-- As the script's setup(): runs once per thread in wrk's main Lua state, before init().
function report.setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

-- The sum over the threads of a global each thread's script counts in (unset counts 0).
function report.sum(name)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get(name) or 0)
  end
  return total
end

-- From the script's done(): `counts` is a list of {name, integer} pairs, appended in order.
function report.write(summary, latency, counts)
  local extra = ""
  for _, pair in ipairs(counts or {}) do
    extra = extra .. string.format(', "%s": %d', pair[1], pair[2])
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p99.9": %d}' ..
    '%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    extra))
end

return report
