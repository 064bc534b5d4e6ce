"""One parallel scan hands each kind of item to its consumer and reads the table once
(DynamoDB bills every item a scan passes, whatever its filter keeps), against moto."""

from datetime import UTC, datetime
from typing import Any

from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters import ledger_table as t
from services.ledger.adapters.table_scan import Item, parallel_scan
from services.ledger.adapters.write_store import DynamoWriteStore
from services.ledger.domain.records import new_deposit
from tests.unit.conftest import MOTO_TABLE

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
SEGMENTS = 3


def test_one_scan_hands_every_item_to_the_consumer_of_its_kind(
    moto_dynamodb: DynamoDBClient,
) -> None:
    store = DynamoWriteStore(moto_dynamodb, MOTO_TABLE, 2, clock=lambda: NOW)
    for index in range(5):
        store.record(
            new_deposit(
                wallet_id="w1",
                request_id=f"req-{index}",
                occurred_at=datetime(2024, 6, 1, index, tzinfo=UTC),
                amount="1.5",
                now=NOW,
            )
        )
    scans: list[dict[str, Any]] = []
    moto_dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.Scan", lambda params, **_: scans.append(params)
    )
    found: dict[str, list[Item]] = {t.AGGREGATE_KIND: [], t.RECORD_KIND: []}

    parallel_scan(
        moto_dynamodb,
        MOTO_TABLE,
        SEGMENTS,
        {kind: items.extend for kind, items in found.items()},
    )

    assert len(found[t.RECORD_KIND]) == 5
    assert {item[t.KIND]["S"] for item in found[t.RECORD_KIND]} == {t.RECORD_KIND}
    assert len(found[t.AGGREGATE_KIND]) == 5  # one aggregate per hour
    assert {item[t.KIND]["S"] for item in found[t.AGGREGATE_KIND]} == {t.AGGREGATE_KIND}
    # A small table is one page per segment: one scan of the table, not one per kind.
    assert sorted(scan["Segment"] for scan in scans) == list(range(SEGMENTS))
