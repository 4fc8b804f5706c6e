-- wrk script of bench/run.py. Arguments (after wrk's "--"):
--   mode    "noop", "insert" or "insert-def": POST /<mode> again and again (the
--           reference app);
--           "flow": the OTP flow chained on each connection, signup -> check, forever
--   code    the code every check sends (the server runs with VERIFYD_SANDBOX_FIXED_CODE)
--   prefix  what every phone of this run starts with (bench/seed.py flow_prefix): the
--           thread number (3 digits) and its flow count (6 digits) complete it, so no
--           two signups of a bench ever share a number
--   dir     where each thread writes its samples, one file per thread (thread-NNN.txt)
--
-- wrk must run one connection per thread (-tN -cN): a flow's state is per thread.
-- (wrk calls request() once on thread 1 to check the script and never sends it: that
-- thread's first number goes unused.)
-- Timing is LuaJIT's ffi calling clock_gettime(CLOCK_MONOTONIC), in microseconds,
-- from the request() that sends a step to the response() that ends it. Samples leave
-- through the files, line-buffered (wrk's done() runs in the main thread and Debian's
-- wrk has crashed when it was handed tables); one line per sample:
--   R <status> <us>                               a reference request
--   S <status> <us>                               a signup that gave no verification id
--   F <check status> <signup us> <check us> <flow us>   a flow whose check answered
-- done() prints wrk's own totals on one line starting "RESULT".

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local JSON = { ["Content-Type"] = "application/json" }
local FLOWS_PER_THREAD = 1000000

-- main thread: number the threads
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- worker threads: one flow in progress each
local mode, code, prefix, out, fixed
local state = "signup"
local ver_id = nil
local n = 0
local step_start, flow_start, signup_us = 0, 0, 0

function init(args)
  mode, code, prefix = args[1], args[2], args[3]
  if mode ~= "noop" and mode ~= "insert" and mode ~= "insert-def" and mode ~= "flow" then
    error("flow.lua: unknown mode " .. tostring(mode))
  end
  out = assert(io.open(string.format("%s/thread-%03d.txt", args[4], id), "w"))
  out:setvbuf("line")
  if mode ~= "flow" then
    fixed = wrk.format("POST", "/" .. mode, JSON, "{}")
  end
end

function request()
  step_start = now_us()
  if mode ~= "flow" then
    return fixed
  end
  if state == "check" then
    return wrk.format("POST", "/v1/verifications/" .. ver_id .. "/check", JSON,
      '{"code":"' .. code .. '"}')
  end
  if n >= FLOWS_PER_THREAD then
    error("flow.lua: thread " .. id .. " ran out of phone numbers")
  end
  local phone = string.format("%s%03d%06d", prefix, id, n)
  n = n + 1
  flow_start = step_start
  return wrk.format("POST", "/v1/accounts", JSON, '{"phone":"' .. phone .. '"}')
end

function response(status, headers, body)
  local t = now_us()
  if mode ~= "flow" then
    out:write(string.format("R %d %d\n", status, t - step_start))
    return
  end
  if state == "signup" then
    local id_found = status == 201 and body and body:match('"(ver_[%w_%-]+)"')
    if id_found then
      ver_id, signup_us, state = id_found, t - step_start, "check"
    else
      out:write(string.format("S %d %d\n", status, t - step_start))
    end
  else
    out:write(string.format("F %d %d %d %d\n", status, signup_us, t - step_start, t - flow_start))
    state = "signup"
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT duration_us=%d requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
