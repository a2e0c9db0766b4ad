-- wrk script for bench/run.sh: every connection POSTs the same non-streaming chat.completions body.
-- Environment: BENCH_MODEL (model name), BENCH_KEY (sent as a Bearer key when set), BENCH_UNIQUE=1
-- (every request asks a different question: a response cache never hits).
-- At the end it prints a single line starting with "wrk_result" and key=value pairs (latency in ms).
local model = os.getenv("BENCH_MODEL") or "fake-model"
local key = os.getenv("BENCH_KEY") or ""

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local template = '{"model":"%s","messages":[{"role":"system","content":"Answer briefly."},'
  .. '{"role":"user","content":"What is a gateway benchmark for?%s"}],"max_tokens":24,"temperature":0}'
wrk.body = string.format(template, model, "")

if os.getenv("BENCH_UNIQUE") == "1" then
  local counter = 0
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000))
  local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
  function request()
    counter = counter + 1
    return wrk.format(nil, nil, nil, string.format(template, model, " #" .. prefix .. "-" .. counter))
  end
end

local function ms(us)
  return us / 1000.0
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1000000.0
  local e = summary.errors
  local failed = e.connect + e.read + e.write + e.status + e.timeout
  print(string.format(
    "wrk_result requests=%d seconds=%.3f rps=%.2f p50_ms=%.4f p90_ms=%.4f p99_ms=%.4f max_ms=%.3f "
      .. "errors=%d connect=%d read=%d write=%d status=%d timeout=%d",
    summary.requests, seconds, summary.requests / seconds,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)), ms(latency.max),
    failed, e.connect, e.read, e.write, e.status, e.timeout))
end
