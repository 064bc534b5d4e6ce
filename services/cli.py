"""The `wallet` command: thin entry points that parse arguments and call into the services."""

import argparse
import logging
import sys

from pydantic import ValidationError
from pythonjsonlogger.json import JsonFormatter

from services import client_commands
from services.auth.configured import AuthNotConfigured
from services.ledger.settings import Settings


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # botocore's INFO lines (where it found credentials) are noise next to one line per call.
    logging.getLogger("botocore").setLevel(logging.WARNING)


def _database_url(settings: Settings) -> str:
    """The read model's server. Only `wallet dev` starts an embedded one: a process on AWS
    without its database setting must stop, not answer from an empty local database."""
    if settings.database_url is None:
        sys.exit(
            "wallet: set DATABASE_URL (or WALLET_DATABASE_HOST and its companions); "
            "`wallet dev` starts a local PostgreSQL for you"
        )
    return settings.database_url


def _serve(args: argparse.Namespace) -> int:
    settings = Settings()
    _configure_logging(settings.log_level)
    try:
        if args.service == "gateway":
            from gateway.server import serve

            serve(settings)
            return 0
        from services.ledger.metrics import serve_metrics

        if args.service == "command":
            from services.command import server as command_server

            service = command_server.build(settings)
            serve_metrics(settings.listen_host, settings.command_metrics_port)
        else:
            from services.query import server as query_server

            service = query_server.build(settings, _database_url(settings))
            serve_metrics(settings.listen_host, settings.query_metrics_port)
    except (OSError, AuthNotConfigured) as error:
        print(f"wallet serve {args.service}: {error}", file=sys.stderr)
        return 2
    service.serve_until_signalled(settings.shutdown_grace_seconds)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from services.ledger.adapters.database import create_database_engine
    from services.ledger.adapters.migrations import migrate

    settings = Settings()
    engine = create_database_engine(
        _database_url(settings), pool_size=1, iam_auth=settings.database_iam_auth
    )
    migrate(engine)
    print("read model schema is up to date")
    return 0


def _update(args: argparse.Namespace) -> int:
    from services.updater.main import run_updater

    settings = Settings()
    _configure_logging(settings.log_level)
    return run_updater(
        settings,
        _database_url(settings),
        follow=args.follow,
        rebuild=args.rebuild,
        segments=args.segments,
    )


def _create_table(args: argparse.Namespace) -> int:
    from services.ledger.adapters.ledger_table import ensure_table
    from services.ledger.adapters.write_store import dynamodb_client

    settings = Settings()
    created = ensure_table(dynamodb_client(), settings.table_name)
    print(f"table {settings.table_name} {'created' if created else 'already exists'}")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from services.local.dev_stack import PortBusy, run_dev_stack
    from services.local.dynamodb_local import DynamoDBLocalError

    try:
        return run_dev_stack()
    except (PortBusy, DynamoDBLocalError) as error:
        print(f"wallet dev: {error}", file=sys.stderr)
        return 2


def _bench_write(args: argparse.Namespace) -> int:
    from services.bench.write import run_write_benchmark

    return run_write_benchmark(records=args.records)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _bench_read(args: argparse.Namespace) -> int:
    from services.bench.read import run_read_benchmark

    return run_read_benchmark(calls=args.calls, warmup=args.warmup)


def _bench_updater(args: argparse.Namespace) -> int:
    from services.bench.updater import run_updater_benchmark

    return run_updater_benchmark(
        passes=args.passes, updates=args.updates, samples=args.samples, threads=args.threads
    )


def _bench_gateway(args: argparse.Namespace) -> int:
    from services.bench.gateway import run_gateway_benchmark

    return run_gateway_benchmark(records=args.records, history_calls=args.history_calls)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _bench_soak(args: argparse.Namespace) -> int:
    from services.bench.soak import run_soak_benchmark

    return run_soak_benchmark(minutes=args.minutes, rate=args.rate)


def _reconcile(args: argparse.Namespace) -> int:
    from services.updater.main import run_reconcile

    settings = Settings()
    return run_reconcile(settings, _database_url(settings), check_records=args.records)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wallet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a service")
    serve.add_argument("service", choices=["command", "query", "gateway"])
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply the read model's schema migrations")
    migrate.set_defaults(run=_migrate)

    update = commands.add_parser(
        "update", help="project new stream records into the read model (one pass, then exit)"
    )
    mode = update.add_mutually_exclusive_group()
    mode.add_argument(
        "--follow", action="store_true", help="keep polling (WALLET_UPDATER_INTERVAL_SECONDS)"
    )
    mode.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild from a parallel scan of the table (also recovers expired checkpoints)",
    )
    update.add_argument(
        "--segments", type=int, default=4, help="parallel scan segments for --rebuild"
    )
    update.set_defaults(run=_update)

    reconcile = commands.add_parser(
        "reconcile", help="compare the read model with the table's aggregates (exit 1 if off)"
    )
    reconcile.add_argument(
        "--records", action="store_true", help="also compare the aggregates with their records"
    )
    reconcile.set_defaults(run=_reconcile)

    create_table = commands.add_parser(
        "create-table", help="create the DynamoDB table when it is missing"
    )
    create_table.set_defaults(run=_create_table)

    client_commands.add_commands(commands)

    dev = commands.add_parser("dev", help="start the local stack on embedded defaults")
    dev.set_defaults(run=_dev)

    bench = commands.add_parser("bench", help="run a benchmark that prints figures")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
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
        "read", help="one-year history from ten years of data vs one year, gRPC vs SQL"
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
        help="on a `wallet dev` stack: REST vs boto3 records, REST vs gRPC history, start "
        "to ready, peak RSS per process",
    )
    bench_gateway.add_argument(
        "--records", type=_positive_int, default=15_000, help="measured calls per write path"
    )
    bench_gateway.add_argument(
        "--history-calls", type=_positive_int, default=100, help="timed calls per history path"
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        exit_code: int = args.run(args)
    except ValidationError as error:  # a WALLET_* variable that does not parse
        # Without the values: a secret that fails validation must not reach the logs.
        problems = "\n".join(
            f"  {'.'.join(str(part) for part in e['loc'])}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
        print(f"wallet {args.command}: invalid settings:\n{problems}", file=sys.stderr)
        return 2
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
