"""The running total of one aggregate: a wallet's 15-minute bucket, on one shard."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class AggregateImage:
    """The state of one aggregate (what its table item, or a stream image of it, holds):
    the sum and the number of the deposits it has counted."""

    wallet_id: str
    bucket: datetime
    shard: int
    amount: Decimal
    record_count: int

    @property
    def key(self) -> tuple[str, datetime, int]:
        return (self.wallet_id, self.bucket, self.shard)
