-- wrk script for the Switchyard bench: POST /v1/messages (Anthropic's Messages API) with a
-- fixed body, the counterpart of post.lua's chat request (same size, same text).
--
--   wrk ... -s bench/post_messages.lua URL -- MODEL STREAM SIZE KEY
--
-- Arguments, the static request and the BENCHJSON line as in post.lua (the key goes in
-- x-api-key, as Anthropic's SDKs send it).

local function build_body(model, stream, size)
  local prefix = '{"model":"' .. model .. '","stream":' .. stream ..
      ',"max_tokens":16,"metadata":{"user_id":"bench"},"system":"You are a helpful assistant.",' ..
      '"messages":[{"role":"user","content":"'
  local suffix = '"}]}'
  local fill = size - #prefix - #suffix
  if fill < 0 then fill = 0 end
  local sentence = "The quick brown fox jumps over the lazy dog while the gateway relays every byte. "
  local text = string.rep(sentence, math.floor(fill / #sentence) + 1):sub(1, fill)
  return prefix .. text .. suffix
end

function init(args)
  local model = args[1] or "bench-json"
  local stream = args[2] or "false"
  local size = tonumber(args[3] or "1024")
  local key = args[4] or "sk-bench-master"
  wrk.method = "POST"
  wrk.body = build_body(model, stream, size)
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["x-api-key"] = key
  wrk.headers["anthropic-version"] = "2023-06-01"
  if stream == "true" then
    wrk.headers["Accept"] = "text/event-stream"
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"mean_us":%.1f,"max_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
