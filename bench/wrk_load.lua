-- wrk script for bench/run.sh: every connection POSTs the same non-streaming chat.completions body.
-- Environment: BENCH_MODEL (model name), BENCH_KEY (sent as a Bearer key when set).
-- At the end it prints a single line starting with "wrk_result" and key=value pairs (latency in ms).
local model = os.getenv("BENCH_MODEL") or "fake-model"
local key = os.getenv("BENCH_KEY") or ""

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = string.format(
  '{"model":"%s","messages":[{"role":"system","content":"Answer briefly."},'
    .. '{"role":"user","content":"What is a gateway benchmark for?"}],"max_tokens":24,"temperature":0}',
  model)

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
