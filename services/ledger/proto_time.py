"""google.protobuf.Timestamp and Duration <-> datetime, for the servicers."""

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.ledger.domain.errors import InvalidInput


def timestamp_to_datetime(timestamp: Timestamp, field: str) -> datetime:
    """UTC datetime, truncated to microseconds (Python's precision)."""
    try:
        return timestamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidInput.single(field, "is not a valid timestamp") from error


def optional_timestamp(message: Message, field: str) -> datetime | None:
    """The field as a UTC datetime, or None when the message does not carry it."""
    if not message.HasField(field):
        return None
    timestamp: Timestamp = getattr(message, field)
    return timestamp_to_datetime(timestamp, field)


def required_timestamp(message: Message, field: str) -> datetime:
    instant = optional_timestamp(message, field)
    if instant is None:
        raise InvalidInput.single(field, "is required")
    return instant


def datetime_to_timestamp(instant: datetime) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(instant)
    return timestamp


def timedelta_to_duration(delta: timedelta) -> Duration:
    duration = Duration()
    duration.FromTimedelta(delta)
    return duration
