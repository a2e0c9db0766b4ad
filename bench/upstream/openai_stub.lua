-- A canned OpenAI chat.completions endpoint for the llmops benchmark (loaded by nginx's Lua module).
-- Non-streaming requests get one fixed chat.completion object with usage; requests whose body says
-- "stream": true get an SSE stream: a role delta, three content deltas, a finish delta, an optional
-- usage chunk (stream_options.include_usage) and [DONE]. Every event is flushed as it is written.
-- Nothing sleeps: the point is to be far faster than any gateway in front of it.
local stub = {}

local TEXT = { "The llmops", " bench upstream", " says hello." }
local USAGE = '{"prompt_tokens":14,"completion_tokens":7,"total_tokens":21}'
local ID = '"id":"chatcmpl-llmops-bench","created":1731000000,"model":"fake-model"'

local whole = table.concat({
  '{', ID, ',"object":"chat.completion","choices":[{"index":0,',
  '"message":{"role":"assistant","content":"', table.concat(TEXT), '"},',
  '"logprobs":null,"finish_reason":"stop"}],"usage":', USAGE, '}',
})

local function event(choice_json)
  return 'data: {' .. ID .. ',"object":"chat.completion.chunk","choices":[' .. choice_json .. ']}\n\n'
end

local events = { event('{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}') }
for _, piece in ipairs(TEXT) do
  events[#events + 1] = event('{"index":0,"delta":{"content":"' .. piece .. '"},"finish_reason":null}')
end
events[#events + 1] = event('{"index":0,"delta":{},"finish_reason":"stop"}')
local usage_event = 'data: {' .. ID .. ',"object":"chat.completion.chunk","choices":[],"usage":' .. USAGE .. '}\n\n'
local done_event = 'data: [DONE]\n\n'

function stub.chat()
  if ngx.req.get_method() ~= "POST" then
    ngx.status = 405
    ngx.say('{"error":{"message":"POST only","type":"invalid_request_error"}}')
    return
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data() or ""
  if not body:find('"stream"%s*:%s*true') then
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #whole
    ngx.print(whole)
    return
  end
  ngx.header["Content-Type"] = "text/event-stream"
  ngx.header["Cache-Control"] = "no-cache"
  for i = 1, #events do
    ngx.print(events[i])
    ngx.flush(false)
  end
  if body:find('"include_usage"%s*:%s*true') then
    ngx.print(usage_event)
    ngx.flush(false)
  end
  ngx.print(done_event)
end

return stub
