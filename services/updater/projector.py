"""Updater passes: read the stream from the checkpoints, project into the read model."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.updater import metrics
from services.updater.positions import (
    AggregateImage,
    CheckpointLost,
    ShardPosition,
    plan_reads,
)
from services.updater.projection_store import ProjectionStore
from services.updater.stream_reader import StreamReader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassReport:
    records_read: int
    items: int
    changed_buckets: int
    shards: int


class Projector:
    def __init__(
        self,
        reader: StreamReader,
        store: ProjectionStore,
        before_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._reader = reader
        self._store = store
        self._before_commit = before_commit

    def run_pass(self) -> PassReport:
        """Reads every shard from its checkpoint to its current end and commits the newest
        images with the new checkpoints. Raises CheckpointLost when records were lost."""
        started = datetime.now(UTC)
        timer = time.perf_counter()
        try:
            report = self._pass(started)
        except CheckpointLost:
            metrics.pass_failed(checkpoint_lost=True)
            raise
        except Exception:
            metrics.pass_failed(checkpoint_lost=False)
            raise
        metrics.pass_completed(started, time.perf_counter() - timer, report.records_read)
        return report

    def _pass(self, started: datetime) -> PassReport:
        stream_arn = self._reader.stream_arn()
        checkpoints = self._store.checkpoints()
        plan = plan_reads(
            self._reader.shards(stream_arn),
            checkpoints.get(stream_arn, {}),
            other_streams_checkpointed=any(arn != stream_arn for arn in checkpoints),
        )
        batch = self._reader.read(stream_arn, plan)
        changed = self._store.apply(
            batch.images.values(),
            stream_arn=stream_arn,
            positions=batch.positions,
            as_of=started,
            before_commit=self._before_commit,
        )
        return PassReport(batch.records_read, len(batch.images), changed, len(plan))

    def rebuild(self, segments: int) -> PassReport:
        """Projects every aggregate item from a parallel scan, then restarts the checkpoints
        at the start of the stream's current shards. The shards are listed before the scan,
        so every change the scan may miss is read by the next pass (run one right away: it
        also turns the restarted checkpoints into sequence numbers)."""
        started = datetime.now(UTC)
        stream_arn = self._reader.stream_arn()
        shards = self._reader.shards(stream_arn)
        totals = {"items": 0, "changed": 0}

        def project(page: list[AggregateImage]) -> None:
            totals["items"] += len(page)
            totals["changed"] += self._store.apply(page, stream_arn=stream_arn, positions=[])

        self._reader.scan_aggregates(segments, project)
        self._store.apply(
            [],
            stream_arn=stream_arn,
            positions=[ShardPosition(shard.shard_id) for shard in shards],
            replace_checkpoints=True,
            as_of=started,
        )
        return PassReport(0, totals["items"], totals["changed"], len(shards))

    def follow(self, interval: float, stopping: threading.Event) -> None:
        """Runs passes every `interval` seconds until `stopping` is set. A pass that fails
        for a transient reason is logged and retried; CheckpointLost propagates."""
        while not stopping.is_set():
            try:
                report = self.run_pass()
                if report.records_read:
                    log.info("pass", extra=report.__dict__)
            except CheckpointLost:
                raise
            except Exception:
                log.exception("pass failed; retrying")
            stopping.wait(interval)
