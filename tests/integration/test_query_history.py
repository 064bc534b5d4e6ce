"""GetBalanceHistory and GetBalance end to end: deposits go into DynamoDB Local through the
write store, an updater pass projects them into PostgreSQL, and the real gRPC query service
answers. Every answer is checked against a brute-force model over the raw records
(tests/history_oracle.py)."""

import re
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mypy_boto3_dynamodb.client import DynamoDBClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from services.ledger.adapters.database import create_database_engine
from services.platform.grpc_errors import field_violations
from services.platform.settings import STREAM_DELIVERY_ALLOWANCE_SECONDS, QuerySettings
from services.query import server as query_server
from tests.auth_support import authenticated_channel
from tests.history_oracle import (
    ExpectedPoint,
    expected_balance,
    expected_history,
)
from tests.integration.conftest import Ledger, make_ledger, timestamp
from tests.integration.tcp_proxy import Target, TcpProxy
from wallet.v1 import query_pb2, query_pb2_grpc

HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)
# Plain decimal notation without trailing zeros, as the API writes amounts.
PLAIN_AMOUNT = re.compile(r"0|[1-9]\d*(\.\d*[1-9])?|0\.\d*[1-9]")
CALL_TIMEOUT = 20.0


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def ceil_to_quarter(instant: datetime) -> datetime:
    """Independent of the product's buckets: the next UTC quarter hour at or after."""
    epoch = utc(1970, 1, 1)
    quarters, rest = divmod(instant - epoch, QUARTER)
    return epoch + (quarters + (1 if rest else 0)) * QUARTER


def new_wallet() -> str:
    return f"w-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def updater_engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_ledger(dynamodb: DynamoDBClient, table_name: str, updater_engine: Engine) -> Ledger:
    """A ledger over the test's own table and database (the query_stub's database)."""
    return make_ledger(dynamodb, table_name, updater_engine)


def history_request(
    wallet_id: str,
    start: datetime | Timestamp | None,
    end: datetime | Timestamp | None,
    time_zone: str = "",
) -> query_pb2.GetBalanceHistoryRequest:
    request = query_pb2.GetBalanceHistoryRequest(wallet_id=wallet_id, time_zone=time_zone)
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            getattr(request, name).CopyFrom(
                timestamp(value) if isinstance(value, datetime) else value
            )
    return request


def balance_request(
    wallet_id: str, at: datetime | Timestamp | None = None
) -> query_pb2.GetBalanceRequest:
    request = query_pb2.GetBalanceRequest(wallet_id=wallet_id)
    if at is not None:
        request.at.CopyFrom(timestamp(at) if isinstance(at, datetime) else at)
    return request


def as_points(response: query_pb2.GetBalanceHistoryResponse) -> list[ExpectedPoint]:
    for point in response.points:
        assert PLAIN_AMOUNT.fullmatch(point.balance), point.balance
        assert PLAIN_AMOUNT.fullmatch(point.change), point.change
    return [
        ExpectedPoint(
            time=point.time.ToDatetime(tzinfo=UTC),
            balance=Decimal(point.balance),
            change=Decimal(point.change),
            utc_offset=point.utc_offset.ToTimedelta(),
        )
        for point in response.points
    ]


def history(
    stub: query_pb2_grpc.WalletQueryStub,
    wallet_id: str,
    start: datetime,
    end: datetime,
    time_zone: str = "",
) -> list[ExpectedPoint]:
    response = stub.GetBalanceHistory(
        history_request(wallet_id, start, end, time_zone), timeout=CALL_TIMEOUT
    )
    return as_points(response)


def rows(points: list[ExpectedPoint]) -> list[tuple[datetime, str, str]]:
    """Answered points as (time, balance, change), amounts as the API wrote them."""
    return [(p.time, f"{p.balance:f}", f"{p.change:f}") for p in points]


