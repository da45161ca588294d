-- wrk script for the "many small durable uploads" figure (SPEC §12).
--
-- Environment:
--   BENCH_TARGET      "hangar" (POST /uploads?name=s.bin, bearer token), "nginx" (PUT /dav/...)
--                     or "urls" (PUT to the presigned URLs of BENCH_URLS: the S3 server directly)
--   BENCH_URLS        a file of URLs, one per line (urls only): wrk thread i of BENCH_THREADS
--                     takes lines i, i + BENCH_THREADS, ... and starts again at its first when done
--   BENCH_THREADS     wrk's -t (urls only), default 2
--   BENCH_TOKEN       the Hangar bearer token (hangar only)
--   BENCH_RUN         a tag for this run, so that nginx file names never repeat across rounds
--   BENCH_BODY_BYTES  body size, default 4096
--
-- Every request has a unique body (a "<run>-<thread>-<counter>-" prefix padded with 'x' to the
-- size), so Hangar's content-addressed store cannot deduplicate them, and a unique nginx path
-- (/dav/<run>/u-<thread>-<counter>.bin), so nginx creates a new file each time.
-- done() prints one machine-readable line, "BENCH_RESULT requests=N ok=N bad=N ...", that
-- bench/run.sh checks: it fails the run when most responses are not 2xx.

local target = os.getenv("BENCH_TARGET") or "nginx"
local token = os.getenv("BENCH_TOKEN") or ""
local run = os.getenv("BENCH_RUN") or "0"
local size = tonumber(os.getenv("BENCH_BODY_BYTES") or "4096")
local urls_file = os.getenv("BENCH_URLS")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")

local threads = {}
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_id", next_thread)
  table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
counter = 0
ok = 0
bad = 0
first_bad = 0
local filler
local headers = {}
local method
local hangar_path = "/uploads?name=s.bin"
-- urls: this thread's paths (with their query strings), the host part taken off
local paths = {}

function init(args)
  filler = string.rep("x", size)
  headers["Content-Type"] = "application/octet-stream"
  if target == "hangar" then
    headers["Authorization"] = "Bearer " .. token
    method = "POST"
  else
    method = "PUT"
  end
  if target == "urls" then
    local line_no = 0
    for line in io.lines(urls_file) do
      if line_no % nthreads == thread_id - 1 then
        table.insert(paths, (string.gsub(line, "^https?://[^/]+", "")))
      end
      line_no = line_no + 1
    end
    assert(#paths > 0, "no URLs for this thread in " .. tostring(urls_file))
  end
end

function request()
  counter = counter + 1
  local tag = string.format("%s-%d-%d-", run, thread_id, counter)
  local body = tag .. string.sub(filler, #tag + 1)
  local path
  if target == "hangar" then
    path = hangar_path
  elseif target == "urls" then
    path = paths[(counter - 1) % #paths + 1]
  else
    path = string.format("/dav/%s/u-%d-%d.bin", run, thread_id, counter)
  end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == 0 then
      first_bad = status
    end
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad, first = 0, 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + (t:get("ok") or 0)
    total_bad = total_bad + (t:get("bad") or 0)
    local f = t:get("first_bad") or 0
    if first == 0 and f ~= 0 then
      first = f
    end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d ok=%d bad=%d first_bad_status=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, total_ok, total_bad, first, e.connect, e.read, e.write, e.timeout))
end
