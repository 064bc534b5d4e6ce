"""An updater pass must end while deposits keep arriving.

Found by the fault tests (tests/e2e/test_faults_updater.py): under 8 or 32 concurrent HTTP
clients (~70 deposits/s on a 2-core machine) `wallet update --follow` finished no pass for
up to 10 s at a time, so the read model and its as_of stood still while writes went on; with
2 clients (~50/s, gaps between writes) it finished one every ~0.5 s. StreamReader reads an
open shard until three GetRecords pages in a row come back empty, and a shard that keeps
growing never gives three.

Here the real reader reads DynamoDB Local's stream through a client on which one deposit is
recorded before every GetRecords, so every page has a new record: the shard grows as fast as
it is read. A pass that reads only until it has nothing new never ends; the client gives up
after PAGES pages with PassNeverEnded. The reader stops once it has read past the first
record written after its read began (found through a LATEST iterator), so here within a
page or two.
"""

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from mypy_boto3_dynamodb.client import DynamoDBClient

from services.ledger.adapters.write_store import DynamoWriteStore
from services.ledger.domain.records import Deposit, Recorded
from services.updater.stream_reader import StreamReader, streams_client
from tests.updater_support import SHARD_COUNT, START, make_deposits, write_deposits

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient

PAGES = 100
SETTLED = 10


class PassNeverEnded(Exception):
    pass


class GrowingStream:
    """A DynamoDB Streams client on which a new deposit is recorded before each
    GetRecords; everything else goes to the real client."""

    def __init__(self, store: DynamoWriteStore) -> None:
        self._streams = streams_client()
        self._store = store
        self.exceptions = self._streams.exceptions
        self.pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._streams, name)

    def get_records(self, **request: Any) -> Any:
        self.pages += 1
        if self.pages > PAGES:
            raise PassNeverEnded(f"still reading after {PAGES} pages, each with a new record")
        deposit = Deposit(
            "wallet-steady",
            f"steady-{self.pages}",
            START + timedelta(minutes=self.pages),
            Decimal("0.01"),
        )
        assert isinstance(self._store.record(deposit), Recorded)
        return self._streams.get_records(**request)


def test_a_pass_ends_while_deposits_keep_arriving(
    dynamodb: DynamoDBClient, table_name: str
) -> None:
    write_deposits(dynamodb, table_name, make_deposits(SETTLED, prefix="settled"))
    growing = GrowingStream(DynamoWriteStore(dynamodb, table_name, SHARD_COUNT))
    reader = StreamReader(dynamodb, cast("DynamoDBStreamsClient", growing), table_name)
    stream_arn = reader.stream_arn()
    plan = [shard.start() for shard in reader.shards(stream_arn)]

    batch = reader.read(stream_arn, plan)

    # What was there before the pass began is read (two stream records per deposit).
    assert batch.records_read >= 2 * SETTLED
    # A few pages, counting the polls for the first newer record, not PAGES.
    assert growing.pages <= 6
    # Ended by reading into the deposits written after it began: no delivery allowance due.
    assert batch.caught_up
    assert batch.unread == []