def model(
    ledger: Ledger, wallet_id: str, start: datetime, end: datetime, time_zone: str = ""
) -> list[ExpectedPoint]:
    return expected_history(ledger.records, wallet_id, start, end, ZoneInfo(time_zone or "UTC"))


def last_pass_finished_at(engine: Engine) -> datetime | None:
    with engine.connect() as connection:
        value: datetime | None = connection.execute(
            text("SELECT last_pass_finished_at FROM projection_status")
        ).scalar_one()
    return value


# --- the model against random records, ranges and zones -----------------------------------

ALL_ZONES = sorted(zoneinfo.available_timezones())
# Instants within two hours of which the listed zones change their offset, and the
# design's example day.
ANCHORS = {
    utc(2024, 11, 3, 6): ["America/New_York", "America/Havana", "America/St_Johns"],
    utc(2024, 10, 27, 1): ["Europe/Berlin", "Europe/Dublin", "Europe/Helsinki"],
    utc(2024, 3, 10, 7): ["America/New_York", "America/St_Johns", "America/Denver"],
    utc(2024, 4, 6, 15): ["Australia/Lord_Howe", "Australia/Adelaide", "Pacific/Chatham"],
    utc(2024, 10, 5, 15, 30): ["Australia/Lord_Howe", "Australia/Sydney", "Australia/Adelaide"],
    utc(2019, 10, 5, 13): ["UTC", "Asia/Kathmandu", "Asia/Kolkata", "Europe/London"],
}


def instants_near(anchor: datetime, hours: int) -> st.SearchStrategy[datetime]:
    reach = hours * 3600 * 10**6
    return st.one_of(
        st.integers(-hours * 4, hours * 4).map(lambda quarters: anchor + quarters * QUARTER),
        st.integers(-reach, reach).map(lambda us: anchor + timedelta(microseconds=us)),
    )


# Every valid amount: up to 20 digits before the point and 18 after (38 in all, more than
# Decimal's default 28-digit context keeps); small ones as often as large ones.
amounts = st.integers(min_value=0, max_value=18).flatmap(
    lambda places: st.one_of(
        st.integers(min_value=1, max_value=10 ** (6 + places) - 1),
        st.integers(min_value=1, max_value=10 ** (20 + places) - 1),
    ).map(lambda units: Decimal(f"{units}E-{places}"))  # exact: scaleb() would round
)
amount_texts = amounts.flatmap(lambda value: st.sampled_from([f"{value:f}", str(value)]))
durations = st.one_of(
    st.just(timedelta(0)),
    st.integers(0, 60 * 4).map(lambda quarters: quarters * QUARTER),
    st.integers(0, 60 * 3600 * 10**6).map(lambda us: timedelta(microseconds=us)),
)


# Half of the ranges go across the anchor.
SHAPES = ["across the anchor", "across the anchor", "two instants", "a duration"]


