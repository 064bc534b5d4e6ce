"""The ledger end to end as a state machine: random interleavings of deposits, replays,
conflicting keys, the same key in other wallets, updater passes, crashed passes and
rebuilds, on a real DynamoDB Local and a real PostgreSQL.

The model is the list of acknowledged deposits (Recorded outcomes, each once). At every
step the table's aggregate items sum to exactly the model per wallet and bucket, and the
read model is never ahead of it; after every pass that commits (and after a rebuild and
its pass) the read store answers the model's balances and history exactly.

One table and one database serve every example (a table per example is slow, and a DynamoDB
Local stream slows down with many tables): each example has fresh wallet ids under a
prefix of its own, so examples never see each other's deposits (request ids are scoped per
wallet), while passes and rebuilds also carry the earlier examples' items along.
"""

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from mypy_boto3_dynamodb.client import DynamoDBClient
from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
from sqlalchemy import Engine

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.ledger_table import aggregate_from_item
from services.ledger.adapters.read_store import PostgresReadStore
from services.ledger.adapters.write_store import DynamoWriteStore, WriteStore
from services.ledger.domain.aggregates import AggregateImage
from services.ledger.domain.buckets import BUCKET
from services.ledger.domain.errors import InvalidInput
from services.ledger.domain.money import exact_arithmetic, format_amount, parse_amount
from services.ledger.domain.records import (
    Conflicting,
    Deposit,
    Recorded,
    RecordOutcome,
    Replayed,
    StoredRecord,
)
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.stream_reader import (
    DEFAULT_CHUNK_RECORDS,
    StreamReader,
    streams_client,
)

WALLETS = 3
REQUEST_IDS = 6
# Aggregate shards per bucket: fewer than the default, so that items collect several
# deposits and passes update rows they projected before.
WRITE_SHARDS = 2
# Four buckets of a fixed past day that straddle a UTC midnight (a leap day's), so deposits
# share buckets, aggregate shards and days, and the day totals' running balance matters.
FIRST_BUCKET = datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
BUCKETS = [FIRST_BUCKET + index * BUCKET for index in range(4)]
# Where in its bucket a deposit falls: both ends and between, few enough to repeat.
OFFSETS = [
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(minutes=7, seconds=30),
    BUCKET - timedelta(microseconds=1),
]
# The history's boundaries: from two buckets before the first to one after the last.
BOUNDARIES = [FIRST_BUCKET + index * BUCKET for index in range(-2, len(BUCKETS) + 2)]
MIDNIGHT = datetime(2024, 3, 1, tzinfo=UTC)


def epoch_seconds(instants: list[datetime]) -> list[int]:
    """The read store's history bounds."""
    return [int(instant.timestamp()) for instant in instants]


SMALLEST_AMOUNT = "0.000000000000000001"
LARGEST_AMOUNT = "99999999999999999999.999999999999999999"
_LARGEST_ATTO = 10**38 - 1

amount_texts = st.one_of(
    st.sampled_from([SMALLEST_AMOUNT, LARGEST_AMOUNT, "0.1", "0.2", "1", "1.1", "12.34"]),
    st.integers(1, 10**6).map(lambda cents: f"{cents}e-2"),
    st.integers(1, _LARGEST_ATTO).map(lambda atto: f"{atto}e-18"),
)
# Canonical, as the command service parses them: parse_amount is exact for these.
amounts = amount_texts.map(parse_amount)
instants = st.sampled_from([bucket + offset for bucket in BUCKETS for offset in OFFSETS])


# A deposit's (wallet, request id, occurred_at, amount), the ids as indexes into the
# example's own.
payloads = st.tuples(
    st.integers(0, WALLETS - 1), st.integers(0, REQUEST_IDS - 1), instants, amounts
)
# Stream records per commit of a pass: a few (a pass of many chunks), and the default.
chunks = st.sampled_from([2, 5, DEFAULT_CHUNK_RECORDS])


class Crash(Exception):
    """An updater dying at a chosen point."""


def crash_before_commit(commits: int) -> Callable[[], None]:
    """A before_commit hook that lets `commits` transactions commit, then raises."""
    committed = 0

    def hook() -> None:
        nonlocal committed
        if committed >= commits:
            raise Crash("before commit")
        committed += 1

    return hook


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    with exact_arithmetic():
        return sum(values, Decimal(0))


