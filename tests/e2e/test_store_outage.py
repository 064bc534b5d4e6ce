"""The command service while DynamoDB is down: it says UNAVAILABLE, keeps running, and the
retried request records once DynamoDB is back."""

import time
from decimal import Decimal

import grpc
import pytest

from harness.processes import SERVING, health_status
from services.ledger.adapters.ledger_table import ensure_table
from tests.e2e.processes import (
    COMMAND_SERVICE,
    StartCommandService,
    deposit_request,
    local_client,
    scan_table,
)
from wallet.v1 import command_pb2_grpc
from wallet_cli.local.dynamodb_local import DynamoDBLocal

CALL_DEADLINE = 15.0


def test_unavailable_while_dynamodb_is_down_then_records_once(
    restartable_dynamodb: DynamoDBLocal, start_command_service: StartCommandService
) -> None:
    table_name = "ledger-outage"
    ensure_table(local_client(restartable_dynamodb), table_name)
    service = start_command_service(restartable_dynamodb, table_name)
    request = deposit_request("wallet-outage", "outage-1", "2.5")

    with service.channel() as channel:
        stub = command_pb2_grpc.WalletCommandStub(channel)
        # A first write warms the service's connection pool up, so the outage below has
        # to be noticed on a connection that was working.
        stub.RecordTransaction(deposit_request("wallet-warm", "warm-1", "1"), timeout=15)

        restartable_dynamodb.stop()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as failure:
            stub.RecordTransaction(request, timeout=CALL_DEADLINE)
        elapsed = time.monotonic() - started
        # UNAVAILABLE tells the client to retry; DEADLINE_EXCEEDED would mean the service
        # hung on the dead endpoint until the client gave up.
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, (
            f"{failure.value.code()} after {elapsed:.1f} s"
        )

        assert service.process.poll() is None, service.stderr_text()
        assert health_status(service.command_port, COMMAND_SERVICE) == SERVING

        restartable_dynamodb.start()
        response = stub.RecordTransaction(request, timeout=CALL_DEADLINE)
        assert not response.replayed
        assert response.record.amount == "2.5"

    contents = scan_table(local_client(restartable_dynamodb), table_name)
    assert contents.record_amounts() == {"warm-1": Decimal(1), "outage-1": Decimal("2.5")}
    assert contents.aggregate_totals()["wallet-outage"] == (Decimal("2.5"), 1)