@dataclass(frozen=True)
class Scenario:
    records: list[tuple[int, datetime, str]]
    queries: list[tuple[int, datetime, datetime, str]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    anchor = draw(st.sampled_from(sorted(ANCHORS)))
    nearby_zones = st.sampled_from(ANCHORS[anchor])
    any_zone = st.one_of(st.sampled_from(ALL_ZONES), st.just(""))
    wallet = st.integers(0, 1)
    records = draw(
        st.lists(st.tuples(wallet, instants_near(anchor, 36), amount_texts), max_size=12)
    )
    queries = []
    for _ in range(draw(st.integers(1, 6))):
        start = draw(instants_near(anchor, 30))
        shape = draw(st.sampled_from(SHAPES))
        if shape == "across the anchor":
            # Covers anchor +- 2 h, where the nearby zones change their offset.
            around = st.integers(2 * 60 * 60 * 10**6, 30 * 60 * 60 * 10**6)
            start = anchor - timedelta(microseconds=draw(around))
            end = anchor + timedelta(microseconds=draw(around))
        elif shape == "two instants":
            start, end = sorted([start, draw(instants_near(anchor, 30))])
        else:
            end = start + draw(durations)
        zone = draw(nearby_zones if draw(st.integers(0, 3)) else any_zone)
        queries.append((draw(wallet), start, end, zone))
    return Scenario(records, queries)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # Shrinking replays whole examples against DynamoDB and PostgreSQL: minutes. The
    # unshrunk example is small enough to read.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(scenario=scenarios())
def test_history_matches_the_model_for_random_records_ranges_and_zones(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub, scenario: Scenario
) -> None:
    # The table and the database live for the whole test: each example has its own wallets.
    wallets = [new_wallet(), new_wallet()]
    for wallet, occurred_at, amount in scenario.records:
        ledger.deposit(wallets[wallet], occurred_at, amount)
    ledger.run_pass()
    for wallet, start, end, zone in scenario.queries:
        answer = history(stub, wallets[wallet], start, end, zone)
        assert answer == model(ledger, wallets[wallet], start, end, zone), (start, end, zone)


# --- named cases --------------------------------------------------------------------------


def test_design_example(ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, datetime.fromisoformat("2019-10-05T14:48:01+01:00"), "1.1")
    ledger.run_pass()
    response = stub.GetBalanceHistory(
        history_request(wallet, utc(2019, 10, 5, 12), utc(2019, 10, 5, 14))
    )
    assert [(p.balance, p.change) for p in response.points] == [
        ("0", "0"),
        ("0", "0"),
        ("1.1", "1.1"),
    ]
    assert rows(as_points(response)) == [
        (utc(2019, 10, 5, 12), "0", "0"),
        (utc(2019, 10, 5, 13), "0", "0"),
        (utc(2019, 10, 5, 14), "1.1", "1.1"),
    ]
    assert all(p.utc_offset.ToTimedelta() == timedelta(0) for p in response.points)


def test_record_at_exactly_an_hour_start_counts_at_the_next_point(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 5, 1, 14), "1.1")
    ledger.deposit(wallet, datetime(2024, 5, 1, 13, 59, 59, 999999, tzinfo=UTC), "0.5")
    ledger.deposit(wallet, utc(2024, 5, 1, 15), "100")
    ledger.run_pass()
    answer = history(stub, wallet, utc(2024, 5, 1, 13), utc(2024, 5, 1, 15))
    assert rows(answer) == [
        (utc(2024, 5, 1, 13), "0", "0"),
        (utc(2024, 5, 1, 14), "0.5", "0.5"),
        (utc(2024, 5, 1, 15), "1.6", "1.1"),
    ]


def test_new_york_autumn_night_has_two_one_oclock_points(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 11, 3, 5, 30), "1")  # 01:30 EDT
    ledger.deposit(wallet, utc(2024, 11, 3, 6, 30), "2")  # 01:30 EST
    ledger.deposit(wallet, utc(2024, 11, 3, 7), "4")  # 02:00 EST
    ledger.run_pass()
    start, end = utc(2024, 11, 3, 3), utc(2024, 11, 3, 8)
    answer = history(stub, wallet, start, end, "America/New_York")
    assert rows(answer) == [
        (utc(2024, 11, 3, 3), "0", "0"),  # 23:00 EDT
        (utc(2024, 11, 3, 4), "0", "0"),  # 00:00 EDT
        (utc(2024, 11, 3, 5), "0", "0"),  # 01:00 EDT
        (utc(2024, 11, 3, 6), "1", "1"),  # 01:00 EST
        (utc(2024, 11, 3, 7), "3", "2"),  # 02:00 EST
        (utc(2024, 11, 3, 8), "7", "4"),  # 03:00 EST
    ]
    assert [p.utc_offset for p in answer] == [timedelta(hours=h) for h in (-4, -4, -4, -5, -5, -5)]


