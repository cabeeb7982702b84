-- wrk script for POST /api/v1/events: every request a unique event_id (prefix, thread, counter)
-- and a ~1 KB payload. Environment: BENCH_API_KEY, BENCH_PREFIX, BENCH_MAX (requests per
-- thread, 0 = until -d ends). done() prints one line "BENCH_JSON {...}" for bench/loadgen.py.
local api_key = os.getenv("BENCH_API_KEY") or ""
local prefix = os.getenv("BENCH_PREFIX") or "evt"
local max_requests = tonumber(os.getenv("BENCH_MAX") or "0")
local pad = string.rep("x", 900)
local threads = {}
local next_tid = 1

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

counter = 0
non2xx = 0
responses = 0

function request()
  counter = counter + 1
  local body = '{"event_id":"' .. prefix .. '-' .. tid .. '-' .. counter ..
    '","event_type":"bench.event","payload":{"n":' .. counter .. ',"data":"' .. pad .. '"}}'
  return wrk.format("POST", "/api/v1/events",
    {["Content-Type"] = "application/json", ["X-API-Key"] = api_key}, body)
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  if max_requests > 0 and responses >= max_requests then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local bad, sent = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    sent = sent + thread:get("responses")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"responses":%d,"duration_us":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d}\n',
    summary.requests, sent, summary.duration, bad, latency:percentile(50),
    latency:percentile(99), e.connect, e.read, e.write, e.timeout))
end
