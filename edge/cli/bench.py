"""``nemg bench NAME... --json``: one JSON object per benchmark."""

from __future__ import annotations

import argparse
import json

from edge.cli.options import add_ray_option


def configure(parser: argparse.ArgumentParser) -> None:
    from benches.harness import BENCHMARKS

    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run ({', '.join(sorted(BENCHMARKS))}, or 'all')")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--list", action="store_true", help="list benchmarks and exit")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--quick", action="store_true",
                        help="tiny inputs: checks the benchmark runs, figures not meaningful")
    parser.add_argument("--all-cpus", action="store_true",
                        help="do not pin the process to one CPU")
    add_ray_option(parser)  # crosssim's per-recording work on a cluster


def run(args: argparse.Namespace) -> int:
    from benches.harness import (
        BENCHMARKS,
        BenchOptions,
        limit_threads_env,
        pin_to_one_cpu,
        run_benchmark,
    )
    from edge.errors import ConfigError

    if args.list:
        for name in sorted(BENCHMARKS):
            print(name)
        return 0
    names = sorted(BENCHMARKS) if args.names in ([], ["all"]) else args.names
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(BENCHMARKS))})")
    limit_threads_env()
    cpu = None if args.all_cpus else pin_to_one_cpu()
    opts = BenchOptions(repeats=args.repeats, warmup=args.warmup, quick=args.quick)
    for name in names:
        result = run_benchmark(name, opts)
        result["pinned_cpu"] = cpu
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(f"{name}:")
            for key, value in result.items():
                if key != "benchmark":
                    print(f"  {key}: {value}")
    return 0
