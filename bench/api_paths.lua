-- wrk script for bench/api_load.py: spreads requests over a list of paths (one per line, the
-- file named by the first argument), each thread walking its own stride of the list, counts
-- X-Cache hits and misses, and prints one JSON line of figures when the run ends.
-- Usage: wrk ... -s api_paths.lua URL -- PATHS_FILE THREADS

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  table.insert(threads, thread)
  next_id = next_id + 1
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  stride = tonumber(args[2])
  position = id
  math.randomseed(id * 7919)
  hits, misses, not_ok = 0, 0, 0
end

function request()
  local path = paths[position]
  position = position + stride
  if position > #paths then
    position = id
  end
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status ~= 200 then
    not_ok = not_ok + 1
  end
  local cache = headers["X-Cache"] or headers["x-cache"]
  if cache == "hit" then
    hits = hits + 1
  elseif cache == "miss" then
    misses = misses + 1
  end
end

function done(summary, latency, requests)
  local h, m, n = 0, 0, 0
  for _, thread in ipairs(threads) do
    h = h + thread:get("hits")
    m = m + thread:get("misses")
    n = n + thread:get("not_ok")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d,'
      .. ' "p999_us": %d, "max_us": %d, "mean_us": %.1f, "hits": %d, "misses": %d,'
      .. ' "not_200": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean, h, m, n,
    e.connect + e.read + e.write + e.timeout))
end
