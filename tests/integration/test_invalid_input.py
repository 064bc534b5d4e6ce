"""Bad input is refused with INVALID_ARGUMENT naming the field, and writes nothing."""

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.platform.grpc_errors import field_violations
from tests.integration.conftest import Scan, deposit_request
from wallet.v1 import command_pb2, command_pb2_grpc

OCCURRED = datetime(2024, 3, 10, 14, 5, tzinfo=UTC)
FUTURE = object()  # stands for "now + 10 minutes", computed when the test runs

CASES = [
    ("amount", {"amount": "0"}, "zero"),
    ("amount", {"amount": "-1"}, "negative"),
    ("amount", {"amount": "abc"}, "not a number"),
    ("amount", {"amount": "1e400"}, "huge"),
    ("amount", {"amount": "NaN"}, "NaN"),
    ("amount", {"amount": "Infinity"}, "Infinity"),
    ("amount", {"amount": "0.0000000000000000001"}, "19 fraction digits"),
    ("amount", {"amount": "1" + "0" * 20}, "21 integer digits"),
    ("amount", {"amount": ""}, "empty amount"),
    ("amount", {"amount": "1e1000000"}, "exponent beyond Decimal context"),
    ("amount", {"amount": "1e-999999999"}, "rounds to zero in Decimal context"),
    ("occurred_at", {"occurred_at": None}, "occurred_at unset"),
    ("occurred_at", {"occurred_at": FUTURE}, "more than 5 minutes ahead"),
    ("occurred_at", {"occurred_at": Timestamp(seconds=0, nanos=-1)}, "negative nanos"),
    ("occurred_at", {"occurred_at": Timestamp(seconds=253402300800)}, "after year 9999"),
    ("wallet_id", {"wallet_id": ""}, "empty wallet"),
    ("wallet_id", {"wallet_id": "w" * 65}, "65-char wallet"),
    ("wallet_id", {"wallet_id": "a/b"}, "wallet with slash"),
    ("wallet_id", {"wallet_id": "a#b"}, "wallet with hash"),
    ("request_id", {"request_id": ""}, "empty request id"),
    ("request_id", {"request_id": "r" * 256}, "256-char request id"),
    ("request_id", {"request_id": "a\nb"}, "request id with newline"),
]


@pytest.mark.parametrize(
    ("field", "changes"),
    [pytest.param(field, changes, id=name) for field, changes, name in CASES],
)
def test_invalid_input_is_refused_and_writes_nothing(
    command_stub: command_pb2_grpc.WalletCommandStub,
    scan: Scan,
    field: str,
    changes: dict[str, object],
) -> None:
    # A record in the same wallet and bucket: a stray write would show in its aggregate.
    command_stub.RecordTransaction(
        deposit_request(wallet_id="w1", request_id="seed", occurred_at=OCCURRED, amount="5")
    )
    before = scan()
    fields: dict[str, object] = {
        "wallet_id": "w1",
        "request_id": "bad-1",
        "occurred_at": OCCURRED,
        "amount": "1.1",
    }
    fields.update(changes)
    if fields["occurred_at"] is FUTURE:
        fields["occurred_at"] = datetime.now(UTC) + timedelta(minutes=10)
    request: command_pb2.RecordTransactionRequest = deposit_request(**fields)  # type: ignore[arg-type]

    with pytest.raises(grpc.RpcError) as raised:
        command_stub.RecordTransaction(request)

    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error)
    assert list(violations) == [field]
    assert violations[field]
    assert scan() == before


def test_every_bad_field_is_reported_in_one_answer(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    request = deposit_request(wallet_id="a/b", request_id="", occurred_at=None, amount="0")
    with pytest.raises(grpc.RpcError) as raised:
        command_stub.RecordTransaction(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(raised.value)) == {
        "wallet_id",
        "request_id",
        "occurred_at",
        "amount",
    }
    assert scan() == []
