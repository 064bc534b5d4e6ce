"""The `wallet` command: thin entry points that parse arguments and call into the services."""

import argparse
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from services.ledger.settings import Settings


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # botocore's INFO lines (where it found credentials) are noise next to one line per call.
    logging.getLogger("botocore").setLevel(logging.WARNING)


def _serve(args: argparse.Namespace) -> int:
    settings = Settings()
    _configure_logging(settings.log_level)
    if args.service == "gateway":
        from gateway.server import serve

        serve(settings)
        return 0
    try:
        if args.service == "command":
            from services.command import server as command_server

            service = command_server.build(settings)
        else:
            from services.local.embedded_postgres import database_url
            from services.query import server as query_server

            service = query_server.build(settings, database_url(settings))
    except OSError as error:
        print(f"wallet serve {args.service}: {error}", file=sys.stderr)
        return 2
    service.serve_until_signalled(settings.shutdown_grace_seconds)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from services.ledger.adapters.database import create_database_engine
    from services.ledger.adapters.migrations import migrate
    from services.local.embedded_postgres import database_url

    migrate(create_database_engine(database_url(Settings()), pool_size=1))
    print("read model schema is up to date")
    return 0


def _update(args: argparse.Namespace) -> int:
    from services.local.embedded_postgres import database_url
    from services.updater.main import run_updater

    settings = Settings()
    _configure_logging(settings.log_level)
    return run_updater(
        settings,
        database_url(settings),
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

    return run_write_benchmark()


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

    create_table = commands.add_parser(
        "create-table", help="create the DynamoDB table when it is missing"
    )
    create_table.set_defaults(run=_create_table)

    dev = commands.add_parser("dev", help="start the local stack on embedded defaults")
    dev.set_defaults(run=_dev)

    bench = commands.add_parser("bench", help="run a benchmark that prints figures")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    bench_write = benchmarks.add_parser("write", help="write throughput and latency")
    bench_write.set_defaults(run=_bench_write)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exit_code: int = args.run(args)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