@dataclass(frozen=True)
class Stack:
    """What every example shares: the write store, the updater and the read store."""

    dynamodb: DynamoDBClient
    streams: DynamoDBStreamsClient
    table_name: str
    writes: WriteStore
    projections: ProjectionStore
    reads: PostgresReadStore

    def projector(
        self,
        chunk_records: int = DEFAULT_CHUNK_RECORDS,
        before_commit: Callable[[], None] = lambda: None,
    ) -> Projector:
        reader = StreamReader(self.dynamodb, self.streams, self.table_name, chunk_records)
        return Projector(reader, self.projections, before_commit)


class CrashingScan(StreamReader):
    """The stream reader, but its rebuild scan dies after handing over `pages` pages."""

    def __init__(self, stack: Stack, pages: int) -> None:
        super().__init__(stack.dynamodb, stack.streams, stack.table_name)
        self._pages = pages

    def scan_table(
        self,
        segments: int,
        aggregates: Callable[[list[AggregateImage]], None],
        records: Callable[[list[StoredRecord]], None],
    ) -> None:
        def consume_then_crash(page: list[AggregateImage]) -> None:
            if self._pages <= 0:
                raise Crash("rebuild scan")
            self._pages -= 1
            aggregates(page)

        super().scan_table(segments, consume_then_crash, records)


@pytest.fixture
def stack(dynamodb: DynamoDBClient, table_name: str, database_url: str) -> Iterator[Stack]:
    engines: list[Engine] = []

    def engine() -> Engine:
        engines.append(create_database_engine(database_url, pool_size=2))
        return engines[-1]

    yield Stack(
        dynamodb=dynamodb,
        streams=streams_client(),
        table_name=table_name,
        writes=DynamoWriteStore(dynamodb, table_name, WRITE_SHARDS),
        projections=ProjectionStore(engine()),
        reads=PostgresReadStore(engine()),
    )
    for each in engines:
        each.dispose()


