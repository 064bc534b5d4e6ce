"""Many concurrent writers on one hot 15-minute bucket of one wallet, with re-sends racing
their originals: nothing fails, nothing is counted twice, the aggregates sum exactly."""

import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc

from services.ledger.adapters import ledger_table as t
from services.ledger.domain.buckets import format_instant
from tests.history_oracle import exact_sum
from tests.integration.conftest import (
    Scan,
    aggregates,
    deposit_request,
    records,
    total_amount,
    total_count,
)
from wallet.v1 import command_pb2, command_pb2_grpc

WRITERS = 32
CALLS = 2000
RESENT = CALLS // 10
DISTINCT = CALLS - RESENT
WALLET = "hot-wallet"
BUCKET = datetime(2024, 3, 10, 14, 0, tzinfo=UTC)


def random_amount(rng: random.Random) -> tuple[str, str]:
    """(canonical, as sent): up to 7 integer and 1 to 18 fraction digits, sometimes spelled
    with trailing zeros or an exponent."""
    integer = rng.choice([0, rng.randint(1, 9), rng.randint(1, 10**7)])
    places = rng.randint(1, 18)
    fraction = f"{rng.randint(1, 10**places - 1):0{places}d}".rstrip("0")
    canonical = f"{integer}.{fraction}"
    spelling = rng.randrange(3)
    if spelling == 1:
        return canonical, canonical + "0" * rng.randint(1, 3)
    if spelling == 2:
        return canonical, f"{integer}{fraction}e-{len(fraction)}"
    return canonical, canonical


def test_hot_bucket_sums_exactly_under_concurrency(
    command_stub: command_pb2_grpc.WalletCommandStub, scan: Scan
) -> None:
    rng = random.Random(20240310)
    canonical: dict[str, str] = {}
    requests: list[command_pb2.RecordTransactionRequest] = []
    for index in range(DISTINCT):
        request_id = f"hot-{index:05d}"
        canonical[request_id], sent = random_amount(rng)
        offset = timedelta(microseconds=rng.randrange(15 * 60 * 1_000_000))
        requests.append(
            deposit_request(
                wallet_id=WALLET, request_id=request_id, occurred_at=BUCKET + offset, amount=sent
            )
        )
    # Half of the re-sends go right beside their original, so the two race on the same key;
    # the other half land anywhere, so some arrive long after it.
    resent = rng.sample(requests, RESENT)
    racing = {id(request) for request in resent[: RESENT // 2]}
    units = [[request, request] if id(request) in racing else [request] for request in requests]
    units += [[request] for request in resent[RESENT // 2 :]]
    rng.shuffle(units)
    calls = [request for unit in units for request in unit]
    assert len(calls) == CALLS

    def send(
        request: command_pb2.RecordTransactionRequest,
    ) -> tuple[command_pb2.RecordTransactionRequest, command_pb2.RecordTransactionResponse]:
        return request, command_stub.RecordTransaction(request, timeout=60)

    failures: list[grpc.RpcError] = []
    responses: dict[str, list[command_pb2.RecordTransactionResponse]] = defaultdict(list)
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        futures = [pool.submit(send, request) for request in calls]
        for future in futures:
            try:
                request, response = future.result()
            except grpc.RpcError as error:
                failures.append(error)
                continue
            responses[request.request_id].append(response)

    assert [(f.code(), f.details()) for f in failures] == []
    assert len(responses) == DISTINCT
    by_id = {request.request_id: request for request in requests}
    for request_id, answers in responses.items():
        original = by_id[request_id]
        assert sorted(answer.replayed for answer in answers) == (
            [False, True] if len(answers) == 2 else [False]
        )
        assert all(answer.record == answers[0].record for answer in answers)
        record = answers[0].record
        assert (record.wallet_id, record.request_id) == (WALLET, request_id)
        assert record.occurred_at == original.occurred_at
        assert record.amount == canonical[request_id]
    assert sum(len(answers) for answers in responses.values()) == CALLS

    items = scan()
    record_items = records(items)
    aggregate_items = aggregates(items)
    assert len(record_items) == DISTINCT
    assert {item[t.REQUEST_ID]["S"]: item[t.AMOUNT]["N"] for item in record_items} == canonical
    expected_total = exact_sum(map(Decimal, canonical.values()))
    assert total_amount(record_items) == expected_total
    assert total_amount(aggregate_items) == expected_total
    assert total_count(aggregate_items) == DISTINCT
    assert {item[t.WALLET_ID]["S"] for item in aggregate_items} == {WALLET}
    assert {item[t.BUCKET]["S"] for item in aggregate_items} == {format_instant(BUCKET)}
    # The hot bucket is spread over several shards (8 by default), one item each.
    shards = [int(item[t.SHARD]["N"]) for item in aggregate_items]
    assert len(shards) == len(set(shards)) > 1
    assert all(0 <= shard < 8 for shard in shards)
