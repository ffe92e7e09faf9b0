#!/usr/bin/env python3
"""Two targets of one bench run, round by round: the figures the goals are judged by.

    ./bench/compare.py bench/results/<run>.json A B [--scenario json-1k-64c]

For each round in which both ran: A's and B's rps, their ratio, and their CPU per request
(gateway or nginx processes) with its ratio; then the median of the per-round ratios with
their range (rounds run back to back, so the machine's drift between rounds cancels in a
ratio), the CPU per request over all rounds, and Postgres' and Redis' CPU per request.
E.g. `switchyard switchyard-nospendlogs` (spend logging on against off),
`switchyard-cache-miss switchyard-unique` (every request a cache miss against the cache
off), `switchyard-cache-mem nginx` (a memory hit against the proxy hop).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys


def per_request(runs: list[dict], field: str) -> float:
    requests = sum(r["requests"] for r in runs)
    return sum(r.get(field, 0) for r in runs) * 1e6 / 100 / requests if requests else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a bench/results/*.json file")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--scenario", default="json-1k-64c")
    args = ap.parse_args()
    with open(args.results, encoding="utf-8") as f:
        data = json.load(f)
    rounds: dict[int, dict[str, dict]] = {}
    for run in data["runs"]:
        if run.get("scenario") == args.scenario and run.get("requests"):
            rounds.setdefault(run["round"], {})[run["target"]] = run
    both = [r for _, r in sorted(rounds.items()) if args.a in r and args.b in r]
    if not both:
        print(f"no round of {args.scenario} ran both {args.a} and {args.b}", file=sys.stderr)
        return 1

    def cpu(run: dict) -> float:
        return run["cpu_ticks"] * 1e6 / 100 / run["requests"]  # clock ticks of 10 ms

    rps_ratios, cpu_ratios = [], []
    print(f"round  {args.a} rps  {args.b} rps  ratio  |  CPU µs/req  {args.a}  {args.b}  ratio")
    for i, r in enumerate(both):
        a, b = r[args.a], r[args.b]
        rps_ratios.append(a["rps"] / b["rps"])
        cpu_ratios.append(cpu(a) / cpu(b))
        print(f"{i:5d}  {a['rps']:10,.0f}  {b['rps']:10,.0f}  {rps_ratios[-1]:.3f}  |  "
              f"{cpu(a):6.1f}  {cpu(b):6.1f}  {cpu_ratios[-1]:.3f}")
    runs_a = [r[args.a] for r in both]
    runs_b = [r[args.b] for r in both]
    print(f"rps ratio: median {statistics.median(rps_ratios):.3f} ({min(rps_ratios):.3f}-{max(rps_ratios):.3f})")
    print(f"CPU ratio: median {statistics.median(cpu_ratios):.3f} ({min(cpu_ratios):.3f}-{max(cpu_ratios):.3f}), "
          f"{sum(c < 1 for c in cpu_ratios)} of {len(cpu_ratios)} rounds below 1")
    print(f"CPU µs/req over all rounds: {per_request(runs_a, 'cpu_ticks'):.1f} / {per_request(runs_b, 'cpu_ticks'):.1f}; "
          f"Postgres {per_request(runs_a, 'db_ticks'):.1f} / {per_request(runs_b, 'db_ticks'):.1f}; "
          f"Redis {per_request(runs_a, 'redis_ticks'):.1f} / {per_request(runs_b, 'redis_ticks'):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
