-- wrk script for bench/intake.py: POST a JSON intake body, count responses by status class.
--
--   wrk -s post.lua URL -- BODY_FILE RUN_TAG
--
-- When the body contains the placeholder __SEQ__ (bench/intake.py puts it in the email
-- address), every request replaces it with RUN_TAG-THREAD-N, so each request is a new
-- patient. A body without the placeholder is sent unchanged every time (the same patient).
-- At the end one line "STATUS 2xx=.. 3xx=.. 4xx=.. 5xx=.. other=.." sums all threads.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"), "cannot open the body file")
  local body = file:read("*a")
  file:close()
  local tag = args[2] or "run"
  headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  local first, last = string.find(body, "__SEQ__", 1, true)
  if first then
    prefix = string.sub(body, 1, first - 1) .. tag .. "-" .. thread_id .. "-"
    suffix = string.sub(body, last + 1)
  else
    fixed = wrk.format("POST", nil, headers, body)
  end
  seq = 0
  c2xx, c3xx, c4xx, c5xx, cother = 0, 0, 0, 0, 0
end

function request()
  if fixed then
    return fixed
  end
  seq = seq + 1
  return wrk.format("POST", nil, headers, prefix .. seq .. suffix)
end

function response(status, resp_headers, resp_body)
  if status >= 200 and status < 300 then
    c2xx = c2xx + 1
  elseif status >= 300 and status < 400 then
    c3xx = c3xx + 1
  elseif status >= 400 and status < 500 then
    c4xx = c4xx + 1
  elseif status >= 500 and status < 600 then
    c5xx = c5xx + 1
  else
    cother = cother + 1
  end
end

function done(summary, latency, requests)
  local total = { c2xx = 0, c3xx = 0, c4xx = 0, c5xx = 0, cother = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do
      total[name] = total[name] + (thread:get(name) or 0)
    end
  end
  io.write(string.format("STATUS 2xx=%d 3xx=%d 4xx=%d 5xx=%d other=%d\n",
    total.c2xx, total.c3xx, total.c4xx, total.c5xx, total.cother))
end