def test_new_york_spring_night_has_no_two_oclock_point(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 3, 10, 6, 59, 59), "1")  # 01:59:59 EST
    ledger.run_pass()
    answer = history(stub, wallet, utc(2024, 3, 10, 5), utc(2024, 3, 10, 8), "America/New_York")
    new_york = ZoneInfo("America/New_York")
    assert [p.time.astimezone(new_york).hour for p in answer] == [0, 1, 3, 4]
    assert rows(answer) == [
        (utc(2024, 3, 10, 5), "0", "0"),
        (utc(2024, 3, 10, 6), "0", "0"),
        (utc(2024, 3, 10, 7), "1", "1"),
        (utc(2024, 3, 10, 8), "1", "0"),
    ]


@pytest.mark.parametrize(
    ("zone", "minute", "offset"),
    [
        ("Asia/Kathmandu", 15, timedelta(hours=5, minutes=45)),
        ("Asia/Kolkata", 30, timedelta(hours=5, minutes=30)),
    ],
)
def test_quarter_and_half_hour_zones(
    ledger: Ledger,
    stub: query_pb2_grpc.WalletQueryStub,
    zone: str,
    minute: int,
    offset: timedelta,
) -> None:
    wallet = new_wallet()
    boundary = utc(2024, 5, 1, 18, minute)  # 00:00 local on 2 May
    ledger.deposit(wallet, boundary - timedelta(microseconds=1), "1")
    ledger.deposit(wallet, boundary, "2")
    ledger.deposit(wallet, boundary + HOUR - timedelta(microseconds=1), "4")
    ledger.deposit(wallet, boundary + HOUR, "8")
    ledger.run_pass()
    answer = history(stub, wallet, utc(2024, 5, 1, 17), utc(2024, 5, 1, 20), zone)
    assert rows(answer) == [
        (boundary - HOUR, "0", "0"),
        (boundary, "1", "1"),
        (boundary + HOUR, "7", "6"),
    ]
    assert [p.utc_offset for p in answer] == [offset] * 3
    assert answer == model(ledger, wallet, utc(2024, 5, 1, 17), utc(2024, 5, 1, 20), zone)


def test_hours_without_records_carry_the_balance(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 5, 1, 9, 10), "3.25")
    ledger.deposit(wallet, utc(2024, 5, 2, 20, 50), "0.75")
    ledger.run_pass()
    # From before the first record, across a UTC day, to after the last.
    answer = history(stub, wallet, utc(2024, 5, 1, 9), utc(2024, 5, 2, 22), "Europe/Berlin")
    assert len(answer) == 38
    assert [p.balance for p in answer] == [Decimal(0)] + [Decimal("3.25")] * 35 + [Decimal(4)] * 2
    assert [p.change for p in answer if p.change] == [Decimal("3.25"), Decimal("0.75")]
    assert answer == model(ledger, wallet, utc(2024, 5, 1, 9), utc(2024, 5, 2, 22), "Europe/Berlin")


def test_unaligned_start_and_end(ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 5, 1, 12, 10), "1")  # before start, in the first hour
    ledger.deposit(wallet, utc(2024, 5, 1, 15, 30), "2")  # after the last point
    ledger.deposit(wallet, utc(2024, 5, 1, 16, 0), "4")  # after end
    ledger.run_pass()
    start = datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC)
    end = datetime(2024, 5, 1, 15, 59, 59, 999999, tzinfo=UTC)
    assert rows(history(stub, wallet, start, end)) == [
        (utc(2024, 5, 1, 13), "1", "1"),
        (utc(2024, 5, 1, 14), "1", "0"),
        (utc(2024, 5, 1, 15), "1", "0"),
    ]


def test_start_equal_to_end_and_ranges_without_hour_starts(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 5, 1, 13, 5), "5")
    ledger.run_pass()
    instant = utc(2024, 5, 1, 14)
    assert rows(history(stub, wallet, instant, instant)) == [(instant, "5", "5")]
    tiny = timedelta(microseconds=1)
    assert history(stub, wallet, instant + tiny, instant + HOUR - tiny) == []
    assert history(stub, wallet, instant + tiny, instant + tiny) == []


