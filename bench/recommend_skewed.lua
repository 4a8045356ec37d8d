-- wrk -s bench/recommend_skewed.lua: real users 1..10000 with a heavy head (log-uniform ids:
-- user 1 is asked for about as often as users 1000-10000 together), like readers of a shop.
function request()
  local id = math.floor(10000 ^ math.random())
  return wrk.format("GET", "/recommend/" .. id)
end
