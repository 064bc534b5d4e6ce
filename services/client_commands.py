"""`wallet record` and `wallet history`: a gRPC client for people and scripts."""

import argparse
import json
import sys
import uuid
from datetime import UTC, timezone

import grpc

from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.instants import parse_rfc3339
from services.ledger.grpc_errors import field_violations
from services.ledger.proto_time import datetime_to_timestamp
from services.ledger.settings import Settings
from wallet.v1 import command_pb2, command_pb2_grpc, query_pb2, query_pb2_grpc

_DEADLINE = 10.0


def _fail(error: grpc.RpcError) -> int:
    print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
    for field, description in field_violations(error).items():
        print(f"  {field}: {description}", file=sys.stderr)
    return 1


def record(args: argparse.Namespace) -> int:
    try:
        occurred_at = parse_rfc3339(args.datetime, "--datetime")
    except InvalidInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    request = command_pb2.RecordTransactionRequest(
        wallet_id=args.wallet,
        request_id=args.key or str(uuid.uuid4()),
        occurred_at=datetime_to_timestamp(occurred_at),
        amount=args.amount,
    )
    with grpc.insecure_channel(Settings().command_address) as channel:
        try:
            response = command_pb2_grpc.WalletCommandStub(channel).RecordTransaction(
                request, timeout=_DEADLINE
            )
        except grpc.RpcError as error:
            return _fail(error)
    stored = response.record
    print(
        f"{'replayed' if response.replayed else 'recorded'} {stored.amount} in wallet "
        f"{stored.wallet_id} at {stored.occurred_at.ToJsonString()} (key {stored.request_id})"
    )
    return 0


def history(args: argparse.Namespace) -> int:
    try:
        start = parse_rfc3339(args.start, "--start")
        end = parse_rfc3339(args.end, "--end")
    except InvalidInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    request = query_pb2.GetBalanceHistoryRequest(
        wallet_id=args.wallet,
        start=datetime_to_timestamp(start),
        end=datetime_to_timestamp(end),
        time_zone=args.tz,
    )
    with grpc.insecure_channel(Settings().query_address) as channel:
        try:
            answer = query_pb2_grpc.WalletQueryStub(channel).GetBalanceHistory(
                request, timeout=_DEADLINE
            )
        except grpc.RpcError as error:
            return _fail(error)
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


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    record_parser = commands.add_parser("record", help="record a deposit over gRPC")
    record_parser.add_argument("--wallet", required=True)
    record_parser.add_argument("--amount", required=True, help="a decimal, e.g. 1.1")
    record_parser.add_argument(
        "--datetime", required=True, help="RFC 3339 with offset, e.g. 2019-10-05T14:48:01+01:00"
    )
    record_parser.add_argument("--key", help="idempotency key (default: a new one)")
    record_parser.set_defaults(run=record)

    history_parser = commands.add_parser("history", help="hourly balances over gRPC")
    history_parser.add_argument("--wallet", required=True)
    history_parser.add_argument("--start", required=True, help="RFC 3339 with offset")
    history_parser.add_argument("--end", required=True, help="RFC 3339 with offset")
    history_parser.add_argument("--tz", default="UTC", help="IANA time zone (default UTC)")
    history_parser.add_argument("--json", action="store_true", help="print JSON")
    history_parser.set_defaults(run=history)