def test_start_a_nanosecond_after_an_hour_start_excludes_that_point(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    """Timestamps carry nanoseconds: 14:00:00.000000001 is after 14:00, so 14:00 is not a
    point of that range (truncating start to microseconds would include it)."""
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 5, 1, 13, 30), "1")
    ledger.run_pass()
    start = timestamp(utc(2024, 5, 1, 14), nanos=1)
    response = stub.GetBalanceHistory(history_request(wallet, start, utc(2024, 5, 1, 15)))
    assert [p.time.ToDatetime(tzinfo=UTC) for p in response.points] == [utc(2024, 5, 1, 15)]


def test_late_record_in_an_already_projected_hour_shows_after_the_next_pass(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet, other = new_wallet(), new_wallet()
    ledger.deposit(wallet, utc(2024, 6, 1, 10, 20), "1")
    ledger.deposit(wallet, utc(2024, 6, 2, 10, 20), "2", request_id="on-time-2")
    ledger.deposit(wallet, utc(2024, 6, 3, 10, 20), "4")
    ledger.deposit(other, utc(2024, 6, 2, 11), "100")
    ledger.run_pass()
    start, end = utc(2024, 6, 1), utc(2024, 6, 3, 23)
    before = model(ledger, wallet, start, end)
    assert history(stub, wallet, start, end) == before

    # A day-old hour of an earlier day, and a second record in an already projected
    # aggregate item (same bucket, same shard: its count grows from 1 to 2).
    ledger.deposit(wallet, utc(2024, 6, 1, 15, 5), "8")
    shard = ledger.shard(wallet, "on-time-2")
    same_shard = next(
        f"late-{n}" for n in range(1000) if ledger.shard(wallet, f"late-{n}") == shard
    )
    ledger.deposit(wallet, utc(2024, 6, 2, 10, 25), "16", request_id=same_shard)
    assert history(stub, wallet, start, end) == before, "visible before the pass"

    ledger.run_pass()
    after = history(stub, wallet, start, end)
    assert after == model(ledger, wallet, start, end)
    by_time = {point.time: point for point in after}
    assert (by_time[utc(2024, 6, 1, 15)].balance, by_time[utc(2024, 6, 1, 15)].change) == (
        Decimal(1),
        Decimal(0),
    )
    assert (by_time[utc(2024, 6, 1, 16)].balance, by_time[utc(2024, 6, 1, 16)].change) == (
        Decimal(9),
        Decimal(8),
    )
    assert (by_time[utc(2024, 6, 2, 11)].balance, by_time[utc(2024, 6, 2, 11)].change) == (
        Decimal(27),
        Decimal(18),
    )
    assert by_time[end].balance == 31
    # Every later point moved by exactly the late amounts; every earlier one stayed.
    for old, new in zip(before, after, strict=True):
        late = (Decimal(8) if old.time > utc(2024, 6, 1, 15, 5) else 0) + (
            Decimal(16) if old.time > utc(2024, 6, 2, 10, 25) else 0
        )
        assert new.balance - old.balance == late
    balance = stub.GetBalance(balance_request(wallet), timeout=CALL_TIMEOUT)
    assert Decimal(balance.balance) == 31
    assert history(stub, other, start, end) == model(ledger, other, start, end)


def test_largest_amounts_are_exact(ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 5, 1, 10, 5), "12345678901234567890.123456789012345678")
    ledger.deposit(wallet, utc(2024, 5, 1, 11, 5), "0.000000000000000001")
    ledger.deposit(wallet, utc(2024, 5, 1, 12, 5), "99999999999999999999.999999999999999999")
    ledger.run_pass()
    answer = history(stub, wallet, utc(2024, 5, 1, 11), utc(2024, 5, 1, 13))
    assert rows(answer) == [
        (
            utc(2024, 5, 1, 11),
            "12345678901234567890.123456789012345678",
            "12345678901234567890.123456789012345678",
        ),
        (utc(2024, 5, 1, 12), "12345678901234567890.123456789012345679", "0.000000000000000001"),
        (
            utc(2024, 5, 1, 13),
            "112345678901234567890.123456789012345678",
            "99999999999999999999.999999999999999999",
        ),
    ]
    balance = stub.GetBalance(balance_request(wallet), timeout=CALL_TIMEOUT)
    assert balance.balance == "112345678901234567890.123456789012345678"


