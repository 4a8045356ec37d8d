-- wrk -s bench/recommend_cold.lua: every request a user id never seen before (>= 10^9 plus a
-- per-thread counter), so every answer is a MISS: MySQL query, scoring, L2 write.
local counter = 0
local base = 1000000000
function setup(thread)
  thread:set("offset", base + math.random(0, 100000000))
end
function request()
  counter = counter + 1
  return wrk.format("GET", "/recommend/" .. (offset + counter * 7))
end
