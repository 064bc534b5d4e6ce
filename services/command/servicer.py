"""WalletCommand: translates messages, calls the write store, maps outcomes to statuses."""

from collections.abc import Callable
from datetime import UTC, datetime

import grpc

from services.command.metrics import count_record_outcome
from services.ledger.adapters.write_store import (
    StoreContended,
    StoreUnavailable,
    WriteStore,
)
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.money import format_amount
from services.ledger.domain.records import (
    Conflicting,
    Replayed,
    StoredRecord,
    new_deposit,
)
from services.platform.grpc_errors import abort_invalid
from services.platform.proto_time import datetime_to_timestamp, optional_timestamp
from wallet.v1 import command_pb2, command_pb2_grpc, records_pb2


def record_message(record: StoredRecord) -> records_pb2.Record:
    deposit = record.deposit
    return records_pb2.Record(
        wallet_id=deposit.wallet_id,
        request_id=deposit.request_id,
        occurred_at=datetime_to_timestamp(deposit.occurred_at),
        amount=format_amount(deposit.amount),
        recorded_at=datetime_to_timestamp(record.recorded_at),
    )


class WalletCommandServicer(command_pb2_grpc.WalletCommandServicer):
    def __init__(
        self, store: WriteStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    def RecordTransaction(
        self, request: command_pb2.RecordTransactionRequest, context: grpc.ServicerContext
    ) -> command_pb2.RecordTransactionResponse:
        try:
            deposit = new_deposit(
                wallet_id=request.wallet_id,
                request_id=request.request_id,
                occurred_at=optional_timestamp(request, "occurred_at"),
                amount=request.amount,
                now=self._clock(),
            )
            outcome = self._store.record(deposit)
        except InvalidInput as error:
            abort_invalid(context, error)
        except StoreUnavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the ledger store is unavailable; retry")
        except StoreContended:
            context.abort(grpc.StatusCode.ABORTED, "too many concurrent writes; retry")

        count_record_outcome(outcome)
        if isinstance(outcome, Conflicting):
            context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                "request_id was already used in this wallet with a different payload",
            )
        return command_pb2.RecordTransactionResponse(
            record=record_message(outcome.record), replayed=isinstance(outcome, Replayed)
        )