# --- invalid input ------------------------------------------------------------------------

START = utc(2024, 1, 1)


def invalid_history_requests() -> list[Any]:
    wallet = "w1"
    return [
        pytest.param(history_request(wallet, START + HOUR, START), "start", id="start after end"),
        pytest.param(
            history_request(wallet, START, START + HOUR, "Mars/Olympus_Mons"),
            "time_zone",
            id="unknown zone",
        ),
        pytest.param(
            history_request(wallet, START, START + HOUR, "../etc/passwd"),
            "time_zone",
            id="zone path",
        ),
        pytest.param(
            history_request(wallet, START, START + HOUR, "a/" * 400 + "b"),
            "time_zone",
            id="deep zone path",
        ),
        pytest.param(
            history_request(wallet, utc(1971, 6, 1), utc(1971, 6, 1, 5), "Africa/Monrovia"),
            "time_zone",
            id="local mean time offset",
        ),
        pytest.param(history_request("bad wallet!", START, START), "wallet_id", id="bad wallet"),
        pytest.param(history_request("", START, START), "wallet_id", id="empty wallet"),
        pytest.param(history_request("w" * 65, START, START), "wallet_id", id="65-char wallet"),
        pytest.param(history_request(wallet, None, START), "start", id="missing start"),
        pytest.param(history_request(wallet, START, None), "end", id="missing end"),
        pytest.param(
            history_request(wallet, Timestamp(seconds=0, nanos=-1), START),
            "start",
            id="invalid timestamp",
        ),
    ]


