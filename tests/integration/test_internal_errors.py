"""An unexpected exception in a servicer reaches the client as INTERNAL without its text."""

from unittest import mock

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.ledger.adapters.write_store import DynamoWriteStore
from wallet.v1 import command_pb2, command_pb2_grpc


def test_unexpected_error_is_internal_without_internals(
    command_stub: command_pb2_grpc.WalletCommandStub,
) -> None:
    request = command_pb2.RecordTransactionRequest(
        wallet_id="w", request_id="r", amount="1", occurred_at=Timestamp(seconds=1)
    )
    failure = RuntimeError("secret internals")
    with (
        mock.patch.object(DynamoWriteStore, "record", side_effect=failure),
        pytest.raises(grpc.RpcError) as raised,
    ):
        command_stub.RecordTransaction(request)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (raised.value.details() or "")
