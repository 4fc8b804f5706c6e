-- wrk script: each connection chains the OTP flow, signup -> check, forever.
-- Phones are sandbox numbers (+1 NXX 555-01YY), each thread counting through its own
-- block of 5,000 (after the run's offset) so no two signups share a number; wrk must
-- run one connection per thread (-tN -cN): the flow's state is per thread. The server
-- runs with
-- VERIFYD_SANDBOX_FIXED_CODE so the check needs no inbox read.
-- Mode "signup" only signs up. Results leave done() as one string (Debian's wrk
-- has crashed when done() handed tables back).

local mode = "flow"
local code = "1234"
local state = "signup"
local ver_id = nil
local counts = { signup_ok = 0, check_ok = 0, other = 0 }
local n = 0
local offset = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "flow"
  code = args[2] or "1234"
  offset = tonumber(args[3] or "0")
end

function request()
  if state == "check" then
    return wrk.format("POST", "/v1/verifications/" .. ver_id .. "/check",
      { ["Content-Type"] = "application/json" }, '{"code":"' .. code .. '"}')
  end
  local index = offset + (id - 1) * 5000 + n
  n = (n + 1) % 5000
  local phone = string.format("+1%d55501%02d", 200 + math.floor(index / 100), index % 100)
  return wrk.format("POST", "/v1/accounts",
    { ["Content-Type"] = "application/json" }, '{"phone":"' .. phone .. '"}')
end

function response(status, headers, body)
  if state == "signup" then
    if status == 201 then
      counts.signup_ok = counts.signup_ok + 1
      if mode == "flow" then
        ver_id = body:match('"verifications":%[{"id":"([^"]+)"')
        state = "check"
      end
    else
      counts.other = counts.other + 1
    end
  else
    if status == 200 then counts.check_ok = counts.check_ok + 1 else counts.other = counts.other + 1 end
    state = "signup"
  end
  signup_ok, check_ok, other = counts.signup_ok, counts.check_ok, counts.other
end

function done(summary, latency, requests)
  local s, c, o = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + (t:get("signup_ok") or 0)
    c = c + (t:get("check_ok") or 0)
    o = o + (t:get("other") or 0)
  end
  io.write(string.format("RESULT signup_ok=%d check_ok=%d other=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f\n",
    s, c, o, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000))
end
