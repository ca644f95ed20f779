"""The Evaluator, the seam every agent shares: validate → cache → worker → score → record."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tuner.measure.backends.model_store import models_dir
from tuner.measure.backends.replay import ReplayMeasurer
from tuner.measure.cache import MEASUREMENT_VERSION, MeasurementCache, cache_key
from tuner.measure.contention import ForeignLoad, QuietRule
from tuner.measure.early_stop import StopRule
from tuner.measure.faults import after_record
from tuner.measure.fingerprint import resolve_device
from tuner.measure.launcher import WorkerClient
from tuner.measure.measurer import Measurer
from tuner.measure.protocol import error_payload
from tuner.measure.worker_caches import worker_cache_env
from tuner.objective import score, score_row
from tuner.records import Record, Status, append_record, read_records
from tuner.task import TaskSpec
from tuner.util.numbers import is_number

CACHEABLE = {status.value for status in Status if status.cacheable}
SCORED = {status.value for status in Status if status.scored}  # figures a disturbance could have bent


class MeasurementObserver(Protocol):
    """Who watches a measurement as it runs (the live progress line)."""

    def begin(self, trial: int, config: dict[str, Any]) -> None: ...

    def phase(self, event: dict[str, Any]) -> None: ...

    def end(self) -> None: ...


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Evaluator:
    """Measures configs of one task into one run folder; the only place measurements happen."""

    def __init__(self, task: TaskSpec, run_dir: Path, *, agent: str = "measure", use_cache: bool = True,
                 cache_dir: Path | None = None, echo_worker: bool = False, worker_env: dict[str, str] | None = None,
                 observer: MeasurementObserver | None = None, prune_below: float | None = None,
                 quiet: QuietRule | None = None, compile_cache: bool = False):
        """``prune_below``: stop a measurement early (status ``pruned``) when it breaks an accuracy or latency bound,
        or when after a pass it cannot reach this fraction of the run's best throughput (0: bounds only; a search
        passes ``early_stop.PRUNE_BELOW``); None: never stop early, every config is measured whole (``measure``,
        ``record``: figures asked for, not a race). ``quiet``: measure a config again, once the machine is quiet,
        when other processes disturbed its measurement (the disturbed figures stay in the record's
        ``info.disturbed_attempts``; ``record`` has its own, stricter loop). ``compile_cache``: a compiled config
        may reuse a graph compiled before, in this run or an earlier one (a search; ``warmup_s`` is then what
        this measurement paid, ``info.compile_cache_hits`` says how much was reused); off, each compile is cold."""
        self.task = task
        self.prune_below = prune_below
        self.quiet = quiet
        self.observer = observer  # told when a measurement starts, each phase it enters, and when it ends
        self.run_dir = Path(run_dir)
        self.agent = agent
        self.use_cache = use_cache
        self.cache = MeasurementCache(cache_dir or self.run_dir.parent / "cache")
        self.records_path = self.run_dir / "records.jsonl"
        earlier = read_records(self.records_path)
        self.trial = len(earlier)
        self.incumbent: float | None = None  # the best tokens_per_s of a rankable record so far: early stop's bar
        for record in earlier:
            self._note_incumbent(record)
        self.measurements = 0  # backend calls (the budget's unit): neither cache hits nor constraint rejections
        caches = worker_cache_env(self.cache.folder, compile_cache, stores=use_cache)
        self.measurer: Measurer = _open_measurer(task, self.run_dir, {**caches, **(worker_env or {})}, echo_worker)
        self.fingerprint = self.measurer.fingerprint
        self.features: dict[str, Any] | None = None  # the task's features, from the measurer's latest reply
        self._described = False
        self._worker_spec = task.worker_spec()  # built once: it carries every prompt
        # Everything the measurer is told (seed, device, workload, accuracy spec, ...) is in the key, so a field
        # added to the spec joins the key by itself; the model by identity, not by where its file lies.
        self._key_base = {**self._worker_spec, "model": task.model_identity, "backend": task.backend,
                          "fingerprint": self.fingerprint, "measurement_version": MEASUREMENT_VERSION}
        if compile_cache and task.backend == "hf":  # its warmup_s may be a reused compile, not a cold one
            self._key_base["compile_cache"] = True

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the measurer (no process is left behind)."""
        self.measurer.close()

    def runnable_values(self) -> dict[str, list[Any]]:
        """Per knob, the values that can run here at all (a recording: the values it holds)."""
        return self.measurer.runnable_values(self.task.space)

    def describe(self) -> dict[str, Any] | None:
        """The task's features (model, hardware, workload; design §14), asking the measurer once if needed."""
        if self.features is None and not self._described:
            self._described = True  # once: a worker that cannot describe the task is not restarted for it again
            reply = self.measurer.request({"op": "describe", "task": self._worker_spec}, timeout_s=self.task.timeout_s)
            self.features = reply.get("features")
        return self.features

    def key(self, config: Mapping[str, Any]) -> str:
        """Cache key: task, model identity and seed, device, workload, accuracy spec, config, fingerprint, version."""
        return cache_key({**self._key_base, "config": dict(config)})

    def lookup(self, config: Mapping[str, Any], key: str | None = None) -> dict[str, Any] | None:
        """The cached record of a complete ``config`` measured under these same settings, or None.

        ``key``: the config's key when the caller already has it (hashing the spec and its prompts once).
        """
        stored = self.cache.get(key or self.key(config))
        # an entry whose status may not be served (e.g. written by an older version) is a miss
        return stored if stored is not None and stored.get("status") in CACHEABLE else None

    def evaluate(self, config: Mapping[str, Any], *, fault: str | None = None,
                 tags: dict[str, Any] | None = None, fresh: bool = False) -> Record:
        """Measure one config (or fetch it from the cache) and append its record; raises ConfigError on bad input.

        ``tags`` land in the record's ``info`` (e.g. the Optuna study and trial a distributed worker ran);
        ``fresh``: measure even when the cache holds the config (confirming a winner), and cache the new result.
        """
        full = self.task.space.complete(config)
        started, clock = _now(), time.perf_counter()
        key = self.key(full)
        violated = self.task.space.violations(full)
        if violated:
            reply = {"status": Status.INFEASIBLE.value, "metrics": {}, "info": {},
                     "error": error_payload("ConstraintViolated", f"violates: {'; '.join(violated)}")}
        elif self.use_cache and fault is None and not fresh and (hit := self.lookup(full, key)) is not None:
            cached = self._from_cache(hit, started)
            self.features = cached.features or self.features
            cached.features = self.features  # an entry cached before records carried features gets the task's
            cached.info = {**cached.info, **(tags or {})}
            return self._write(cached)
        else:
            payload = {"op": "measure", "task": self._worker_spec, "config": full, "fault": fault,
                       "stop": self._stop_rule()}
            reply = self._measure_watching_the_machine(payload, full)
            self.measurements += 1
            self.features = reply.get("features") or self.features
        status = Status(reply["status"])
        value, feasible = score_row(self.task.objective, reply)
        record = Record(run=self.run_dir.name, task=self.task.id, space=self.task.space.label, trial=self.trial,
                        agent=self.agent, config=full, status=status.value, error=reply["error"],
                        metrics=reply["metrics"], objective=value, feasible=feasible, cached=False,
                        fingerprint=self.fingerprint, started_at=started,
                        duration_s=time.perf_counter() - clock, info=reply.get("info", {}),
                        features=self.features)
        if status.cacheable and not violated and fault is None and not record.info.get("disturbed"):
            self.cache.put(key, record.to_dict())
        record.info = {**record.info, **(tags or {})}  # after caching: tags belong to this run, not the config
        return self._write(record)

    def _stop_rule(self) -> dict[str, Any] | None:
        """When the measurement may stop early (sent with the request), or None."""
        if self.prune_below is None:
            return None
        return StopRule.for_objective(self.task.objective, self.incumbent, self.prune_below).to_payload()

    def _note_incumbent(self, record: Record) -> None:
        throughput = record.metrics.get("tokens_per_s")
        if record.status == Status.OK and record.feasible and is_number(throughput):
            self.incumbent = max(self.incumbent or 0.0, float(throughput))

    def measuring_groups(self) -> list[int]:
        """The process groups measuring for this evaluator: the live worker's (it leads its group, ranks included)."""
        pid = self.measurer.pid
        return [pid] if pid else []

    def _measure_watching_the_machine(self, payload: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        """A live measurement; a worker's reply also says how many CPU cores other processes used meanwhile."""
        if not isinstance(self.measurer, WorkerClient):  # a server and its load generator are not one group
            return self._measure(payload, config)
        reply = self._measure_once_watched(payload, config)
        disturbed: list[dict[str, Any]] = []
        while (self.quiet is not None and self.quiet.disturbed(reply["info"]["foreign_cpu_cores"])
               and reply["status"] in SCORED and len(disturbed) < self.quiet.retries):
            # The noise is the machine's, not the config's: keep what was measured, wait for quiet, measure again.
            disturbed.append({key: reply.get(key) for key in ("status", "metrics", "info")})
            self.quiet.wait_for_quiet(self.measuring_groups)
            reply = self._measure_once_watched(payload, config)
        if disturbed:
            reply["info"]["disturbed_attempts"] = disturbed
            reply["info"]["disturbed"] = self.quiet.disturbed(reply["info"]["foreign_cpu_cores"])
        return reply

    def _measure_once_watched(self, payload: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        load = ForeignLoad(self.measuring_groups).start()
        reply = self._measure(payload, config)
        foreign = load.stop()
        reply["info"] = {**(reply.get("info") or {}),
                         "foreign_cpu_cores": None if foreign is None else round(foreign, 3)}
        return reply

    def _measure(self, payload: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        """One request to the measurer, with the observer told where it is."""
        if self.observer is None:
            return self.measurer.request(payload, timeout_s=self.task.timeout_s)
        self.observer.begin(self.trial, config)
        try:
            return self.measurer.request(payload, timeout_s=self.task.timeout_s, on_phase=self.observer.phase)
        finally:
            self.observer.end()

    def _from_cache(self, stored: dict[str, Any], started: str) -> Record:
        record = Record.from_dict(copy.deepcopy(stored))
        record.run, record.trial, record.agent = self.run_dir.name, self.trial, self.agent
        record.cached, record.started_at, record.duration_s = True, started, 0.0
        record.objective, record.feasible = score(self.task.objective, record.status, record.metrics,
                                                  record.info.get("reference_metrics"))
        return record

    def _write(self, record: Record) -> Record:
        self._note_incumbent(record)
        append_record(self.records_path, record)
        self.trial += 1
        after_record(self.trial)
        return record


def may_reuse_compiles(task: TaskSpec) -> bool:
    """A search reuses compiled graphs, unless the objective ranks or bounds ``warmup_s`` (then it is cold)."""
    objective = task.objective
    return "warmup_s" not in {objective.metric, *(bound.metric for bound in objective.bounds)}


def _open_measurer(task: TaskSpec, run_dir: Path, worker_env: dict[str, str] | None, echo: bool) -> Measurer:
    """The measurer that ``task.backend`` names."""
    if task.backend == "replay":
        return ReplayMeasurer(task.recording, task.space)
    if task.backend == "serving":
        from tuner.serving.measurer import ServingMeasurer

        return ServingMeasurer(task.worker_spec(), task.space, run_dir / "serving", resolve_device(task.device),
                               models_dir(run_dir.parent))
    env = {"INFERTUNE_MODELS_DIR": str(models_dir(run_dir.parent)), **(worker_env or {})}
    return WorkerClient(env=env, echo=echo, device=resolve_device(task.device))
