"""The benchmark's table: one column per N, printed and written as Markdown (bench/report.py)."""

from __future__ import annotations

from bench.report import write_markdown

VIEWS = (
    ("token", "POST /api/v1/token"),
    ("floor_prepared", "floor, API's own key query"),
    ("floor", "floor view (ORM key query)"),
    ("baseline", "plaintext baseline"),
    ("vault_only", "vault only (no API bookkeeping)"),
)


def _rotation(rotation: dict) -> str:
    return f"{rotation['rows_per_s']:.0f} ({rotation['rotated']:,} rows)"


def _rows(sizes: list[dict]) -> list[list[str]]:
    rows: list[list[str]] = []

    def row(label: str, values) -> None:
        rows.append([label, *values])

    if all("token_vs_floor_prepared" in size["http"] for size in sizes):
        row(
            "token / floor with API's key query",
            [f"{s['http']['token_vs_floor_prepared']:.2f}" for s in sizes],
        )
    for name, label in VIEWS:
        if all(name in size["http"]["endpoints"] for size in sizes):
            row(f"{label}: req/s", [f"{s['http']['endpoints'][name]['rps']:.0f}" for s in sizes])
            row(
                f"{label}: p50 / p99 ms",
                ["{p50_ms:.1f} / {p99_ms:.1f}".format(**s["http"]["endpoints"][name]) for s in sizes],
            )
    for connections in ("4", "32"):
        if all(connections in size["http"].get("latency", {}) for size in sizes):
            row(
                f"token p50 / p99 ms at {connections} connections",
                [
                    "{p50_ms:.1f} / {p99_ms:.1f}".format(**s["http"]["latency"][connections]["token"])
                    for s in sizes
                ],
            )
            row(
                f"floor (API's key query) p50 / p99 ms at {connections}",
                [
                    "{p50_ms:.1f} / {p99_ms:.1f}".format(
                        **s["http"]["latency"][connections]["floor_prepared"]
                    )
                    for s in sizes
                ],
            )
    if all("token_vs_floor" in size["http"] for size in sizes):
        row("token / floor (throughput)", [f"{s['http']['token_vs_floor']:.2f}" for s in sizes])
        row("token / baseline (throughput)", [f"{s['http']['token_vs_baseline']:.2f}" for s in sizes])
    row("vault only / floor (throughput)", [f"{s['http']['vault_only_vs_floor']:.2f}" for s in sizes])
    row(
        "get_access_token/s : pk fetch/s",
        [
            f"{s['in_process']['get_access_token_per_s']:.0f} : {s['in_process']['pk_fetch_per_s']:.0f}"
            f" = {s['in_process']['ratio']:.2f}"
            for s in sizes
        ],
    )
    row("queries per token request", [str(s.get("token_request", {}).get("queries", "n/a")) for s in sizes])
    row(
        "token answers / records moved",
        [
            f"{r['token_answers']:,} / {r['rows_added']:,}" if (r := s["http"].get("records")) else "n/a"
            for s in sizes
        ],
    )
    row(
        "connections page queries (1 / 25 ids)",
        [
            f"{s['connections_page']['1']['queries']} / {s['connections_page']['25']['queries']}"
            for s in sizes
        ],
    )
    row("hot statement plans", ["index only" if s.get("plans_index_only") else "SEQ SCAN" for s in sizes])
    row("seed time", [f"{s.get('seed_seconds', 0):.0f} s" for s in sizes])
    row(
        "vault_rotate_keys rows/s",
        [_rotation(s["rotation"]) if "rotation" in s else "not run" for s in sizes],
    )
    row(
        "vault_rotate_keys peak RSS",
        [f"{s['rotation']['peak_rss_mb']:.1f} MB" if "rotation" in s else "not run" for s in sizes],
    )
    if all("refresh" in size for size in sizes):
        row(
            "vault_refresh refreshes/s (due sets, workers)",
            [
                f"{s['refresh']['refreshes_per_s']:.0f} ({s['refresh']['due']:,}, {s['refresh']['workers']})"
                for s in sizes
            ],
        )
        row("vault_refresh peak RSS", [f"{s['refresh']['peak_rss_mb']:.1f} MB" for s in sizes])
    row(
        "50 concurrent on expired: refreshes",
        [
            "{provider_refresh_calls} ({workers_seen} workers, {distinct_tokens} token)".format(
                **s["concurrency"]
            )
            for s in sizes
        ],
    )
    return rows


def _extra_lines(results: dict) -> list[str]:
    lines = []
    activity = results.get("activity")
    if activity:
        empty, full = activity["empty"], activity["seeded"]
        lines.append(
            f"activity at {activity['rows']:,} rows (seeded in {activity['seed_seconds']:.0f} s): "
            "token request "
            f"{empty['token_request_ms']:.2f} -> {full['token_request_ms']:.2f} ms in-process; activity page "
            f"first {empty['activity_first_ms']:.1f} -> {full['activity_first_ms']:.1f} ms, deep "
            f"{full.get('activity_deep_ms', 'n/a')} ms; retention: {activity['retention']}"
        )
    hosts = results.get("two_hosts")
    if hosts:
        limit, refresh = hosts["limit"], hosts["refresh"]
        lines.append(
            f"two hosts: limit {limit['allowed']} of {limit['requests']} allowed (limit {limit['limit']}); "
            f"refresh calls {refresh['provider_refresh_calls']} for {refresh['requests']} requests; "
            f"session valid on both: {hosts['session']['valid_on_both']}"
        )
    lines.append(f"wall time: {results.get('wall_seconds', 0):.0f} s")
    return lines


def print_table(results: dict) -> None:
    sizes = [results["sizes"][key] for key in sorted(results["sizes"], key=int)]
    header = ["", *[f"N={size['n']:,}" for size in sizes]]
    rows = _rows(sizes)
    write_markdown(results, header, rows)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    m = results["machine"]
    print()
    print(f"linking_site benchmark, {results['taken_at']}")
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}, "
        f"Django {m['django']}, PostgreSQL {m['postgresql']}; load: {m['load_generator']}; "
        f"cache: {results['config']['cache']}"
    )
    print(line)
    for r in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
    print(line)
    for extra in _extra_lines(results):
        print(extra)
    print("targets (issues 7 and 17):")
    for target in results["targets"]:
        print(f"  {target['result']:4}  {target['target']}  [{target['detail']}]")
    print()
