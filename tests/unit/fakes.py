"""In-memory stand-ins for the ledger's stores and a gRPC servicer context, for the fast
tier: the servicers and the domain run as they do in production, without DynamoDB,
PostgreSQL or sockets. They hold the stores' contracts (WriteStore, ReadStore), not their
implementations; the integration tests check the real stores against the same rules."""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any, NoReturn, cast

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.ledger.adapters.read_store import (
    Balance,
    FoundRecord,
    History,
    ReadStoreUnavailable,
    RecordRow,
    RecordsPage,
)
from services.ledger.adapters.write_store import StoreContended, StoreUnavailable
from services.ledger.domain.instants import microseconds_since_epoch
from services.ledger.domain.money import exact_arithmetic, format_amount
from services.ledger.domain.record_pages import PagePosition, RecordsFilter
from services.ledger.domain.records import (
    Deposit,
    Recorded,
    RecordOutcome,
    StoredRecord,
    outcome_for_existing,
)


class InMemoryLedger:
    """Both stores over one dict of records: what is recorded is readable at once (as if
    the updater had just passed, at `as_of`). `unavailable` makes every call fail as an
    unreachable store does, `contended` every write as one that keeps conflicting."""

    def __init__(self, clock: Callable[[], datetime], as_of: datetime | None = None) -> None:
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[StoredRecord, str]] = {}
        self.as_of_instant = as_of
        self.unavailable = False
        self.contended = False

    # --- WriteStore ---

    def __len__(self) -> int:
        return len(self._records)

    def record(self, deposit: Deposit) -> RecordOutcome:
        if self.unavailable:
            raise StoreUnavailable("the in-memory ledger is switched off")
        if self.contended:
            raise StoreContended("the in-memory ledger keeps conflicting")
        key = (deposit.wallet_id, deposit.request_id)
        if key in self._records:
            existing, fingerprint = self._records[key]
            return outcome_for_existing(deposit, existing, fingerprint)
        stored = StoredRecord(deposit, recorded_at=self._clock())
        self._records[key] = (stored, deposit.fingerprint)
        return Recorded(stored)

    # --- ReadStore ---

    def history(self, wallet_id: str, bounds: Sequence[int]) -> History:
        self._check_readable()
        boundaries = [datetime.fromtimestamp(seconds, UTC) for seconds in bounds]
        points = [
            (
                format_amount(self._sum(wallet_id, before=point)),
                format_amount(self._sum(wallet_id, before=point, since=previous)),
            )
            for previous, point in pairwise(boundaries)
        ]
        return History(points=points, as_of=self.as_of_instant)

    def balance(self, wallet_id: str, instant: datetime) -> Balance:
        self._check_readable()
        return Balance(self._sum(wallet_id, before=instant), self.as_of_instant)

    def list_records(
        self, records: RecordsFilter, after: PagePosition | None, limit: int
    ) -> RecordsPage:
        self._check_readable()
        rows = sorted(
            (
                _row(stored)
                for (wallet, _), (stored, _) in self._records.items()
                if wallet == records.wallet_id
                and records.start <= stored.deposit.occurred_at < records.end
            ),
            key=lambda row: (row.occurred_at_us, row.request_id),
        )
        if after is not None:
            position = (microseconds_since_epoch(after.occurred_at), after.request_id)
            rows = [r for r in rows if (r.occurred_at_us, r.request_id) > position]
        return RecordsPage(rows[:limit], more=len(rows) > limit, as_of=self.as_of_instant)

    def find_record(self, wallet_id: str, request_id: str) -> FoundRecord:
        self._check_readable()
        found = self._records.get((wallet_id, request_id))
        return FoundRecord(found and _row(found[0]), self.as_of_instant)

    def _sum(self, wallet_id: str, before: datetime, since: datetime | None = None) -> Decimal:
        """The wallet's records dated in [since, before)."""
        with exact_arithmetic():
            return sum(
                (
                    stored.deposit.amount
                    for (wallet, _), (stored, _) in self._records.items()
                    if wallet == wallet_id
                    and stored.deposit.occurred_at < before
                    and (since is None or since <= stored.deposit.occurred_at)
                ),
                Decimal(0),
            )

    def _check_readable(self) -> None:
        if self.unavailable:
            raise ReadStoreUnavailable("the in-memory ledger is switched off")


def _row(stored: StoredRecord) -> RecordRow:
    deposit = stored.deposit
    return RecordRow(
        deposit.request_id,
        microseconds_since_epoch(deposit.occurred_at),
        format_amount(deposit.amount),
        microseconds_since_epoch(stored.recorded_at),
    )


class Aborted(Exception):
    """What a servicer's abort raises here (grpc raises its own, which ends the call)."""

    def __init__(self, code: grpc.StatusCode, details: str, violations: dict[str, str]) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.violations = violations


class FakeContext:
    """The part of grpc.ServicerContext the servicers use: abort and abort_with_status."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details, {})

    def abort_with_status(self, status: Any) -> NoReturn:
        violations: dict[str, str] = {}
        for _, value in status.trailing_metadata:
            if isinstance(value, bytes):
                violations.update(_violations(value))
        raise Aborted(status.code, status.details, violations)


def servicer_context() -> grpc.ServicerContext:
    """A FakeContext, typed as what the servicers take."""
    return cast(grpc.ServicerContext, FakeContext())


def _violations(serialized_status: bytes) -> dict[str, str]:
    status = status_pb2.Status.FromString(serialized_status)
    found: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found
