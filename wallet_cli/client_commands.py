"""`wallet record`, `wallet history`, `wallet records` and `wallet token`: a gRPC client
for people and scripts, and dev tokens for the gateway.

The clients send --token (default $WALLET_TOKEN); without one they mint a short-lived token
for the wallet from the dev stack's secret, so they just work against `wallet dev`.
"""

import argparse
import functools
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, timedelta, timezone

import grpc

from gateway.statements import RECORD_COLUMNS, csv_rows, record_row
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.instants import parse_rfc3339
from services.platform.auth.configured import dev_token
from services.platform.grpc_auth import bearer_metadata
from services.platform.grpc_errors import field_violations
from services.platform.proto_time import datetime_to_timestamp
from services.platform.settings import ClientSettings
from wallet.v1 import command_pb2, command_pb2_grpc, query_pb2, query_pb2_grpc, records_pb2

_DEADLINE = 10.0
_CLIENT_TOKEN_TTL = timedelta(minutes=5)
_TTL = re.compile(r"(\d+)([smhd])")
_TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

Metadata = tuple[tuple[str, str], ...]


def _metadata(settings: ClientSettings, wallet_id: str, token: str | None) -> Metadata:
    if settings.auth == "disabled":
        return ()
    token = token or dev_token(settings, [wallet_id], _CLIENT_TOKEN_TTL, subject="wallet-cli")
    return bearer_metadata(token) if token else ()


def _fail(error: grpc.RpcError) -> int:
    print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
    for field, description in field_violations(error).items():
        print(f"  {field}: {description}", file=sys.stderr)
    return 1


