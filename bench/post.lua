-- wrk -s bench/post.lua: every request a POST (the visit counter's write path).
wrk.method = "POST"
