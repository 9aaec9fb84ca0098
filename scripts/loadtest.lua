-- wrk script for scripts/loadtest.sh: POSTs the request bodies of a file (one JSON body per
-- line, cycled from a per-thread offset) and stops each thread after its share of the requests,
-- so a run is bounded by count: wrk itself only knows durations, so the last thread to finish
-- sends wrk the SIGINT that ends the run early (each finished thread leaves a marker file).
-- Arguments (after --): BODIES_FILE REQUESTS_PER_THREAD THREADS MARKER_PREFIX [API_KEY].
local ffi = require("ffi")
ffi.cdef [[
int getpid(void);
int kill(int pid, int sig);
]]
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  limit = tonumber(args[2])
  nthreads = tonumber(args[3])
  marker = args[4]
  index = (id * 7919) % #bodies
  answered = 0
  non200 = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[5] ~= nil and args[5] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[5]
  end
end

function request()
  index = index % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[index])
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then
    non200 = non200 + 1
  end
  if answered == limit then
    io.open(marker .. id, "w"):close()
    local finished = 0
    for i = 0, nthreads - 1 do
      local f = io.open(marker .. i, "r")
      if f then
        finished = finished + 1
        f:close()
      end
    end
    if finished == nthreads then
      ffi.C.kill(ffi.C.getpid(), 2)  -- SIGINT: wrk stops and reports
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local n, bad = 0, 0
  for _, t in ipairs(threads) do
    n = n + t:get("answered")
    bad = bad + t:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    "LOADTEST requests=%d non200=%d socket_errors=%d duration_s=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    n, bad, e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
