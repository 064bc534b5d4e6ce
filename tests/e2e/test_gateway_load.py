"""32 concurrent HTTP clients write 2,000 records to one wallet through the gateway, 10% of
them sent twice at the same time: each key records once, and once the updater has caught
up the wallet's history and balance equal the exact sum of the distinct records."""

import asyncio
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

import httpx

from tests.auth_support import bearer_header
from tests.e2e.stack import (
    CLIENT_KEEPALIVE_EXPIRY,
    HTTP_TIMEOUT,
    DevStack,
    new_wallet,
    now,
    record_json,
    wait_for_projection,
)

pytest_plugins = ["tests.e2e.stack_fixtures"]

CLIENTS = 32
RECORDS = 2_000
RETRIED_SHARE = 0.10
# Two hours of records: several 15-minute buckets, each written by many clients at once.
FIRST_HOUR = datetime(2022, 3, 1, 10, tzinfo=UTC)
HOURS = 2


@dataclass(frozen=True)
class Deposit:
    key: str
    occurred_at: datetime
    amount: Decimal
    as_number: bool

    def content(self) -> str:
        return record_json(
            self.occurred_at.isoformat(), f"{self.amount:f}", amount_as_number=self.as_number
        )


@dataclass(frozen=True)
class Answer:
    key: str
    status: int
    replayed: str | None
    body: str


def deposits(rng: random.Random) -> list[Deposit]:
    run = uuid.uuid4().hex[:8]
    made = []
    for number in range(RECORDS):
        offset = timedelta(seconds=rng.randrange(HOURS * 3600), microseconds=rng.randrange(10**6))
        # Exact decimals a float would round: up to 18 digits after the point.
        amount = Decimal(rng.randrange(1, 10**4)) + Decimal(rng.randrange(10**18)).scaleb(-18)
        made.append(Deposit(f"load-{run}-{number}", FIRST_HOUR + offset, amount, number % 2 == 0))
    return made


async def send_all(base_url: str, wallet: str, jobs: list[Deposit]) -> list[Answer]:
    queue: asyncio.Queue[Deposit] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    answers: list[Answer] = []
    limits = httpx.Limits(
        max_connections=CLIENTS,
        max_keepalive_connections=CLIENTS,
        keepalive_expiry=CLIENT_KEEPALIVE_EXPIRY,
    )

    async with httpx.AsyncClient(
        base_url=base_url, timeout=HTTP_TIMEOUT, limits=limits, headers=bearer_header()
    ) as client:

        async def worker() -> None:
            while True:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                response = await client.post(
                    f"/v1/wallets/{wallet}/records",
                    content=job.content(),
                    headers={"Content-Type": "application/json", "Idempotency-Key": job.key},
                )
                answers.append(
                    Answer(
                        job.key,
                        response.status_code,
                        response.headers.get("Idempotent-Replayed"),
                        response.text,
                    )
                )

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return answers


def test_concurrent_clients_with_retries_sum_exactly(dev_stack: DevStack) -> None:
    rng = random.Random(20261127)
    wallet = new_wallet("load")
    originals = deposits(rng)
    retried = set(rng.sample(range(RECORDS), int(RECORDS * RETRIED_SHARE)))
    # A retry right behind its original: two clients take them from the queue together.
    jobs: list[Deposit] = []
    for number, deposit in enumerate(originals):
        jobs.append(deposit)
        if number in retried:
            jobs.append(deposit)

    answers = asyncio.run(send_all(dev_stack.base_url, wallet, jobs))
    written = now()

    assert len(answers) == len(jobs)
    unexpected = [a for a in answers if a.status not in (200, 201)]
    assert not unexpected, f"{len(unexpected)} answers not 200/201, e.g. {unexpected[:5]}"
    by_key: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        by_key[answer.key].append(answer)
    for deposit in originals:
        statuses = sorted(a.status for a in by_key[deposit.key])
        expected = [200, 201] if len(by_key[deposit.key]) == 2 else [201]
        assert statuses == expected, (deposit.key, by_key[deposit.key])
        assert all(a.replayed == "true" for a in by_key[deposit.key] if a.status == 200)
        assert len({a.body for a in by_key[deposit.key]}) == 1, by_key[deposit.key]

    with httpx.Client(
        base_url=dev_stack.base_url, timeout=HTTP_TIMEOUT, headers=bearer_header()
    ) as client:
        wait_for_projection(client, written)
        end = FIRST_HOUR + timedelta(hours=HOURS)
        response = client.get(
            f"/v1/wallets/{wallet}/history",
            params={"start": FIRST_HOUR.isoformat(), "end": end.isoformat()},
        )
        assert response.status_code == 200, response.text
        balance = client.get(f"/v1/wallets/{wallet}/balance")
        assert balance.status_code == 200, balance.text

    with localcontext(prec=60):  # room for every digit of the sums
        total = sum((d.amount for d in originals), Decimal(0))
        hourly = [
            sum(
                (d.amount for d in originals if d.occurred_at < FIRST_HOUR + timedelta(hours=h)),
                Decimal(0),
            )
            for h in range(HOURS + 1)
        ]
    assert [Decimal(p["balance"]) for p in response.json()["points"]] == hourly
    assert Decimal(response.json()["points"][-1]["balance"]) == total
    assert Decimal(balance.json()["balance"]) == total
