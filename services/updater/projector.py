"""Updater passes: read the stream from the checkpoints, project into the read model; and
rebuilds, which replace the read model with a scan of the table."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from services.platform.settings import STREAM_DELIVERY_ALLOWANCE_SECONDS
from services.updater import metrics
from services.updater.positions import (
    CheckpointLost,
    gone_shards,
    pass_as_of,
    plan_reads,
    rebuild_position,
)
from services.updater.projection_store import ProjectionStore
from services.updater.stream_reader import StreamBatch, StreamReader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassReport:
    """What a pass or rebuild did: `items` counts the aggregate images it upserted (an item
    changed in two chunks of a pass counts twice), `shards` those it read."""

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
        *,
        delivery_allowance: timedelta = timedelta(seconds=STREAM_DELIVERY_ALLOWANCE_SECONDS),
    ) -> None:
        self._reader = reader
        self._store = store
        self._before_commit = before_commit
        self._delivery_allowance = delivery_allowance

    def run_pass(self) -> PassReport:
        """Reads every shard from its checkpoint to its current end and commits the newest
        images with the new checkpoints, a chunk of stream records at a time (a pass that
        fails keeps the chunks it committed). Once every shard is read, prunes the
        checkpoints of shards gone from the stream and stores as_of. Raises CheckpointLost
        when records were lost."""
        timer = time.perf_counter()
        try:
            report, as_of = self._pass()
        except CheckpointLost:
            metrics.pass_failed(checkpoint_lost=True)
            raise
        except Exception:
            metrics.pass_failed(checkpoint_lost=False)
            raise
        metrics.pass_completed(as_of, time.perf_counter() - timer, report.records_read)
        return report

    def _pass(self) -> tuple[PassReport, datetime]:
        # Before the shards are listed: the latest as_of the pass may claim (pass_as_of).
        listed_at = datetime.now(UTC)
        stream_arn = self._reader.stream_arn()
        shards = self._reader.shards(stream_arn)
        checkpoints = self._store.checkpoints()
        mine = checkpoints.get(stream_arn, {})
        plan = plan_reads(
            shards, mine, other_streams_checkpointed=any(arn != stream_arn for arn in checkpoints)
        )
        report, caught_up = PassReport(0, 0, 0, len(plan)), True
        batch = self._reader.read(stream_arn, plan)
        while batch.unread:
            report = self._commit(batch, report)
            caught_up = caught_up and batch.caught_up
            batch = self._reader.read(stream_arn, batch.unread)
        as_of = pass_as_of(
            listed_at,
            caught_up=caught_up and batch.caught_up,
            delivery_allowance=self._delivery_allowance,
            previous=self._store.as_of(),
        )
        report = self._commit(batch, report, gone_shards=gone_shards(shards, mine), as_of=as_of)
        return report, as_of

    def _commit(
        self,
        batch: StreamBatch,
        report: PassReport,
        *,
        gone_shards: list[str] | None = None,
        as_of: datetime | None = None,
    ) -> PassReport:
        """Commits one chunk of a pass (the last one with the spent checkpoints and as_of);
        returns `report` with the chunk counted in."""
        changed = self._store.apply(
            batch.images.values(),
            records=batch.records,
            stream_arn=batch.stream_arn,
            positions=batch.positions,
            gone_shards=gone_shards,
            as_of=as_of,
            before_commit=self._before_commit,
        )
        return replace(
            report,
            records_read=report.records_read + batch.records_read,
            items=report.items + len(batch.images),
            changed_buckets=report.changed_buckets + changed,
        )

    def rebuild(self, segments: int) -> PassReport:
        """Replaces the read model with a parallel scan of the table's aggregate and record
        items: rows ahead of the table (after a point-in-time restore) or missing from it
        are put right.
        The scan is staged first and swapped in by one transaction, so queries answer from
        the old read model until then. Its as_of is the instant before the scan began.

        The checkpoints restart at the shards listed before the scan (see
        positions.rebuild_position), so the next pass reads every change the scan may have
        missed; run one right away."""
        started = datetime.now(UTC)
        stream_arn = self._reader.stream_arn()
        positions = [
            rebuild_position(shard, self._reader.oldest_sequence_number(stream_arn, shard.shard_id))
            for shard in self._reader.shards(stream_arn)
        ]
        with self._store.staging() as staged:
            self._reader.scan_table(segments, staged.add, staged.add_records)
            changed = staged.replace_read_model(
                stream_arn=stream_arn,
                positions=positions,
                as_of=started,
                before_commit=self._before_commit,
            )
        return PassReport(0, staged.items, changed, len(positions))

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