class LedgerMachine(RuleBasedStateMachine):
    # The stack the examples share; a subclass per test run sets it.
    shared: ClassVar[Stack]

    def __init__(self) -> None:
        super().__init__()
        self.stack = self.shared
        prefix = uuid.uuid4().hex[:10]
        self.wallets = [f"p{prefix}-w{index}" for index in range(WALLETS)]
        # The same in every example: request ids are scoped per wallet, so the fresh
        # wallets keep examples apart, and a replayed example puts its deposits in the
        # same aggregate shards (the shard is a hash of the request id).
        self.request_ids = [f"key-{index}" for index in range(REQUEST_IDS)]
        self.prefix = f"p{prefix}-"
        # The model: every acknowledged deposit by (wallet, request id).
        self.acknowledged: dict[tuple[str, str], StoredRecord] = {}
        self.last_as_of: datetime | None = None

    @initialize()
    def catch_up(self) -> None:
        """Projects what earlier examples left unprojected, so that this example's passes
        read only its own records (and its chunks do not depend on the examples before)."""
        self.stack.projector().run_pass()
        self.assert_read_model_exact()

    # The write side.

    def record(self, deposit: Deposit) -> RecordOutcome:
        """Records through the real write store and checks the outcome against the model:
        a new (wallet, key) records; the same payload replays the original; any other
        payload conflicts with it. Keys are scoped per wallet."""
        key = (deposit.wallet_id, deposit.request_id)
        existing = self.acknowledged.get(key)
        outcome = self.stack.writes.record(deposit)
        if existing is None:
            assert isinstance(outcome, Recorded), (
                f"a new key in its wallet must record: {deposit} gave {outcome}"
            )
            assert outcome.record.deposit == deposit, outcome
            self.acknowledged[key] = outcome.record
        elif existing.deposit == deposit:
            assert outcome == Replayed(existing), (
                f"a resent deposit must replay the original {existing}: got {outcome}"
            )
        else:
            assert outcome == Conflicting(existing), (
                f"{deposit} reuses the key of {existing}: got {outcome}"
            )
        return outcome

    @rule(batch=st.lists(payloads, min_size=1, max_size=4))
    def deposits(self, batch: list[tuple[int, int, datetime, Decimal]]) -> None:
        """A few deposits, each (wallet, request id, occurred_at, amount): new ones, replays
        or conflicts, as the draws fall."""
        for wallet, request, occurred_at, amount in batch:
            deposit = Deposit(self.wallets[wallet], self.request_ids[request], occurred_at, amount)
            self.record(deposit)

    @precondition(lambda self: bool(self.acknowledged))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """An acknowledged deposit sent again exactly: a replay of the original record."""
        original = data.draw(st.sampled_from(sorted(self.acknowledged)), label="replayed")
        outcome = self.record(self.acknowledged[original].deposit)
        assert isinstance(outcome, Replayed)

    @precondition(lambda self: bool(self.acknowledged))
    @rule(data=st.data())
    def conflict(self, data: st.DataObject) -> None:
        """An acknowledged deposit's wallet and key with another instant or amount."""
        original = self.acknowledged[
            data.draw(st.sampled_from(sorted(self.acknowledged)), label="reused")
        ].deposit
        other = data.draw(
            st.builds(
                Deposit,
                st.just(original.wallet_id),
                st.just(original.request_id),
                st.one_of(st.just(original.occurred_at), instants),
                st.one_of(st.just(original.amount), amounts),
            ).filter(lambda deposit: deposit != original),
            label="other payload",
        )
        outcome = self.record(other)
        assert isinstance(outcome, Conflicting)

    @precondition(
        lambda self: any(
            (wallet, request_id) not in self.acknowledged
            for _, request_id in self.acknowledged
            for wallet in self.wallets
        )
    )
    @rule(data=st.data())
    def same_key_in_another_wallet(self, data: st.DataObject) -> None:
        """Request ids are scoped per wallet: the same key, even with the same payload,
        is an independent deposit in another wallet."""
        choices = sorted(
            (wallet, request_id)
            for _, request_id in self.acknowledged
            for wallet in self.wallets
            if (wallet, request_id) not in self.acknowledged
        )
        wallet, request_id = data.draw(st.sampled_from(choices), label="wallet and key")
        same_key = next(
            record.deposit
            for (_, other_key), record in sorted(self.acknowledged.items())
            if other_key == request_id
        )
        outcome = self.record(Deposit(wallet, request_id, same_key.occurred_at, same_key.amount))
        assert isinstance(outcome, Recorded)

    # The updater.

    @rule(chunk_records=chunks)
    def run_pass(self, chunk_records: int) -> None:
        self.stack.projector(chunk_records).run_pass()
        self.assert_read_model_exact()

    @rule(chunk_records=chunks, commits_before_crash=st.integers(0, 2), restart=st.booleans())
    def crashed_pass(self, chunk_records: int, commits_before_crash: int, restart: bool) -> None:
        """A pass that dies just before one of its commits (the first, or a later chunk's):
        that transaction rolls back, the chunks before it stay. A pass that commits fewer
        times than that completes, and must be exact. When `restart`, the updater's next
        pass follows at once (else later steps decide what comes next), and catches up."""
        projector = self.stack.projector(chunk_records, crash_before_commit(commits_before_crash))
        try:
            projector.run_pass()
        except Crash:
            if not restart:
                return
            self.stack.projector(chunk_records).run_pass()
        self.assert_read_model_exact()

    @rule(segments=st.sampled_from([1, 3]))
    def rebuild(self, segments: int) -> None:
        """A rebuild and the pass that follows it. The pass reads the stream again from its
        start (every earlier example's records too), so in one chunk: small chunks there
        would make the test quadratic."""
        self.stack.projector().rebuild(segments)
        self.stack.projector().run_pass()
        self.assert_read_model_exact()

    @rule(pages_before_crash=st.one_of(st.none(), st.integers(0, 2)))
    def crashed_rebuild(self, pages_before_crash: int | None) -> None:
        """A rebuild that dies while scanning the table (after handing over that many
        pages), or else just before it swaps the new read model in: the old one stays, and
        later passes or rebuilds must make it exact."""
        if pages_before_crash is None:
            projector = self.stack.projector(before_commit=crash_before_commit(0))
        else:
            reader = CrashingScan(self.stack, pages_before_crash)
            projector = Projector(reader, self.stack.projections)
        try:
            projector.rebuild(2)
        except Crash:
            return
        self.stack.projector().run_pass()
        self.assert_read_model_exact()

    # What must hold.

    def expected_buckets(self) -> dict[tuple[str, datetime], tuple[Decimal, int]]:
        """(sum, count) of the acknowledged deposits per wallet and bucket."""
        amounts: dict[tuple[str, datetime], list[Decimal]] = defaultdict(list)
        for record in self.acknowledged.values():
            amounts[(record.deposit.wallet_id, record.deposit.bucket)].append(record.deposit.amount)
        return {key: (exact_sum(values), len(values)) for key, values in amounts.items()}

    def expected_balance(self, wallet: str, before: datetime, since: datetime | None) -> Decimal:
        return exact_sum(
            record.deposit.amount
            for record in self.acknowledged.values()
            if record.deposit.wallet_id == wallet
            and record.deposit.occurred_at < before
            and (since is None or since <= record.deposit.occurred_at)
        )

    def table_aggregates(self) -> list[AggregateImage]:
        """This example's aggregate items, from a strongly consistent scan."""
        images: list[AggregateImage] = []
        paginator = self.stack.dynamodb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.stack.table_name,
            ConsistentRead=True,
            FilterExpression="begins_with(#wallet, :prefix)",
            ExpressionAttributeNames={"#wallet": t.WALLET_ID},
            ExpressionAttributeValues={":prefix": {"S": self.prefix}},
        ):
            for item in page["Items"]:
                image = aggregate_from_item(dict(item))
                if image is not None:
                    images.append(image)
        return images

    @invariant()
    def table_aggregates_are_the_acknowledged_deposits(self) -> None:
        amounts: dict[tuple[str, datetime], list[Decimal]] = defaultdict(list)
        counts: dict[tuple[str, datetime], int] = defaultdict(int)
        for image in self.table_aggregates():
            assert image.wallet_id in self.wallets, image
            amounts[(image.wallet_id, image.bucket)].append(image.amount)
            counts[(image.wallet_id, image.bucket)] += image.record_count
        in_table = {key: (exact_sum(values), counts[key]) for key, values in amounts.items()}
        assert in_table == self.expected_buckets(), "the table's aggregates != acknowledged"

    @invariant()
    def read_model_is_never_ahead(self) -> None:
        """Whatever passes did or crashed, no answer counts a deposit that was not
        acknowledged, or one twice (amounts are positive, so a partly projected ledger
        is pointwise below the model)."""
        for wallet in self.wallets:
            history = self.stack.reads.history(wallet, epoch_seconds(BOUNDARIES))
            for boundary, (balance, _) in zip(BOUNDARIES[1:], history.points, strict=True):
                expected = self.expected_balance(wallet, boundary, None)
                assert Decimal(balance) <= expected, (
                    f"{wallet} at {boundary}: read model {balance} > acknowledged {expected}"
                )

    def assert_read_model_exact(self) -> None:
        """After a committed pass: every balance and every history point of every wallet
        is the exact sum of its acknowledged deposits."""
        for wallet in self.wallets:
            # From before every deposit, and from the midnight between the buckets (its
            # opening balance comes from the day totals of the day before).
            for boundaries in (BOUNDARIES, BOUNDARIES[BOUNDARIES.index(MIDNIGHT) :]):
                history = self.stack.reads.history(wallet, epoch_seconds(boundaries))
                answered = [(Decimal(total), Decimal(change)) for total, change in history.points]
                expected = [
                    (
                        self.expected_balance(wallet, boundary, None),
                        self.expected_balance(wallet, boundary, previous),
                    )
                    for previous, boundary in pairwise(boundaries)
                ]
                assert answered == expected, (
                    f"history of {wallet} from {boundaries[0]}: (balance, change) per point"
                )
            # The current balance, as GetBalance answers it.
            after_all = BOUNDARIES[-1]
            balance = self.stack.reads.balance(wallet, after_all)
            assert balance.balance == self.expected_balance(wallet, after_all, None), (
                f"balance of {wallet}"
            )
            assert history.as_of is not None, "a pass finished but as_of is unset"
            if self.last_as_of is not None:
                assert history.as_of >= self.last_as_of, "as_of went backwards"
            self.last_as_of = history.as_of


# Passing takes about 40 s; a failure adds up to Hypothesis's five minutes of shrinking.
@pytest.mark.timeout(900)
def test_random_interleavings_keep_the_ledger_exact(stack: Stack) -> None:
    class OnThisStack(LedgerMachine):
        shared = stack

    run_state_machine_as_test(
        OnThisStack,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_the_extreme_amounts_are_the_bounds_of_the_domain() -> None:
    """The strategy's extremes are the smallest and largest amounts a deposit may have."""
    assert format_amount(parse_amount(SMALLEST_AMOUNT)) == SMALLEST_AMOUNT
    assert format_amount(parse_amount(LARGEST_AMOUNT)) == LARGEST_AMOUNT
    assert parse_amount(f"{_LARGEST_ATTO}e-18") == Decimal(LARGEST_AMOUNT)
    for beyond in ("0.0000000000000000009", "100000000000000000000"):
        with pytest.raises(InvalidInput):
            parse_amount(beyond)
