"""The JSON shapes the gateway answers with, for OpenAPI and its examples."""

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from services.ledger.domain.ids import MAX_REQUEST_ID_LENGTH, WALLET_ID_PATTERN

_RECORD_EXAMPLE: dict[str, JsonValue] = {
    "wallet_id": "alice",
    "request_id": "deposit-0001",
    "datetime": "2019-10-05T13:48:01Z",
    "amount": "1.1",
    "recorded_at": "2026-11-27T12:00:00.123456Z",
}


WalletIdPath = Annotated[str, Path(pattern=f"^{WALLET_ID_PATTERN.pattern}$", examples=["alice"])]
# Any request id (it may hold "/"); the query service checks it as the command service does.
RequestIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_REQUEST_ID_LENGTH,
        description="the Idempotency-Key the deposit was recorded with, percent-encoded",
        examples=["deposit-0001"],
    ),
]


class RecordIn(BaseModel):
    """A deposit. `amount` may be a JSON string or number; numbers are read exactly."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"datetime": "2019-10-05T14:48:01+01:00", "amount": "1.1"}]
        },
    )
    datetime: str = Field(description="RFC 3339 with an offset; at most 5 minutes ahead")
    amount: str | float = Field(description="> 0, at most 20 digits before the point and 18 after")


class RecordOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_RECORD_EXAMPLE]})
    wallet_id: str
    request_id: str = Field(description="the idempotency key this record is stored under")
    datetime: str = Field(description="when the deposit happened, UTC, RFC 3339")
    amount: str
    recorded_at: str = Field(description="when the ledger first stored it, UTC, RFC 3339")


class RecordsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "wallet_id": "alice",
                    "records": [_RECORD_EXAMPLE],
                    "next_cursor": None,
                    "as_of": "2026-11-27T12:00:01.5Z",
                }
            ]
        }
    )
    wallet_id: str
    records: list[RecordOut] = Field(description="in (datetime, request_id) order")
    next_cursor: str | None = Field(description="continues the listing; null on the last page")
    as_of: str | None = Field(description="when the read model was last brought up to date")


class PointOut(BaseModel):
    datetime: str = Field(description="an hour start, in the requested zone's offset")
    balance: str = Field(description="sum of all records before `datetime`")
    change: str = Field(description="sum of the records since the previous hour start")


class HistoryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "wallet_id": "alice",
                    "time_zone": "UTC",
                    "as_of": "2026-11-27T12:00:01.5Z",
                    "points": [
                        {"datetime": "2019-10-05T12:00:00+00:00", "balance": "0", "change": "0"},
                        {"datetime": "2019-10-05T13:00:00+00:00", "balance": "0", "change": "0"},
                        {
                            "datetime": "2019-10-05T14:00:00+00:00",
                            "balance": "1.1",
                            "change": "1.1",
                        },
                    ],
                }
            ]
        }
    )
    wallet_id: str
    time_zone: str
    as_of: str | None = Field(description="when the read model was last brought up to date")
    points: list[PointOut]


class BalanceOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "wallet_id": "alice",
                    "balance": "1.1",
                    "at": "2026-11-27T12:15:00Z",
                    "as_of": "2026-11-27T12:00:01.5Z",
                }
            ]
        }
    )
    wallet_id: str
    balance: str
    at: str = Field(description="the 15-minute boundary the balance is exact for")
    as_of: str | None


class SeedRecordIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"datetime": "2019-10-05T14:48:01+01:00", "amount": 1.1}]},
    )
    datetime: str
    amount: float | str


class SeedRecordOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"datetime": "2019-10-05T13:48:01+00:00", "amount": 1.1}]}
    )
    datetime: str
    amount: float


class SeedSearchIn(BaseModel):
    """Also accepted: startDateTime / endDateTime, as the seed's clients send them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "startDatetime": "2019-10-05T12:00:00+00:00",
                    "endDatetime": "2019-10-05T14:00:00+00:00",
                }
            ]
        },
    )
    startDatetime: str  # noqa: N815 - the seed's field names
    endDatetime: str  # noqa: N815
