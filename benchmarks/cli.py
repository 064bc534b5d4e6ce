"""`wallet bench ...`: parses a benchmark's arguments and runs it. Each benchmark is imported
only when chosen, so one benchmark's needs do not stand in another's way."""

import argparse

# The `bench` extra (pyproject.toml): imported here so that `wallet bench` says what is
# missing before a benchmark starts a stack.
import httpx  # noqa: F401


def _bench_write(args: argparse.Namespace) -> int:
    from benchmarks.write import run_write_benchmark

    return run_write_benchmark(records=args.records)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _bench_read(args: argparse.Namespace) -> int:
    from benchmarks.read import run_read_benchmark

    return run_read_benchmark(calls=args.calls, warmup=args.warmup)


def _bench_updater(args: argparse.Namespace) -> int:
    from benchmarks.updater import run_updater_benchmark

    return run_updater_benchmark(
        passes=args.passes, updates=args.updates, samples=args.samples, threads=args.threads
    )


def _bench_gateway(args: argparse.Namespace) -> int:
    from benchmarks.gateway import run_gateway_benchmark

    return run_gateway_benchmark(
        records=args.records,
        history_calls=args.history_calls,
        statement_records=args.statement_records,
    )


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _bench_soak(args: argparse.Namespace) -> int:
    from benchmarks.soak import run_soak_benchmark

    return run_soak_benchmark(minutes=args.minutes, rate=args.rate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wallet bench", description="Benchmarks that print figures against a baseline."
    )
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    bench_write = benchmarks.add_parser(
        "write", help="write throughput and latency, gRPC vs bare boto3, and vs the seed's scheme"
    )
    bench_write.add_argument(
        "--records",
        type=_positive_int,
        default=2000,
        help="measured calls per path and client count; the contention phase uses half as many",
    )
    bench_write.set_defaults(run=_bench_write)
    bench_read = benchmarks.add_parser(
        "read",
        help="one-year history from ten years of data vs one year, gRPC vs SQL; ListRecords "
        "page 1 vs page 1,000 of a million records, and vs SQL",
    )
    bench_read.add_argument("--calls", type=_positive_int, default=30, help="timed calls per case")
    bench_read.add_argument("--warmup", type=int, default=3, help="untimed calls per case")
    bench_read.set_defaults(run=_bench_read)
    bench_updater = benchmarks.add_parser(
        "updater", help="updater pass time, throughput and --follow freshness"
    )
    bench_updater.add_argument(
        "--passes", type=_positive_int, default=5, help="timed passes after one changed bucket"
    )
    bench_updater.add_argument(
        "--updates",
        type=_positive_int,
        default=100_000,
        help="aggregate updates for the throughput pass",
    )
    bench_updater.add_argument(
        "--threads", type=_positive_int, default=8, help="threads generating the aggregate updates"
    )
    bench_updater.add_argument(
        "--samples", type=_positive_int, default=60, help="freshness samples in --follow mode"
    )
    bench_updater.set_defaults(run=_bench_updater)
    bench_gateway = benchmarks.add_parser(
        "gateway",
        help="on a `wallet dev` stack: REST vs boto3 records, REST vs gRPC history, a year "
        "of records as CSV, start to ready, peak RSS per process",
    )
    bench_gateway.add_argument(
        "--records", type=_positive_int, default=15_000, help="measured calls per write path"
    )
    bench_gateway.add_argument(
        "--history-calls", type=_positive_int, default=100, help="timed calls per history path"
    )
    bench_gateway.add_argument(
        "--statement-records",
        type=_positive_int,
        default=200_000,
        help="records in the year that the CSV export streams",
    )
    bench_gateway.set_defaults(run=_bench_gateway)
    bench_soak = benchmarks.add_parser(
        "soak",
        help="a `wallet dev` stack under constant load through the gateway: throughput, "
        "errors, latency, freshness and memory over time; every deposit counted at the end",
    )
    bench_soak.add_argument(
        "--minutes", type=_positive_float, default=2.0, help="how long the load lasts"
    )
    bench_soak.add_argument(
        "--rate", type=_positive_float, default=50.0, help="requests per second, paced"
    )
    bench_soak.set_defaults(run=_bench_soak)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    exit_code: int = args.run(args)
    return exit_code
