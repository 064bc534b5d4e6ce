"""google.protobuf.Timestamp and Duration <-> datetime, for the servicers."""

from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.ledger.domain.errors import InvalidInput


def timestamp_to_datetime(timestamp: Timestamp, field: str, *, round_up: bool = False) -> datetime:
    """UTC datetime at Python's microsecond precision: nanoseconds are truncated, or with
    `round_up` rounded up (a range's start must not move before what the client sent)."""
    try:
        instant = timestamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidInput.single(field, "is not a valid timestamp") from error
    if round_up and timestamp.nanos % 1000:
        try:
            instant += timedelta(microseconds=1)
        except OverflowError as error:
            raise InvalidInput.single(field, "is not a valid timestamp") from error
    return instant


def optional_timestamp(message: Message, field: str, *, round_up: bool = False) -> datetime | None:
    """The field as a UTC datetime, or None when the message does not carry it."""
    if not message.HasField(field):
        return None
    timestamp: Timestamp = getattr(message, field)
    return timestamp_to_datetime(timestamp, field, round_up=round_up)


def required_timestamp(message: Message, field: str, *, round_up: bool = False) -> datetime:
    instant = optional_timestamp(message, field, round_up=round_up)
    if instant is None:
        raise InvalidInput.single(field, "is required")
    return instant


def set_timestamp(timestamp: Timestamp, microseconds: int) -> None:
    """Sets `timestamp` in place to `microseconds` since the epoch, with no datetime between
    (a page of records sets 2,000 of them)."""
    seconds, rest = divmod(microseconds, 1_000_000)
    timestamp.seconds = seconds
    timestamp.nanos = rest * 1000


def datetime_to_timestamp(instant: datetime) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(instant)
    return timestamp
