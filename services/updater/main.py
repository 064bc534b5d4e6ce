"""Entry point of `wallet update`: one pass, --follow, or --rebuild, under the updater lock."""

import logging
import signal
import sys
import threading
from datetime import timedelta

from services.ledger.adapters.database import create_database_engine
from services.ledger.adapters.read_store import read_model_as_of
from services.ledger.adapters.write_store import dynamodb_client
from services.platform.metrics import serve_metrics
from services.platform.settings import ReconcileSettings, UpdaterSettings
from services.updater import metrics
from services.updater.positions import CheckpointLost
from services.updater.projection_store import ProjectionStore
from services.updater.projector import Projector
from services.updater.reconcile import reconcile
from services.updater.stream_reader import StreamReader, streams_client

log = logging.getLogger(__name__)

EXIT_CANNOT_LISTEN = 2  # as `wallet serve` exits when its port is taken
EXIT_CHECKPOINT_LOST = 3
# A rebuild is asked for because the read model is wrong: not doing it is no success.
EXIT_REBUILD_LOCKED_OUT = 4

# The JSON line a run logs once its pass has committed: terraform/alarms.tf counts these
# lines and reads the field from them, so a run that fails, hangs or never starts (or only
# finds another updater's lock taken) leaves a gap that raises an alarm.
PASS_COMPLETED_MESSAGE = "updater pass completed"  # noqa: S105 (an updater pass, not a password)
READ_MODEL_AGE_FIELD = "read_model_age_seconds"


def run_updater(
    settings: UpdaterSettings, database_url: str, *, follow: bool, rebuild: bool, segments: int
) -> int:
    engine = create_database_engine(database_url, pool_size=2, iam_auth=settings.database_iam_auth)
    store = ProjectionStore(engine)
    reader = StreamReader(dynamodb_client(), streams_client(), settings.table_name)
    projector = Projector(
        reader,
        store,
        delivery_allowance=timedelta(seconds=settings.stream_delivery_allowance_seconds),
    )
    with store.exclusive() as locked:
        if not locked and rebuild:
            print(
                "another updater is running; nothing was rebuilt: stop it, then run "
                "`wallet update --rebuild` again",
                file=sys.stderr,
            )
            return EXIT_REBUILD_LOCKED_OUT
        if not locked:  # a scheduled pass overlapping a running one: that one does the work
            print("another updater is running; nothing to do", file=sys.stderr)
            return 0
        try:
            if rebuild:
                scanned = projector.rebuild(segments)
                print(f"rebuilt from {scanned.items} aggregate items of the table")
                report = projector.run_pass()
            elif follow:
                # Only a lasting updater is worth scraping; a single pass is over before that.
                # Its lag starts as old as the read model, not at this process's start.
                with engine.connect() as connection:
                    metrics.start_lag_from(read_model_as_of(connection))
                try:
                    serve_metrics(settings.listen_host, settings.updater_metrics_port)
                except OSError as error:
                    print(f"wallet update: {error}", file=sys.stderr)
                    return EXIT_CANNOT_LISTEN
                stopping = threading.Event()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, lambda *_: stopping.set())
                projector.follow(settings.updater_interval_seconds, stopping)
                return 0
            else:
                report = projector.run_pass()
        except CheckpointLost as error:
            print(f"wallet update: {error}", file=sys.stderr)
            return EXIT_CHECKPOINT_LOST
    print(
        f"read {report.records_read} stream records from {report.shards} shards; "
        f"projected {report.items} aggregate items, {report.changed_buckets} buckets changed"
    )
    age = round(metrics.read_model_age_seconds(), 3)
    log.info(PASS_COMPLETED_MESSAGE, extra={**report.__dict__, READ_MODEL_AGE_FIELD: age})
    return 0


def run_reconcile(settings: ReconcileSettings, database_url: str, *, check_records: bool) -> int:
    """Prints every difference; exit 1 when there is any."""
    report = reconcile(
        dynamodb_client(),
        settings.table_name,
        create_database_engine(database_url, pool_size=1, iam_auth=settings.database_iam_auth),
        check_records=check_records,
    )
    for difference in report.differences:
        print(difference)
    checked = f"{report.aggregates} aggregate items"
    if check_records:
        checked += f" and {report.records} records"
    verdict = f"{len(report.differences)} differences" if report.differences else "no difference"
    print(f"reconciled the read model with {checked}: {verdict}")
    return 1 if report.differences else 0
