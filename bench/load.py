"""Load generation on loopback: ``wrk`` when installed (Debian's package), else a small threaded client.

Every run is bounded in time (``duration``) and in connections. Each request carries one of the
given bearer keys, round robin, so no single key or user is hammered. Results: requests per second,
p50 and p99 latency in milliseconds, and how many answers were not 2xx (a run with any is invalid).
"""

from __future__ import annotations

import http.client
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str

    def as_dict(self) -> dict:
        return {
            key: round(value, 3) if isinstance(value, float) else value for key, value in asdict(self).items()
        }


#: ``auto`` (wrk when installed), ``wrk`` or ``python``; set by ``bench/run.py --loadgen``.
PREFERRED = "auto"


def have_wrk() -> bool:
    return PREFERRED != "python" and shutil.which("wrk") is not None


_WRK_SCRIPT = """
local keys = {%(keys)s}
local i = math.random(#keys) - 1
wrk.method = "%(method)s"
wrk.body = %(body)s
request = function()
  i = i %% #keys + 1
  return wrk.format(nil, nil, {
    ["Host"] = wrk.headers["Host"],
    ["Authorization"] = "Bearer " .. keys[i],
    ["Content-Type"] = "application/json",
  }, nil)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for ASCII


def run_wrk(url: str, *, keys: list[str], body: str, duration: float, connections: int) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            _WRK_SCRIPT
            % {
                "keys": ", ".join(_lua_string(key) for key in keys),
                "method": "POST",
                "body": _lua_string(body),
            }
        )
    try:
        completed = subprocess.run(  # noqa: S603
            [
                shutil.which("wrk") or "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        )
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next(line for line in completed.stdout.splitlines() if line.startswith("WRK-JSON "))
    data = json.loads(line.removeprefix("WRK-JSON "))
    seconds = data["duration_us"] / 1e6
    return LoadResult(
        requests=data["requests"],
        seconds=seconds,
        rps=data["requests"] / seconds if seconds else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"],
        tool="wrk",
    )


def run_threads(url: str, *, keys: list[str], body: str, duration: float, connections: int) -> LoadResult:
    """The fallback: ``connections`` threads, each with its own ``http.client`` connection."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.monotonic() + duration

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        index = slot
        while time.monotonic() < deadline:
            key = keys[index % len(keys)]
            index += connections
            started = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    parts.path,
                    body=body,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                if not 200 <= response.status < 300:
                    errors[slot] += 1
            except (OSError, http.client.HTTPException):
                errors[slot] += 1
                conn.close()
                continue
            latencies[slot].append(time.perf_counter() - started)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 30)
    seconds = time.monotonic() - started
    merged = sorted(value for values in latencies for value in values)
    count = len(merged)
    return LoadResult(
        requests=count,
        seconds=seconds,
        rps=count / seconds if seconds else 0.0,
        p50_ms=merged[count // 2] * 1000 if count else 0.0,
        p99_ms=merged[min(count - 1, int(count * 0.99))] * 1000 if count else 0.0,
        errors=sum(errors),
        tool="python-threads",
    )


def run(url: str, *, keys: list[str], body: str, duration: float, connections: int) -> LoadResult:
    runner = run_wrk if have_wrk() else run_threads
    return runner(url, keys=keys, body=body, duration=duration, connections=connections)


def median_result(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        requests=sum(result.requests for result in results),
        seconds=sum(result.seconds for result in results),
        rps=statistics.median(result.rps for result in results),
        p50_ms=statistics.median(result.p50_ms for result in results),
        p99_ms=statistics.median(result.p99_ms for result in results),
        errors=sum(result.errors for result in results),
        tool=results[0].tool,
    )


@dataclass
class BurstAnswer:
    status: int
    body: bytes
    worker: str


def burst(
    host: str, port: int | list[int], *, count: int, method: str, path: str, headers: dict, body: str | None
):
    """``count`` requests released at the same instant, each on its own connection and thread;
    with several ports (two hosts), request ``i`` goes to ``ports[i % len(ports)]``."""
    ports = port if isinstance(port, list) else [port]
    barrier = threading.Barrier(count)
    answers: list[BurstAnswer | BaseException] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        conn = http.client.HTTPConnection(host, ports[index % len(ports)], timeout=60)
        try:
            conn.connect()
            barrier.wait(timeout=30)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            answer: BurstAnswer | BaseException = BurstAnswer(
                response.status, response.read(), response.getheader("X-Bench-Worker", "")
            )
        except BaseException as error:  # reported with the results
            answer = error
        finally:
            conn.close()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers
