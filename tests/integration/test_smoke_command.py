from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from wallet.v1 import command_pb2, command_pb2_grpc


def test_records_then_replays(command_stub: command_pb2_grpc.WalletCommandStub) -> None:
    occurred_at = Timestamp()
    occurred_at.FromDatetime(datetime(2019, 10, 5, 13, 48, 1, tzinfo=UTC))
    request = command_pb2.RecordTransactionRequest(
        wallet_id="w", request_id="k", occurred_at=occurred_at, amount="1.10"
    )
    first = command_stub.RecordTransaction(request)
    second = command_stub.RecordTransaction(request)
    assert (first.replayed, second.replayed) == (False, True)
    assert second.record == first.record
    assert first.record.amount == "1.1"
