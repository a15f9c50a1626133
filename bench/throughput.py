"""HTTP measurements against the benchmark's gunicorn: interleaved load runs of the token request and
the reference views (bench/views.py) at 4 and at 32 connections, and a burst of concurrent
requests on one expired token (one provider refresh)."""

from __future__ import annotations

import hashlib
import json
import statistics
import time
import urllib.error
import urllib.request

from bench import load
from bench.env import TOKEN_BODY, log


def probe(port: int, path: str, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=TOKEN_BODY.encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def endpoints(token_api: bool) -> dict[str, str]:
    found = {"floor": "/bench/floor", "baseline": "/bench/baseline", "vault_only": "/bench/vault-only"}
    if token_api:
        found["floor_prepared"] = "/bench/floor-prepared"
        found["token"] = "/api/v1/token"
    return found


def _rounds(
    port: int, keys: list[str], paths: dict[str, str], *, rounds: int, duration: float, connections: int
):
    runs: dict[str, list[load.LoadResult]] = {name: [] for name in paths}
    names = list(paths)
    for round_number in range(rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            result = load.run(
                f"http://127.0.0.1:{port}{paths[name]}",
                keys=keys,
                body=TOKEN_BODY,
                duration=duration,
                connections=connections,
            )
            runs[name].append(result)
            log(
                f"  c={connections:<3} {name:14} round {round_number + 1}: {result.rps:8.1f} req/s  "
                f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
            )
    return runs


def http_throughput(port: int, keys: list[str], args, token_api: bool) -> dict:
    paths = endpoints(token_api)
    answered = {name: 0 for name in paths}  # 200s, for the check that every token is on record
    for name, path in paths.items():
        status, body = probe(port, path, keys[0])
        if status != 200 or (not name.startswith("floor") and not body.get("access_token")):
            raise RuntimeError(f"{path} answered {status} {body}")
        answered[name] += 1
    for name, path in paths.items():  # warm-up: every worker has imported and connected
        url = f"http://127.0.0.1:{port}{path}"
        warm = load.run(url, keys=keys, body=TOKEN_BODY, duration=1, connections=4)
        answered[name] += warm.requests - warm.errors
    runs = _rounds(
        port, keys, paths, rounds=args.rounds, duration=args.duration, connections=args.connections
    )
    summary = {name: load.median_result(results).as_dict() for name, results in runs.items()}
    out: dict = {"endpoints": summary, "rounds": {n: [r.as_dict() for r in rs] for n, rs in runs.items()}}
    # Each ratio is the median of the per-round ratios: the two runs of a round are adjacent in time,
    # so a slow patch of the machine (other processes, a checkpoint) hits both and cancels out.
    pairs = [("baseline", "floor"), ("vault_only", "floor"), ("vault_only", "baseline")]
    if token_api:
        pairs = [("token", "floor_prepared"), ("token", "floor"), ("token", "baseline"), *pairs]
    for top, bottom in pairs:
        per_round = [round(a.rps / b.rps, 3) for a, b in zip(runs[top], runs[bottom], strict=True)]
        out[f"{top}_vs_{bottom}"] = round(statistics.median(per_round), 3)
        out[f"{top}_vs_{bottom}_rounds"] = per_round
    if token_api:
        out["latency"] = latency_at(port, keys, args)
        latency_runs = [r for by_c in out["latency"].values() for r in by_c["token_runs"]]
        out["token_answers"] = (
            answered["token"]
            + sum(r.requests - r.errors for r in runs["token"])
            + sum(r["requests"] - r["errors"] for r in latency_runs)
        )
        # A request in flight when a run ends is served and recorded after the count stopped, and
        # one the load generator gave up on (an error) may have been served all the same.
        out["token_in_flight_bound"] = (
            4
            + args.connections * len(runs["token"])
            + sum(int(c) * len(by_c["token_runs"]) for c, by_c in out["latency"].items())
            + sum(r.errors for r in runs["token"])
            + sum(r["errors"] for r in latency_runs)
        )
    return out


def latency_at(port: int, keys: list[str], args) -> dict:
    """p50 and p99 of the token request (and its best floor, for reading) at 4 and 32 connections."""
    paths = {"token": "/api/v1/token", "floor_prepared": "/bench/floor-prepared"}
    out = {}
    for connections in (4, 32):
        runs = _rounds(
            port,
            keys,
            paths,
            rounds=max(1, args.rounds // 2),
            duration=args.duration,
            connections=connections,
        )
        out[str(connections)] = {
            name: load.median_result(results).as_dict() for name, results in runs.items()
        }
        out[str(connections)]["token_runs"] = [r.as_dict() for r in runs["token"]]
    return out


def concurrent_refresh(port: int, real, key: str | None, count: int) -> dict:
    from bench.seed import expire
    from sandbox import state

    expire(real.token_set_id)
    state.reset("github")
    if key is not None:
        method, path, body = "POST", "/api/v1/token", TOKEN_BODY
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        via = "POST /api/v1/token"
    else:
        method, path, body = "GET", f"/bench/vault-token?user={real.user.pk}", None
        headers = {}
        via = "bench/vault-token (vault.get_access_token; token API not available yet)"
    started = time.perf_counter()
    answers = load.burst("127.0.0.1", port, count=count, method=method, path=path, headers=headers, body=body)
    return {"via": via, **tally(answers, count), "seconds": round(time.perf_counter() - started, 3)}


def tally(answers: list, count: int) -> dict:
    """Statuses, distinct tokens and worker processes of a burst, and the provider's refresh count."""
    from sandbox import state

    failures = [repr(a) for a in answers if isinstance(a, BaseException)]
    ok = [a for a in answers if not isinstance(a, BaseException)]
    statuses: dict[str, int] = {}
    tokens = set()
    for answer in ok:
        statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
        if answer.status == 200:
            data = json.loads(answer.body)
            tokens.add(data.get("token_sha256") or hashlib.sha256(data["access_token"].encode()).hexdigest())
    return {
        "requests": count,
        "statuses": statuses,
        "client_errors": failures[:5],
        "distinct_tokens": len(tokens),
        "workers_seen": len({a.worker for a in ok if a.worker}),
        "provider_refresh_calls": state.refresh_count("github"),
    }
