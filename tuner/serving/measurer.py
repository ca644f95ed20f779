"""The serving backend's Measurer: a config becomes a real server, warmed, loaded by GuideLLM, then scored."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.measure.fingerprint import fingerprint as machine_fingerprint
from tuner.measure.labels import labeled_share
from tuner.measure.protocol import error_payload
from tuner.records import Status, config_key
from tuner.serving import feasibility, loadgen
from tuner.serving.http import complete
from tuner.serving.load_metrics import combine, run_metrics
from tuner.serving.model_folder import model_folder
from tuner.serving.server import RunningServer, ServerFailed, free_port, start_server
from tuner.serving.token_agreement import token_agreement
from tuner.space import SearchSpace

PhaseSink = Callable[[dict[str, Any]], None] | None
SERVER_START_S = 300.0  # the most a server may take to load its model and answer /health


class _Failure(Exception):
    def __init__(self, status: Status, kind: str, message: str, log_tail: list[str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.log_tail = status, kind, log_tail or []


class ServingMeasurer:
    """Measures serving configs of one task on ``transformers serve --continuous-batching`` (design §15).

    The server of the last config stays up, so measuring the same engine settings again (a repeat, a resumed
    run) does not pay for a restart; any other config stops it first. Nothing outlives ``close()``.
    """

    def __init__(self, task: dict[str, Any], space: SearchSpace, work_dir: Path, device: str, models_root: Path,
                 continuous_batching: bool = True):
        self.task, self.space, self.device = task, space, device
        self.continuous_batching = continuous_batching  # False: the benchmark's one-generate-per-request baseline
        self.work_dir, self.models_root = Path(work_dir), Path(models_root)
        self.fingerprint = {**machine_fingerprint(device), "engine": "transformers-serve",
                            "guidellm": loadgen.version()}
        self.starts = 0
        self._server: RunningServer | None = None
        self._folder: Path | None = None
        self._tokenizer: Any = None
        self._prompts: list[str] | None = None
        self._reference_texts: list[str] | None = None
        self._reference_metrics: dict[str, Any] = {}  # the reference's task_accuracy, for min_ratio bounds
        self._task_accuracies: dict[str, float] = {}  # per engine settings: greedy answers do not change
        self._features: dict[str, Any] | None = None

    @property
    def pid(self) -> int | None:
        """The live server's pid, or None."""
        return self._server.process.pid if self._server is not None and self._server.alive() else None

    def runnable_values(self, space: SearchSpace) -> dict[str, list[Any]]:
        """Per knob, the values transformers serve can run here."""
        return feasibility.runnable_values(space, self.device)

    def close(self) -> None:
        """Stop the server (its whole process group)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    # --- requests -------------------------------------------------------------------------------------------

    def request(self, payload: dict[str, Any], timeout_s: float, on_phase: PhaseSink = None) -> dict[str, Any]:
        """``describe`` the task or ``measure`` one config; failures come back as replies, never raised."""
        deadline = time.perf_counter() + timeout_s
        try:
            if payload.get("op") == "describe":
                return {"status": Status.OK.value, "metrics": {}, "error": None, "info": {},
                        "features": self._describe()}
            return self._measure(payload["config"], deadline, on_phase)
        except _Failure as failure:
            return self._reply(failure.status, {}, error_payload(failure.kind, str(failure), log_tail=failure.log_tail))
        except ServerFailed as failure:
            self._server = None
            return self._reply(_oom_or(Status(failure.status), failure.log_tail), {},
                               error_payload("ServerFailed", str(failure), log_tail=failure.log_tail))
        except loadgen.LoadFailed as failure:
            tail = failure.log_tail + (["--- server log ---", *self._server.tail()] if self._server else [])
            self.close()  # a hung or failed load leaves the server in an unknown state
            return self._reply(Status(failure.status), {}, error_payload("LoadFailed", str(failure), log_tail=tail))

    def _reply(self, status: Status, metrics: dict[str, Any], error: dict[str, Any] | None,
               info: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"status": status.value, "metrics": metrics, "error": error, "info": info or {},
                "features": self._features}

    def _measure(self, config: dict[str, Any], deadline: float, on_phase: PhaseSink) -> dict[str, Any]:
        reason = feasibility.infeasible_reason(config, self.device)
        if reason is not None:
            return self._reply(Status.INFEASIBLE, {}, error_payload("Infeasible", reason))
        if not loadgen.available():
            raise _Failure(Status.ERROR, "MissingDependency",
                           "GuideLLM is not installed: pip install 'infertune[serving]'")
        workload = self.task["workload"]
        self._features = self._features or self._describe()
        reference = self._reference(deadline, on_phase)
        server = self._serve(config, deadline, on_phase)
        _phase(on_phase, "warming up the server", requests=workload["warmup_requests"])
        warmup_started = time.perf_counter()
        for index in range(workload["warmup_requests"]):
            self._complete(server, self._prompts[index % len(self._prompts)], workload["new_tokens"], deadline)
        warmup_s = time.perf_counter() - warmup_started
        _phase(on_phase, "accuracy: greedy completions of the eval prompts")
        texts = self._eval_texts(server, deadline)
        task_accuracy = self._task_accuracy(server, deadline, on_phase)
        runs = []
        for repeat in range(1, workload["repeats"] + 1):
            _phase(on_phase, f"load run {repeat} of {workload['repeats']}", load=self._load())
            run = loadgen.run_load(server.base_url, str(self._folder), self._prompts, self._load(),
                                   self.work_dir / "load", _left(deadline), seed=self.task["seed"])
            if not server.alive():
                raise _Failure(Status.CRASH, "ServerDied", "the server died during the load run", server.tail())
            runs.append(run_metrics(run, workload["slo"]))
        metrics, agree, spread = combine(runs)
        failed = metrics.pop("failed_requests") or 0
        metrics.pop("load_s", None)  # per run, in info
        if all(run["requests_per_s"] in (None, 0) for run in runs):
            raise _Failure(Status.ERROR, "NoCompletedRequest", "no request of the load completed", server.tail())
        metrics.update(token_agree=token_agreement(self._tokenizer, texts, reference), warmup_s=warmup_s,
                       server_start_s=server.started_s, repeats=len(runs), cv=spread)
        if task_accuracy is not None:
            metrics["task_accuracy"] = task_accuracy
        info = {"load": self._load(), "slo": workload["slo"], "runs": runs, "failed_requests": failed,
                "server": server.extra.get("argv"), "engine_gaps": server.extra.get("gaps", []),
                **({"reference_metrics": self._reference_metrics} if self._reference_metrics else {})}
        return self._reply(Status.OK if agree else Status.UNSTABLE, metrics, None, info)

    # --- the pieces ----------------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        workload = self.task["workload"]
        shape = {"rate": workload["rate"]} if workload["arrival"] != "concurrent" else \
            {"concurrency": workload["concurrency"]}
        return {"process": workload["arrival"], **shape, "num_requests": workload["num_requests"],
                "max_tokens": workload["new_tokens"]}

    def _prepare(self) -> None:
        """The model folder, its tokenizer and the prompts as sent (chat template applied, cut to length), once."""
        if self._prompts is not None:
            return
        from transformers import AutoTokenizer

        self._folder = model_folder(self.task["model"], self.task["seed"], self.models_root).resolve()
        self._tokenizer = AutoTokenizer.from_pretrained(self._folder)
        workload = self.task["workload"]
        self._prompts = [self._render(prompt, workload["max_prompt_tokens"], workload["chat_template"])
                         for prompt in workload["prompts"]]

    def _render(self, prompt: str, max_tokens: int | None, chat: bool) -> str:
        ids = self._tokenizer.encode(prompt, add_special_tokens=False)[:max_tokens]
        text = self._tokenizer.decode(ids)
        if chat and getattr(self._tokenizer, "chat_template", None):
            text = self._tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                       add_generation_prompt=True)
        return text

    def _describe(self) -> dict[str, Any]:
        from transformers import AutoConfig

        from tuner.measure.backends.hf_features import hardware_features, model_features, workload_features

        self._prepare()
        config = AutoConfig.from_pretrained(self._folder)
        parameters = _parameter_count(self._folder)
        prompt_tokens = max(len(self._tokenizer.encode(prompt, add_special_tokens=False)) for prompt in self._prompts)
        return {"model": model_features(config, parameters), "hardware": hardware_features(self.device),
                "workload": {**workload_features(self.task["workload"], prompt_tokens), "mode": "serving",
                             **{key: value for key, value in self._load().items() if key != "num_requests"}}}

    def _serve(self, config: dict[str, Any], deadline: float, on_phase: PhaseSink) -> RunningServer:
        """The server for ``config``: the one already up if it runs the same engine settings, else a new one."""
        self._prepare()
        identity = config_key(config)
        if self._server is not None and self._server.identity == identity and self._server.alive():
            return self._server
        self.close()
        from tuner.serving.flags import transformers_cb_fields

        fields, gaps = transformers_cb_fields(config)
        _phase(on_phase, "starting the server (loading the model)", config=config)
        for attempt in range(2):  # a port taken between choosing it and binding it: once more on another
            port = free_port()
            argv = [sys.executable, "-m", "tuner.serving.hf_server", "--model", str(self._folder), "--port",
                    str(port), "--device", self.device, "--dtype", config.get("dtype", "float32"),
                    "--cb-fields", json.dumps(fields), "--seed", str(self.task["seed"])]
            if not self.continuous_batching:
                argv.append("--no-continuous-batching")
            try:
                server = start_server(argv, port=port, log_path=self.work_dir / "server.log",
                                      timeout_s=min(SERVER_START_S, _left(deadline)), identity=identity)
                break
            except ServerFailed as failure:
                if attempt == 0 and any("address already in use" in line.lower() for line in failure.log_tail):
                    continue
                raise
        self.starts += 1
        server.extra.update(argv=argv, gaps=gaps)
        self._server = server
        return server

    def _complete(self, server: RunningServer, prompt: str, max_tokens: int, deadline: float) -> str:
        try:
            return complete(server.base_url, str(self._folder), prompt, max_tokens, _left(deadline))
        except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
            tail = server.tail()
            status = Status.TIMEOUT if "timed out" in str(error) else Status.CRASH if not server.alive() \
                else Status.ERROR
            raise _Failure(_oom_or(status, tail), "RequestFailed", f"a completion request failed: {error}",
                           tail) from None

    def _eval_texts(self, server: RunningServer, deadline: float) -> list[str]:
        accuracy = self.task["accuracy"]
        prompts = [self._render(prompt, self.task["workload"]["max_prompt_tokens"],
                                self.task["workload"]["chat_template"]) for prompt in accuracy["eval_prompts"]]
        return [self._complete(server, prompt, accuracy["new_tokens"], deadline) for prompt in prompts]

    def _task_accuracy(self, server: RunningServer, deadline: float, on_phase: PhaseSink) -> float | None:
        """The share of the labeled set this server answers right (greedy, parsed, exact-matched); None without one.

        Prompts are sent whole, as the static backend sends them: a cut question would score another question.
        """
        labeled = self.task["accuracy"].get("labeled")
        if not labeled:
            return None
        if server.identity not in self._task_accuracies:  # the reference's own config is scored once
            _phase(on_phase, f"scoring task accuracy ({len(labeled['items'])} labeled questions)")
            chat = self.task["workload"]["chat_template"]
            answers = [self._complete(server, self._render(item["prompt"], None, chat), labeled["new_tokens"],
                                      deadline) for item in labeled["items"]]
            self._task_accuracies[server.identity] = labeled_share(answers, labeled["items"])
        return self._task_accuracies[server.identity]

    def _reference(self, deadline: float, on_phase: PhaseSink) -> list[str]:
        """The reference config's greedy completions of the eval prompts, and its task accuracy (its own server,
        once per measurer)."""
        if self._reference_texts is None:
            reference = self.space.complete({key: value for key, value in self.task["accuracy"]["reference"].items()
                                             if key in self.space.names})
            _phase(on_phase, "reference answers (the reference config's server)")
            server = self._serve(reference, deadline, on_phase)
            self._reference_texts = self._eval_texts(server, deadline)
            task_accuracy = self._task_accuracy(server, deadline, on_phase)
            self._reference_metrics = {} if task_accuracy is None else {"task_accuracy": task_accuracy}
        return self._reference_texts


def _oom_or(status: Status, log_tail: list[str]) -> Status:
    """``oom`` when the server's log says it ran out of memory (on an H200, async batching beside a KV cache of 90%
    of free memory did: the engine never started and every request got a 503), else ``status``."""
    return Status.OOM if any("out of memory" in line.lower() for line in log_tail) else status


def _phase(sink: PhaseSink, phase: str, **details: Any) -> None:
    if sink is not None:
        sink({"event": "phase", "phase": phase, "since": time.time(), **details})


def _left(deadline: float) -> float:
    """Seconds left before the measurement's deadline (a timeout when none are)."""
    left = deadline - time.perf_counter()
    if left <= 0:
        raise _Failure(Status.TIMEOUT, "Timeout", "the measurement ran past the task's timeout_s")
    return left


def _parameter_count(folder: Path) -> int:
    """Parameters in a saved checkpoint, from its safetensors headers (no weights read)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, "pt") as weights:
            for name in weights.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                size = 1
                for length in weights.get_slice(name).get_shape():
                    size *= length
                total += size
    return total
