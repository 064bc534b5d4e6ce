"""WalletQuery.ListRecords and GetRecord over real gRPC, from records written to DynamoDB
Local and projected into PostgreSQL by updater passes: pagination edges (empty, an exact
multiple of the page size, identical instants, records arriving between pages, a token
reused with other filters) and lookups, under a database whose time zone is not UTC."""

import base64
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_status import rpc_status

from services.platform.grpc_errors import field_violations
from tests.integration.conftest import Ledger
from wallet.v1 import query_pb2, query_pb2_grpc

START = datetime(2025, 1, 1, tzinfo=UTC)
END = START + timedelta(days=1)
CALL_TIMEOUT = 20.0
# Thirteen hours and three quarters off UTC: an instant read or written in the session's
# zone instead of UTC shows.
DATABASE_TIME_ZONE = "Pacific/Chatham"


@pytest.fixture(scope="module")
def database_time_zone() -> str:
    return DATABASE_TIME_ZONE


def new_wallet() -> str:
    return f"w-{uuid.uuid4().hex[:12]}"


def timestamp(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp


def list_request(
    wallet_id: str,
    start: datetime = START,
    end: datetime = END,
    page_size: int = 0,
    page_token: str = "",
) -> query_pb2.ListRecordsRequest:
    return query_pb2.ListRecordsRequest(
        wallet_id=wallet_id,
        start=timestamp(start),
        end=timestamp(end),
        page_size=page_size,
        page_token=page_token,
    )


def all_pages(
    stub: query_pb2_grpc.WalletQueryStub, request: query_pb2.ListRecordsRequest
) -> list[query_pb2.ListRecordsResponse]:
    pages = [stub.ListRecords(request, timeout=CALL_TIMEOUT)]
    while pages[-1].next_page_token:
        request.page_token = pages[-1].next_page_token
        pages.append(stub.ListRecords(request, timeout=CALL_TIMEOUT))
    return pages


def keys(pages: list[query_pb2.ListRecordsResponse]) -> list[tuple[datetime, str]]:
    return [
        (record.occurred_at.ToDatetime(tzinfo=UTC), record.request_id)
        for page in pages
        for record in page.records
    ]


def deposit_many(ledger: Ledger, wallet_id: str, instants: list[datetime]) -> list[str]:
    request_ids = [f"r-{index:04d}-{uuid.uuid4().hex[:6]}" for index in range(len(instants))]
    for request_id, instant in zip(request_ids, instants, strict=True):
        ledger.deposit(wallet_id, instant, "1.5", request_id=request_id)
    ledger.run_pass()
    return request_ids


def test_a_wallet_without_records_lists_one_empty_last_page(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    ledger.run_pass()
    page = stub.ListRecords(list_request(new_wallet()), timeout=CALL_TIMEOUT)
    assert list(page.records) == []
    assert page.next_page_token == ""
    assert page.HasField("as_of")


def test_pages_list_every_record_once_in_order_with_the_fields_as_recorded(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    instants = [START + timedelta(minutes=37 * index, microseconds=index) for index in range(23)]
    request_ids = deposit_many(ledger, wallet, instants)

    pages = all_pages(stub, list_request(wallet, page_size=5))

    assert [len(page.records) for page in pages] == [5, 5, 5, 5, 3]
    assert keys(pages) == sorted(zip(instants, request_ids, strict=True))
    first = pages[0].records[0]
    assert (first.wallet_id, first.amount) == (wallet, "1.5")
    assert first.recorded_at.ToDatetime(tzinfo=UTC) > instants[0]


def test_a_listing_that_fills_its_last_page_exactly_ends_with_an_empty_page(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    deposit_many(ledger, wallet, [START + timedelta(hours=hour) for hour in range(6)])

    pages = all_pages(stub, list_request(wallet, page_size=3))

    # The second page is full, so the service cannot tell it is the last one without
    # reading a row more: it does, and says so.
    assert [len(page.records) for page in pages] == [3, 3]
    assert pages[-1].next_page_token == ""


def test_records_at_one_instant_are_ordered_by_request_id_across_pages(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    instant = START + timedelta(hours=3, microseconds=7)
    request_ids = deposit_many(ledger, wallet, [instant] * 7)

    pages = all_pages(stub, list_request(wallet, page_size=2))

    assert keys(pages) == [(instant, request_id) for request_id in sorted(request_ids)]


def test_the_range_includes_start_and_excludes_end(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    edges = [START - timedelta(microseconds=1), START, END - timedelta(microseconds=1), END]
    request_ids = deposit_many(ledger, wallet, edges)

    listed = [key for _, key in keys(all_pages(stub, list_request(wallet)))]

    assert listed == [request_ids[1], request_ids[2]]


def test_records_at_the_earliest_instants_list_and_are_found_to_the_microsecond(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    """Year 1 is 62 billion seconds before the epoch: the instants travel as negative epoch
    microseconds, and a page token holds the first of them."""
    wallet = new_wallet()
    earliest = datetime(1, 1, 1, tzinfo=UTC)
    instants = [earliest, earliest + timedelta(microseconds=1), earliest + timedelta(hours=1)]
    request_ids = deposit_many(ledger, wallet, instants)

    pages = all_pages(stub, list_request(wallet, earliest, earliest + timedelta(days=1), 1))

    assert keys(pages) == list(zip(instants, request_ids, strict=True))
    found = stub.GetRecord(
        query_pb2.GetRecordRequest(wallet_id=wallet, request_id=request_ids[1]),
        timeout=CALL_TIMEOUT,
    )
    assert found.record.occurred_at == timestamp(instants[1])
    assert found.record.occurred_at.seconds == -62135596800
    assert found.record.occurred_at.nanos == 1000


def test_records_arriving_between_pages_never_repeat_or_hide_others(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    instants = [START + timedelta(hours=2 * index) for index in range(6)]
    deposit_many(ledger, wallet, instants)
    request = list_request(wallet, page_size=3)
    first = stub.ListRecords(request, timeout=CALL_TIMEOUT)

    # One before the first page's last record (not listed: its place was passed), one
    # after it (listed on a later page).
    before = deposit_many(ledger, wallet, [START + timedelta(minutes=30)])
    after = deposit_many(ledger, wallet, [START + timedelta(hours=9)])
    request.page_token = first.next_page_token
    rest = all_pages(stub, request)

    listed = [key for _, key in keys([first, *rest])]
    assert len(listed) == len(set(listed)) == 7
    assert after[0] in listed
    assert before[0] not in listed


def test_a_page_token_used_with_other_filters_is_refused(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    deposit_many(ledger, wallet, [START + timedelta(hours=hour) for hour in range(3)])
    token = stub.ListRecords(list_request(wallet, page_size=1), timeout=CALL_TIMEOUT)
    assert token.next_page_token

    for other in (
        list_request(new_wallet(), page_token=token.next_page_token),
        list_request(wallet, start=START + timedelta(seconds=1), page_token=token.next_page_token),
        list_request(wallet, end=END + timedelta(days=1), page_token=token.next_page_token),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListRecords(other, timeout=CALL_TIMEOUT)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in field_violations(refused.value)
    # The page size may change between pages.
    again = list_request(wallet, page_size=5, page_token=token.next_page_token)
    assert len(stub.ListRecords(again, timeout=CALL_TIMEOUT).records) == 2


@pytest.mark.parametrize(
    ("field", "request_"),
    [
        ("page_token", list_request("w-1", page_token="not a token")),
        ("page_token", list_request("w-1", page_token=base64.urlsafe_b64encode(b"[]").decode())),
        ("page_size", list_request("w-1", page_size=-1)),
        ("end", list_request("w-1", start=END, end=START)),
        ("wallet_id", list_request("w 1")),
        ("start", query_pb2.ListRecordsRequest(wallet_id="w-1", end=timestamp(END))),
    ],
)
def test_a_bad_listing_request_is_refused_naming_its_field(
    stub: query_pb2_grpc.WalletQueryStub, field: str, request_: query_pb2.ListRecordsRequest
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListRecords(request_, timeout=CALL_TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)


def test_a_page_larger_than_the_maximum_is_served_as_the_maximum(
    module_database: str, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    with psycopg.connect(module_database, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO records SELECT %s, 'bulk-' || n, %s + n * interval '1 second', 1, now()"
            " FROM generate_series(1, 1001) AS n",
            (wallet, START),
        )
    page = stub.ListRecords(list_request(wallet, page_size=5000), timeout=CALL_TIMEOUT)
    assert len(page.records) == 1000
    assert page.next_page_token


def test_a_record_is_found_by_its_request_id_with_exact_fields(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    occurred_at = START + timedelta(hours=5, microseconds=123456)
    ledger.deposit(wallet, occurred_at, "99999999999999999999.999999999999999999", "big one")
    ledger.run_pass()

    found = stub.GetRecord(
        query_pb2.GetRecordRequest(wallet_id=wallet, request_id="big one"), timeout=CALL_TIMEOUT
    )

    assert found.record.wallet_id == wallet
    assert found.record.request_id == "big one"
    assert Decimal(found.record.amount) == Decimal("99999999999999999999.999999999999999999")
    assert found.record.occurred_at.ToDatetime(tzinfo=UTC) == occurred_at
    assert found.HasField("as_of")


def test_a_record_not_in_the_read_model_is_not_found_with_its_as_of(
    ledger: Ledger, stub: query_pb2_grpc.WalletQueryStub
) -> None:
    wallet = new_wallet()
    ledger.deposit(wallet, START, "1", "elsewhere")
    ledger.run_pass()

    for request in (
        query_pb2.GetRecordRequest(wallet_id=wallet, request_id="never"),
        # The same request id in another wallet is another record.
        query_pb2.GetRecordRequest(wallet_id=new_wallet(), request_id="elsewhere"),
    ):
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetRecord(request, timeout=CALL_TIMEOUT)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        status = rpc_status.from_call(missing.value)  # type: ignore[arg-type]
        assert status is not None
        freshness = query_pb2.ReadModelAsOf()
        assert status.details[0].Unpack(freshness)
        assert freshness.as_of.ToDatetime(tzinfo=UTC) > START