@pytest.mark.parametrize(("request_", "field_name"), invalid_history_requests())
def test_invalid_history_request_is_refused_naming_the_field(
    stub: query_pb2_grpc.WalletQueryStub,
    request_: query_pb2.GetBalanceHistoryRequest,
    field_name: str,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.GetBalanceHistory(request_, timeout=CALL_TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert field_name in field_violations(error.value)


@pytest.mark.parametrize(
    "end",
    [START + 10_000 * HOUR, START + 200_000 * HOUR],
    ids=["10001 points", "23 years"],
)
def test_more_than_10000_points_is_refused_naming_the_limit(
    stub: query_pb2_grpc.WalletQueryStub, end: datetime
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.GetBalanceHistory(history_request("w1", START, end), timeout=CALL_TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error.value)
    assert violations
    assert any("10000" in text or "10,000" in text for text in violations.values()), violations


def test_exactly_10000_points_are_answered(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, START - 2 * HOUR, "1")  # before the first point's hour
    ledger.deposit(wallet, START + 5000 * HOUR + QUARTER, "2.5")
    ledger.run_pass()
    end = START + 9_999 * HOUR
    answer = history(stub, wallet, START, end)
    # (The minute-by-minute model is too slow for 10,000 hours; UTC hours are simple.)
    assert [p.time for p in answer] == [START + n * HOUR for n in range(10_000)]
    assert [p.utc_offset for p in answer] == [timedelta(0)] * 10_000
    assert [(n, p.change) for n, p in enumerate(answer) if p.change] == [(5001, Decimal("2.5"))]
    assert [p.balance for p in answer] == [Decimal(1)] * 5001 + [Decimal("3.5")] * 4999


@pytest.mark.parametrize(
    ("request_", "field_name"),
    [
        pytest.param(balance_request("bad wallet!"), "wallet_id", id="bad wallet"),
        pytest.param(balance_request(""), "wallet_id", id="empty wallet"),
        pytest.param(balance_request("w1", Timestamp(seconds=0, nanos=-1)), "at", id="bad at"),
        # Its next 15-minute boundary, 10000-01-01, is past the last Timestamp.
        pytest.param(balance_request("w1", utc(9999, 12, 31, 23, 59, 59)), "at", id="at 9999"),
    ],
)
def test_invalid_balance_request_is_refused_naming_the_field(
    stub: query_pb2_grpc.WalletQueryStub,
    request_: query_pb2.GetBalanceRequest,
    field_name: str,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.GetBalance(request_, timeout=CALL_TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert field_name in field_violations(error.value)


# --- GetBalance and as_of -----------------------------------------------------------------


def test_balance_now_is_the_full_balance(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2015, 1, 1), "10")
    ledger.deposit(wallet, now() - timedelta(days=1), "0.1")
    ledger.deposit(wallet, now() - timedelta(seconds=1), "0.02")
    ledger.deposit(new_wallet(), now() - timedelta(seconds=1), "1000")
    ledger.run_pass()
    before = now()
    response = stub.GetBalance(balance_request(wallet), timeout=CALL_TIMEOUT)
    after = now()
    assert response.balance == "10.12"
    at = response.at.ToDatetime(tzinfo=UTC)
    assert ceil_to_quarter(before) <= at <= ceil_to_quarter(after)


def test_balance_at_a_boundary_excludes_records_at_that_instant(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, datetime(2024, 5, 1, 13, 59, 59, 999999, tzinfo=UTC), "1")
    ledger.deposit(wallet, utc(2024, 5, 1, 14), "2")
    ledger.deposit(wallet, utc(2024, 5, 1, 14, 14, 59), "4")
    ledger.deposit(wallet, utc(2024, 5, 1, 14, 15), "8")
    ledger.run_pass()
    response = stub.GetBalance(balance_request(wallet, utc(2024, 5, 1, 14)))
    assert (response.balance, response.at.ToDatetime(tzinfo=UTC)) == ("1", utc(2024, 5, 1, 14))
    response = stub.GetBalance(balance_request(wallet, utc(2024, 5, 1, 14, 15)))
    assert (response.balance, response.at.ToDatetime(tzinfo=UTC)) == ("7", utc(2024, 5, 1, 14, 15))
    assert Decimal(response.balance) == expected_balance(
        ledger.records, wallet, utc(2024, 5, 1, 14, 15)
    )


@pytest.mark.parametrize(
    "at",
    [
        timestamp(datetime(2024, 5, 1, 14, 0, 0, 1, tzinfo=UTC)),
        timestamp(utc(2024, 5, 1, 14, 7, 30)),
        timestamp(datetime(2024, 5, 1, 14, 14, 59, 999999, tzinfo=UTC)),
        timestamp(utc(2024, 5, 1, 14), nanos=1),
    ],
    ids=["1us after", "7:30 after", "1us before the next", "1ns after"],
)
def test_balance_at_an_unaligned_instant_reports_the_next_boundary(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub, at: Timestamp
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, datetime(2024, 5, 1, 13, 59, 59, 999999, tzinfo=UTC), "1")
    ledger.deposit(wallet, utc(2024, 5, 1, 14), "2")
    ledger.deposit(wallet, utc(2024, 5, 1, 14, 14, 59), "4")
    ledger.deposit(wallet, utc(2024, 5, 1, 14, 15), "8")
    ledger.run_pass()
    response = stub.GetBalance(balance_request(wallet, at), timeout=CALL_TIMEOUT)
    assert (response.at.ToDatetime(tzinfo=UTC), response.at.nanos) == (
        utc(2024, 5, 1, 14, 15),
        0,
    )
    assert response.balance == "7"


DELIVERY_ALLOWANCE = timedelta(seconds=STREAM_DELIVERY_ALLOWANCE_SECONDS)


def test_as_of_is_absent_before_any_pass_then_the_last_pass_finish_time(
    fresh_ledger: Ledger,
    query_stub: query_pb2_grpc.WalletQueryStub,
    updater_engine: Engine,
) -> None:
    ledger, stub = fresh_ledger, query_stub
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 5, 1, 10), "1")

    def answers() -> tuple[query_pb2.GetBalanceHistoryResponse, query_pb2.GetBalanceResponse]:
        return (
            stub.GetBalanceHistory(
                history_request(wallet, utc(2024, 5, 1, 10), utc(2024, 5, 1, 11)),
                timeout=CALL_TIMEOUT,
            ),
            stub.GetBalance(balance_request(wallet), timeout=CALL_TIMEOUT),
        )

    for response in answers():
        assert not response.HasField("as_of")
    assert [p.balance for p in answers()[0].points] == ["0", "0"]

    finished = []
    for _ in range(2):
        started = now()
        ledger.run_pass()
        ended = now()
        stored = last_pass_finished_at(updater_engine)
        assert stored is not None
        # A pass that found the stream quiet claims no more than the delivery allowance
        # before it began: a write may still be on its way into the stream.
        assert started - DELIVERY_ALLOWANCE <= stored <= ended
        finished.append(stored)
        for response in answers():
            assert response.HasField("as_of")
            assert response.as_of.ToDatetime(tzinfo=UTC) == stored
    assert finished[0] < finished[1]
    assert [p.balance for p in answers()[0].points] == ["0", "1"]


# --- PostgreSQL outage --------------------------------------------------------------------


def proxy_target(database_url: str) -> Target:
    url = make_url(database_url)
    port = url.port or 5432
    host = url.host or url.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    if host is None or host.startswith("/"):
        return f"{host or '/tmp'}/.s.PGSQL.{port}"
    return (host, port)


@pytest.fixture
def database_proxy(module_database: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of the test database, and the database URL through it."""
    url = make_url(module_database)
    with TcpProxy(proxy_target(module_database)) as proxy:
        query = {name: value for name, value in url.query.items() if name != "host"}
        proxied = url.set(host="127.0.0.1", port=proxy.port, query=query)
        yield proxy, proxied.render_as_string(hide_password=False)


def test_database_outage_gives_unavailable_and_the_service_recovers_by_itself(
    ledger: Ledger, module_settings: QuerySettings, database_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = database_proxy
    wallet = new_wallet()
    ledger.deposit(wallet, utc(2024, 5, 1, 10, 30), "2.5")
    ledger.run_pass()
    start, end = utc(2024, 5, 1, 10), utc(2024, 5, 1, 12)
    expected = model(ledger, wallet, start, end)

    service = query_server.build(module_settings, proxied_url, port=0)
    service.start()
    try:
        with authenticated_channel(f"127.0.0.1:{service.port}") as channel:
            stub = query_pb2_grpc.WalletQueryStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            calls: list[Callable[[], object]] = [
                lambda: history(stub, wallet, start, end),
                lambda: stub.GetBalance(balance_request(wallet, end), timeout=CALL_TIMEOUT),
            ]

            def all_answer(times: int) -> None:
                """Runs each call `times` times, 8 at once (so the pool holds several
                connections), and checks the answers."""
                with ThreadPoolExecutor(max_workers=8) as pool:
                    answers = list(pool.map(lambda call: call(), calls * times))
                for answer in answers:
                    if isinstance(answer, list):
                        assert answer == expected
                    else:
                        assert isinstance(answer, query_pb2.GetBalanceResponse)
                        assert answer.balance == "2.5"

            all_answer(4)
            # A restart between two calls (every pooled connection dropped) is invisible.
            proxy.cut()
            proxy.restore()
            all_answer(4)

            proxy.cut()
            for call in calls * 3:
                with pytest.raises(grpc.RpcError) as error:
                    call()
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE, error.value.details()
                # The service itself is up: UNAVAILABLE came from the servicer.
                assert (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT).status
                    == health_pb2.HealthCheckResponse.SERVING
                )

            proxy.restore()
            accepted = proxy.connections_accepted
            all_answer(4)
            assert proxy.connections_accepted > accepted
    finally:
        service.stop(grace=1)
