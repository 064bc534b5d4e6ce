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
    from services.command import server

    try:
        server.serve(settings)
    except OSError as error:
        print(f"wallet serve {args.service}: {error}", file=sys.stderr)
        return 2
    return 0


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
    serve.add_argument("service", choices=["command"])
    serve.set_defaults(run=_serve)

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
