-- wrk script for the cache bench's all-miss targets: like post.lua, but every request has
-- a body of its own (a per-thread tag and a counter in the user message), so a response
-- cache never finds one. It defines request(), so wrk builds each request in Lua (client
-- CPU only; the gateway's CPU per request is measured on its own cores).
--
--   wrk ... -s bench/post_unique.lua URL -- MODEL STREAM SIZE KEY [CYCLE]
--
-- With CYCLE (a number), the bodies cycle through CYCLE fixed ones instead (the same tag in
-- every thread and run): after the first pass, every request is a cache hit, and two
-- requests at once rarely share a body (so hits are not coalesced).

local prefix, suffix, text, tag
local n = 0
local cycle = 0

function init(args)
  local model = args[1] or "bench-json"
  local stream = args[2] or "false"
  local size = tonumber(args[3] or "1024")
  local key = args[4] or "sk-bench-master"
  prefix = '{"model":"' .. model .. '","stream":' .. stream ..
      ',"max_tokens":16,"user":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},' ..
      '{"role":"user","content":"'
  suffix = '"}]}'
  cycle = tonumber(args[5] or "0") or 0
  tag = cycle > 0 and "cycle-" or (tostring({}):gsub("table: ", "") .. "-")
  local fill = size - #prefix - #suffix - #tag - 12
  if fill < 0 then fill = 0 end
  local sentence = "The quick brown fox jumps over the lazy dog while the gateway relays every byte. "
  text = string.rep(sentence, math.floor(fill / #sentence) + 1):sub(1, fill)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
  if stream == "true" then
    wrk.headers["Accept"] = "text/event-stream"
  end
end

function request()
  n = n + 1
  if cycle > 0 and n > cycle then
    n = 1
  end
  return wrk.format(nil, nil, nil, prefix .. tag .. string.format("%011d ", n) .. text .. suffix)
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