def _client_command(
    run: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """The command `run`, exiting 2 when a time argument does not parse and 1 (printing the
    status and its field violations) when a call fails."""

    @functools.wraps(run)
    def command(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except InvalidInput as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except grpc.RpcError as error:
            return _fail(error)

    return command


@contextmanager
def _channel(
    args: argparse.Namespace, address_of: Callable[[ClientSettings], str]
) -> Iterator[tuple[grpc.Channel, Metadata]]:
    """A channel to the service whose address `address_of` picks from the client settings,
    and the metadata that authenticates calls on `args.wallet`."""
    settings = ClientSettings()
    with grpc.insecure_channel(address_of(settings)) as channel:
        yield channel, _metadata(settings, args.wallet, args.token)


@_client_command
def record(args: argparse.Namespace) -> int:
    occurred_at = parse_rfc3339(args.datetime, "--datetime")
    request = command_pb2.RecordTransactionRequest(
        wallet_id=args.wallet,
        request_id=args.key or str(uuid.uuid4()),
        occurred_at=datetime_to_timestamp(occurred_at),
        amount=args.amount,
    )
    with _channel(args, lambda settings: settings.command_address) as (channel, metadata):
        response = command_pb2_grpc.WalletCommandStub(channel).RecordTransaction(
            request, timeout=_DEADLINE, metadata=metadata
        )
    stored = response.record
    print(
        f"{'replayed' if response.replayed else 'recorded'} {stored.amount} in wallet "
        f"{stored.wallet_id} at {stored.occurred_at.ToJsonString()} (key {stored.request_id})"
    )
    return 0


@_client_command
def history(args: argparse.Namespace) -> int:
    start = parse_rfc3339(args.start, "--start", round_up=True)
    end = parse_rfc3339(args.end, "--end")
    request = query_pb2.GetBalanceHistoryRequest(
        wallet_id=args.wallet,
        start=datetime_to_timestamp(start),
        end=datetime_to_timestamp(end),
        time_zone=args.tz,
    )
    with _channel(args, lambda settings: settings.query_address) as (channel, metadata):
        answer = query_pb2_grpc.WalletQueryStub(channel).GetBalanceHistory(
            request, timeout=_DEADLINE, metadata=metadata
        )
    rows = [
        (
            point.time.ToDatetime(tzinfo=UTC)
            .astimezone(timezone(point.utc_offset.ToTimedelta()))
            .isoformat(),
            point.balance,
            point.change,
        )
        for point in answer.points
    ]
    as_of = answer.as_of.ToJsonString() if answer.HasField("as_of") else None
    if args.json:
        points = [{"datetime": t, "balance": b, "change": c} for t, b, c in rows]
        print(
            json.dumps(
                {"wallet_id": args.wallet, "time_zone": args.tz, "as_of": as_of, "points": points}
            )
        )
        return 0
    width = max([len("balance"), *(len(balance) for _, balance, _ in rows)])
    print(f"{'hour start':<25}  {'balance':>{width}}  change")
    for instant, balance, change in rows:
        print(f"{instant:<25}  {balance:>{width}}  {change}")
    print(f"(read model as of {as_of or 'never: the updater has not run yet'})")
    return 0


@_client_command
def records(args: argparse.Namespace) -> int:
    """Every page of the wallet's records in the range, printed as each arrives."""
    start = parse_rfc3339(args.start, "--start", round_up=True)
    end = parse_rfc3339(args.end, "--end", round_up=True)
    request = query_pb2.ListRecordsRequest(
        wallet_id=args.wallet,
        start=datetime_to_timestamp(start),
        end=datetime_to_timestamp(end),
        page_size=args.page_size,
    )
    print_records = _RECORD_PRINTERS["json" if args.json else "csv" if args.csv else "table"]
    with _channel(args, lambda settings: settings.query_address) as (channel, metadata):
        stub = query_pb2_grpc.WalletQueryStub(channel)
        first = True
        while True:
            page = stub.ListRecords(request, timeout=_DEADLINE, metadata=metadata)
            print_records(page.records, first)
            first = False
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    if not (args.json or args.csv):
        as_of = page.as_of.ToJsonString() if page.HasField("as_of") else None
        print(f"(read model as of {as_of or 'never: the updater has not run yet'})")
    return 0


def _print_table(page: Sequence[records_pb2.Record], first: bool) -> None:
    if first:
        print(f"{'datetime':<27}  {'amount':>24}  request id")
    for record in page:
        _, request_id, occurred_at, amount, _ = record_row(record)
        print(f"{occurred_at:<27}  {amount:>24}  {request_id}")


def _print_json_lines(page: Sequence[records_pb2.Record], first: bool) -> None:
    for record in page:
        print(json.dumps(dict(zip(RECORD_COLUMNS, record_row(record), strict=True))))


def _print_csv(page: Sequence[records_pb2.Record], first: bool) -> None:
    rows = [RECORD_COLUMNS] if first else []
    sys.stdout.write(csv_rows([*rows, *map(record_row, page)]))


_RECORD_PRINTERS = {"table": _print_table, "json": _print_json_lines, "csv": _print_csv}


def token(args: argparse.Namespace) -> int:
    minted = dev_token(ClientSettings(), args.wallet, args.ttl, subject=args.subject)
    if minted is None:
        print(
            "error: no secret to sign with: run `wallet dev` once (it creates one in its dev "
            "folder) or set WALLET_AUTH_HS256_SECRET",
            file=sys.stderr,
        )
        return 2
    print(minted)
    return 0


def _ttl(text: str) -> timedelta:
    match = _TTL.fullmatch(text)
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 1h or 7d")
    return timedelta(**{_TTL_UNITS[match[2]]: int(match[1])})


def _add_token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        default=os.environ.get("WALLET_TOKEN"),
        help="bearer token (default $WALLET_TOKEN, else one minted from the dev secret)",
    )


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    record_parser = commands.add_parser("record", help="record a deposit over gRPC")
    record_parser.add_argument("--wallet", required=True)
    record_parser.add_argument("--amount", required=True, help="a decimal, e.g. 1.1")
    record_parser.add_argument(
        "--datetime", required=True, help="RFC 3339 with offset, e.g. 2019-10-05T14:48:01+01:00"
    )
    record_parser.add_argument("--key", help="idempotency key (default: a new one)")
    _add_token_option(record_parser)
    record_parser.set_defaults(run=record)

    history_parser = commands.add_parser("history", help="hourly balances over gRPC")
    history_parser.add_argument("--wallet", required=True)
    history_parser.add_argument("--start", required=True, help="RFC 3339 with offset")
    history_parser.add_argument("--end", required=True, help="RFC 3339 with offset")
    history_parser.add_argument("--tz", default="UTC", help="IANA time zone (default UTC)")
    history_parser.add_argument("--json", action="store_true", help="print JSON")
    _add_token_option(history_parser)
    history_parser.set_defaults(run=history)

    records_parser = commands.add_parser(
        "records", help="a wallet's records over gRPC, every page (start <= datetime < end)"
    )
    records_parser.add_argument("--wallet", required=True)
    records_parser.add_argument("--start", required=True, help="RFC 3339 with offset")
    records_parser.add_argument("--end", required=True, help="RFC 3339 with offset")
    records_parser.add_argument(
        "--page-size", type=int, default=1000, help="records per call (default 1000, the most)"
    )
    output = records_parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object per line")
    output.add_argument("--csv", action="store_true", help="print CSV with a header row")
    _add_token_option(records_parser)
    records_parser.set_defaults(run=records)

    token_parser = commands.add_parser(
        "token", help="mint a dev bearer token (HS256, signed with the dev stack's secret)"
    )
    token_parser.add_argument(
        "--wallet", required=True, action="append", help="a wallet it may use (repeat; * for all)"
    )
    token_parser.add_argument("--ttl", type=_ttl, default=timedelta(hours=1), help="default 1h")
    token_parser.add_argument("--subject", default="wallet-dev-user", help="the sub claim")
    token_parser.set_defaults(run=token)
