"""The Optuna study's storage for many workers: heartbeats, a dead worker's trial retried once, a shared budget.

Every trial a worker runs sends a heartbeat; a trial whose heartbeat stops (its worker was killed) is failed
by the next worker that looks (``fail_stale_trials``) and re-queued once as a WAITING trial with the same
params (``RetryHeartbeatStaleTrialCallback(max_retry=1)``), which the next ``ask`` picks up. A study's
budget is its number of finished trials, however many workers share it (Optuna's MaxTrialsCallback).
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import warnings
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import TracebackType

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from tuner.util.redact import userinfo_url

HEARTBEAT_INTERVAL_S = 5
GRACE_HEARTBEATS = 4  # a trial is stale after four missed heartbeats: a busy database is not a dead worker
GRACE_PERIOD_S = GRACE_HEARTBEATS * HEARTBEAT_INTERVAL_S
MAX_RETRY = 1


def heartbeat_storage(url: str, heartbeat_interval_s: int = HEARTBEAT_INTERVAL_S,
                      grace_period_s: int = GRACE_PERIOD_S) -> RDBStorage:
    """An RDB storage (SQLite or PostgreSQL URL) with heartbeats and one retry of a stale trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(userinfo_url(url), heartbeat_interval=heartbeat_interval_s, grace_period=grace_period_s,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
                          engine_kwargs={"pool_pre_ping": True})


class Heartbeat:
    """Context manager: records the trial's heartbeat every interval until the measurement ends."""

    def __init__(self, storage: RDBStorage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial_id}")

    def _beat(self) -> None:
        interval = self.storage.get_heartbeat_interval() or HEARTBEAT_INTERVAL_S
        while True:
            # a database hiccup must not kill the measurement; the next beat retries
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(self.trial_id)
            if self._stop.wait(interval):
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()


def fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Fail a trial known to be dead (its run is being resumed) and queue its one retry, as a stale one is."""
    storage = study._storage
    try:
        if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # another worker already failed it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, storage.get_trial(trial._trial_id))


def fail_silent_trials(study: optuna.Study, grace_period_s: float) -> None:
    """Fail (and retry once) RUNNING trials whose worker died before it could claim them.

    A worker claims its trial right after ``ask`` (the ``run`` attribute and a first heartbeat). One killed
    in between leaves a RUNNING trial with no heartbeat, which Optuna's ``fail_stale_trials`` never fails,
    so every other worker would wait for it forever. Unclaimed after the grace period means dead.
    """
    cutoff = datetime.now() - timedelta(seconds=grace_period_s)  # Optuna stores naive local start times
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "run" not in trial.user_attrs and trial.datetime_start is not None and trial.datetime_start < cutoff:
            fail_and_retry(study, trial)


def ask_seed(seed: int, study: optuna.Study) -> int:
    """The sampler seed for the next ask: fixed by the study's history, so a resumed run asks what it would have.

    Failed trials do not count: a trial killed with its worker is retried with the same params, and the
    asks after it then see the same history as in a run that was never interrupted.
    """
    alive = sum(trial.state != TrialState.FAIL for trial in study.get_trials(deepcopy=False))
    return (seed * 1_000_003 + alive) % 2**32


SCHEMA_LOCK_NAME = "infertune: optuna schema"  # one lock per database, whatever the study


@contextlib.contextmanager
def database_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold a lock named ``name`` across processes and machines that share this database, for the block.

    PostgreSQL: a session advisory lock; SQLite: a lock file beside the database; other databases: none.
    """
    key = zlib.crc32(name.encode()) & 0x7FFFFFFF
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with open(f"{engine.url.database}.{key}.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
    else:
        yield


@contextlib.contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """Serialize the creation of Optuna's schema among workers that open one new database at the same moment.

    ``RDBStorage(url)`` creates the tables, types and version rows when they are missing, but not atomically:
    N workers started together on an empty PostgreSQL database each run ``CREATE TYPE``/``CREATE TABLE``, and
    all but one die on ``pg_type_typname_nsp_index``; on SQLite on ``table … already exists`` or the
    ``alembic_version`` row. Retrying after such an error would work too, but which error means "lost the race"
    differs per database and driver; a lock taken before Optuna touches the schema makes the creation happen
    exactly once, and the workers after the first find the schema in place. The lock lives in the database
    itself (PostgreSQL advisory lock) or beside it (SQLite lock file), so it holds across machines.
    """
    # a connection of its own, closed when the lock is released
    engine = create_engine(userinfo_url(url), poolclass=NullPool)
    try:
        with database_lock(engine, SCHEMA_LOCK_NAME):
            yield
    finally:
        engine.dispose()


def ask_lock(storage: RDBStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """Hold the study's lock across machines while a worker checks the budget and asks, so none overshoots it."""
    return database_lock(storage.engine, study_name)


def study_room(study: optuna.Study, budget: int) -> tuple[int, int, int]:
    """(finished, running, waiting) trials: a worker may ask while finished + running < budget or one waits."""
    counts = {TrialState.COMPLETE: 0, TrialState.RUNNING: 0, TrialState.WAITING: 0}
    for trial in study.get_trials(deepcopy=False, states=tuple(counts)):
        counts[trial.state] += 1
    return counts[TrialState.COMPLETE], counts[TrialState.RUNNING], counts[TrialState.WAITING]


def open_study(url: str, study_name: str, directions: list[str], sampler: optuna.samplers.BaseSampler | None,
               heartbeat_s: int) -> tuple[optuna.Study, RDBStorage]:
    """Create or join ``study_name`` at ``url`` (heartbeats on; the schema created once among workers started
    together); the study and its database storage. Raises what the driver raises for a bad URL or database."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats are recorded by our own thread around each measurement (ask/tell has none of its own).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat API
    with schema_lock(url):
        storage = heartbeat_storage(url, heartbeat_s, GRACE_HEARTBEATS * heartbeat_s)
        study = optuna.create_study(storage=storage, study_name=study_name, directions=directions, sampler=sampler,
                                    load_if_exists=True)
    return study, storage
