-- wrk script for bench/booking.py: POST booking bodies, each for a slot nobody else asks for,
-- except every COLLIDE_EVERY-th request, which races the other connections for a shared slot.
--
--   wrk -s book.lua URL -- PLAN_FILE PATH FIRST_SLOT COLLIDE_EVERY THREADS BASE_MS BUCKET_MS
--
-- PLAN_FILE (written by bench/booking.py) has lines "type CODE", "shared PROVIDER_ID",
-- "lane PROVIDER_ID" (one per lane), "slot START" (the bookable starts, in order, the same for
-- every lane provider) and "token BOOKING_TOKEN" (one per patient). PATH is the request path;
-- FIRST_SLOT (0-based) skips the slots an earlier run (the warm-up) used.
--
-- wrk calls request() once per request and per thread, not per connection, so the lanes are
-- dealt to the threads (lane i to thread i mod THREADS) and each thread walks its own lanes in
-- turn: lane, lane, ..., then the next slot. No two requests ask for the same (provider, start)
-- except the deliberate collisions. wrk's threads share nothing, so these meet by the clock: a
-- collision sent in the n-th BUCKET_MS since BASE_MS (Unix milliseconds, the same for all
-- threads) asks for the n-th slot of the shared provider. Every collision of the same bucket,
-- from any thread or connection, asks for the same slot, often while another is still in flight:
-- exactly one of them can win it, all others must get 409.
--
-- At the end one line "STATUS 2xx=.. 3xx=.. 4xx=.. 5xx=.. other=.." (as bench/post.lua) and one
-- line "BOOK ..." with the 201 / 409 counts and what was sent sum all threads.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]])
local timeval = ffi.new("bench_timeval")

local function now_ms()
  ffi.C.gettimeofday(timeval, nil)
  return tonumber(timeval.tv_sec) * 1000 + math.floor(tonumber(timeval.tv_usec) / 1000)
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local plan = args[1]
  path = args[2]
  first_slot = tonumber(args[3])
  collide_every = tonumber(args[4])
  local nthreads = tonumber(args[5])
  base_ms = tonumber(args[6])
  bucket_ms = tonumber(args[7])
  slots, tokens = {}, {}
  local all_lanes = {}
  for line in io.lines(plan) do
    local kind, value = string.match(line, "^(%S+) (%S+)$")
    if kind == "slot" then
      table.insert(slots, value)
    elseif kind == "token" then
      table.insert(tokens, value)
    elseif kind == "lane" then
      table.insert(all_lanes, value)
    elseif kind == "shared" then
      shared = value
    elseif kind == "type" then
      type_code = value
    end
  end
  lanes = {}
  for i = thread_id + 1, #all_lanes, nthreads do
    table.insert(lanes, all_lanes[i])
  end
  assert(#lanes > 0 and #slots > 0 and #tokens > 0 and type_code, "incomplete plan file")
  headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  sent, lane_sent, collide_sent, max_slot, exhausted = 0, 0, 0, 0, 0
  c2xx, c3xx, c4xx, c5xx, cother = 0, 0, 0, 0, 0
  c201, c409 = 0, 0
  first_other = ""
end

function request()
  sent = sent + 1
  local provider, index
  if collide_every > 0 and shared and sent % collide_every == 0 then
    collide_sent = collide_sent + 1
    provider = shared
    index = first_slot + 1 + math.floor((now_ms() - base_ms) / bucket_ms)
  else
    provider = lanes[(lane_sent % #lanes) + 1]
    index = first_slot + math.floor(lane_sent / #lanes) + 1
    lane_sent = lane_sent + 1
  end
  if index > #slots then
    exhausted = exhausted + 1 -- counted and reported: the run is then invalid
    index = #slots
  end
  if index > max_slot then
    max_slot = index
  end
  local token = tokens[((sent + thread_id * 7) % #tokens) + 1]
  local body = string.format(
    '{"booking_token":"%s","appointment_type":"%s","provider_id":%s,"start":"%s"}',
    token, type_code, provider, slots[index])
  return wrk.format("POST", path, headers, body)
end

function response(status, resp_headers, resp_body)
  if status == 201 then
    c201 = c201 + 1
  elseif status == 409 then
    c409 = c409 + 1
  end
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
  if status ~= 201 and status ~= 409 and first_other == "" then
    first_other = status .. " " .. string.sub(string.gsub(resp_body or "", "%s+", " "), 1, 300)
  end
end

function done(summary, latency, requests)
  local names = { "c2xx", "c3xx", "c4xx", "c5xx", "cother", "c201", "c409", "sent",
    "lane_sent", "collide_sent", "exhausted" }
  local total = {}
  for _, name in ipairs(names) do
    total[name] = 0
  end
  local highest, other = 0, ""
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do
      total[name] = total[name] + (thread:get(name) or 0)
    end
    highest = math.max(highest, thread:get("max_slot") or 0)
    if other == "" then
      other = thread:get("first_other") or ""
    end
  end
  io.write(string.format("STATUS 2xx=%d 3xx=%d 4xx=%d 5xx=%d other=%d\n",
    total.c2xx, total.c3xx, total.c4xx, total.c5xx, total.cother))
  io.write(string.format(
    "BOOK 201=%d 409=%d sent=%d lane_sent=%d collide_sent=%d max_slot=%d exhausted=%d\n",
    total.c201, total.c409, total.sent, total.lane_sent, total.collide_sent, highest,
    total.exhausted))
  if other ~= "" then
    io.write("FIRST_OTHER " .. other .. "\n")
  end
end
