"""The `wallet` command: thin entry points that parse arguments and call into the services."""

import argparse
import importlib
import logging
import sys

from pydantic import ValidationError
from pythonjsonlogger.json import JsonFormatter

from services.platform.auth.configured import AuthNotConfigured
from services.platform.settings import (
    CommandSettings,
    DatabaseSettings,
    GatewaySettings,
    LogLevel,
    QuerySettings,
    ReconcileSettings,
    TableSettings,
    UpdaterSettings,
)
from wallet_cli import client_commands

BENCHMARKS_ENTRY = "benchmarks.cli"


def _configure_logging(level: LogLevel) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # botocore's INFO lines (where it found credentials) are noise next to one line per call.
    logging.getLogger("botocore").setLevel(logging.WARNING)


def _database_url(settings: DatabaseSettings) -> str:
    """The read model's server. Only `wallet dev` starts an embedded one: a process on AWS
    without its database setting must stop, not answer from an empty local database."""
    if settings.database_url is None:
        sys.exit(
            "wallet: set DATABASE_URL (or WALLET_DATABASE_HOST and its companions); "
            "`wallet dev` starts a local PostgreSQL for you"
        )
    return settings.database_url


def _serve(args: argparse.Namespace) -> int:
    # Each service reads (and validates) its own settings only.
    settings: GatewaySettings | CommandSettings | QuerySettings
    try:
        if args.service == "gateway":
            from gateway.server import serve

            settings = GatewaySettings()
            _configure_logging(settings.log_level)
            serve(settings)
            return 0
        from services.platform.metrics import serve_metrics

        if args.service == "command":
            from services.command import server as command_server

            settings = CommandSettings()
            _configure_logging(settings.log_level)
            service = command_server.build(settings)
            serve_metrics(settings.listen_host, settings.command_metrics_port)
        else:
            from services.query import server as query_server

            settings = QuerySettings()
            _configure_logging(settings.log_level)
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

    settings = DatabaseSettings()
    engine = create_database_engine(
        _database_url(settings), pool_size=1, iam_auth=settings.database_iam_auth
    )
    migrate(engine)
    print("read model schema is up to date")
    return 0


def _update(args: argparse.Namespace) -> int:
    from services.updater.main import run_updater

    settings = UpdaterSettings()
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

    settings = TableSettings()
    created = ensure_table(dynamodb_client(), settings.table_name)
    print(f"table {settings.table_name} {'created' if created else 'already exists'}")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from wallet_cli.local.dev_stack import PortBusy, run_dev_stack
    from wallet_cli.local.dynamodb_local import DynamoDBLocalError

    try:
        return run_dev_stack()
    except (PortBusy, DynamoDBLocalError) as error:
        print(f"wallet dev: {error}", file=sys.stderr)
        return 2


def _bench(args: argparse.Namespace) -> int:
    # Looked up by name: the benchmarks are a source checkout's, not the product's (the image
    # has none), and need the `bench` extra.
    try:
        run_benchmark = importlib.import_module(BENCHMARKS_ENTRY).main
    except ModuleNotFoundError as missing:
        print(
            f"wallet bench: {missing.name} is not installed. The benchmarks run from a source "
            "checkout with their extra: pip install -e '.[bench]' (docs/benchmarks.md)",
            file=sys.stderr,
        )
        return 2
    exit_code: int = run_benchmark(args.benchmark_arguments)
    return exit_code


def _reconcile(args: argparse.Namespace) -> int:
    from services.updater.main import run_reconcile

    settings = ReconcileSettings()
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

    bench = commands.add_parser(
        "bench",
        help="run a benchmark that prints figures (a source checkout's, with the bench extra)",
        add_help=False,
    )
    bench.set_defaults(run=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `wallet bench` hands every argument after it to the benchmarks' own parser.
    args, benchmark_arguments = parser.parse_known_args(argv)
    if benchmark_arguments and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(benchmark_arguments)}")
    args.benchmark_arguments = benchmark_arguments
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
