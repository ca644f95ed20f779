"""Read search spaces from YAML, with one-line errors naming the file, the field and the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tuner.space.constraints import parse_constraint
from tuner.space.knobs import KNOB_TYPES, Knob
from tuner.space.search_space import SearchSpace
from tuner.util.errors import ConfigError
from tuner.util.text_file import read_text


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML itself lets the last one win, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[type, Any]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *base`` merges; a list or mapping as a key is refused by SafeLoader itself
            key = self.construct_object(key_node, deep=deep)
            if (type(key), key) in seen:  # by type too: YAML's 1 and true are different keys
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add((type(key), key))
        return super().construct_mapping(node, deep=deep)



def read_yaml(path: Path) -> Any:
    """Parse a YAML file safely; ConfigError with the line when it is malformed or missing."""
    if not path.is_file():
        raise ConfigError("file not found", source=str(path))
    try:
        return yaml.load(read_text(path), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "yaml"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"malformed YAML: {problem}", source=str(path), field=where) from None


def _knob(name: str, spec: Any, source: str) -> Knob:
    field = f"knobs.{name}"
    if not isinstance(spec, dict):
        raise ConfigError("a knob is a mapping with type, choices, default", source=source, field=field, value=spec)
    unknown = set(spec) - {"type", "choices", "default", "doc", "costly"}
    if unknown:
        raise ConfigError("unknown key", source=source, field=f"{field}.{sorted(unknown)[0]}")
    kind = spec.get("type")
    if kind not in KNOB_TYPES:
        raise ConfigError(f"type must be one of {', '.join(KNOB_TYPES)}", source=source, field=f"{field}.type",
                          value=kind)
    choices = [False, True] if kind == "bool" and "choices" not in spec else spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ConfigError("choices must be a non-empty list", source=source, field=f"{field}.choices", value=choices)
    expected = {"int": int, "bool": bool, "categorical": str}[kind]
    for choice in choices:
        if type(choice) is not expected:
            raise ConfigError(f"every choice must be {expected.__name__}", source=source, field=f"{field}.choices",
                              value=choice)
    if len(set(choices)) != len(choices):
        raise ConfigError("choices repeat", source=source, field=f"{field}.choices", value=choices)
    default = spec.get("default", choices[0])
    if default not in choices or type(default) is not expected:
        raise ConfigError("default is not one of the choices", source=source, field=f"{field}.default",
                          value=default)
    costly = spec.get("costly", [])
    if not isinstance(costly, list) or any(value not in choices or type(value) is not expected for value in costly):
        raise ConfigError("costly lists some of the choices", source=source, field=f"{field}.costly", value=costly)
    if default in costly:  # a cheap twin of every config sets the costly knobs to their defaults
        raise ConfigError("the default cannot be costly", source=source, field=f"{field}.costly", value=default)
    return Knob(name, kind, tuple(choices), default, str(spec.get("doc", "")), tuple(costly))


def space_from_dict(data: Any, source: str) -> SearchSpace:
    """Build a SearchSpace from parsed YAML, validating every field."""
    if not isinstance(data, dict):
        raise ConfigError("a search space is a mapping with id, version, knobs", source=source)
    unknown = set(data) - {"id", "version", "knobs", "constraints"}
    if unknown:
        raise ConfigError("unknown key", source=source, field=sorted(unknown)[0])
    space_id = data.get("id")
    if not isinstance(space_id, str) or not space_id:
        raise ConfigError("id must be a non-empty string", source=source, field="id", value=space_id)
    version = data.get("version", 1)
    if type(version) is not int:
        raise ConfigError("version must be an integer", source=source, field="version", value=version)
    knobs_spec = data.get("knobs")
    if not isinstance(knobs_spec, dict) or not knobs_spec:
        raise ConfigError("knobs must be a non-empty mapping", source=source, field="knobs")
    knobs = tuple(_knob(str(name), spec, source) for name, spec in knobs_spec.items())
    constraints = []
    for position, text in enumerate(data.get("constraints") or []):
        field = f"constraints[{position}]"
        try:
            constraint = parse_constraint(str(text))
        except ValueError as error:
            raise ConfigError(str(error), source=source, field=field) from None
        names = {knob.name for knob in knobs}
        for name in sorted(constraint.knobs - names):
            raise ConfigError("constraint names an unknown knob", source=source, field=field, value=name)
        constraints.append(constraint)
    return SearchSpace(space_id, version, knobs, tuple(constraints), source)


def load_space(path: str | Path) -> SearchSpace:
    """Load and validate a search-space YAML file."""
    path = Path(path)
    return space_from_dict(read_yaml(path), str(path))


SHIPPED_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"  # the repository's, beside the package


def shipped_space(name: str) -> Path:
    """The file of a space shipped with infertune (``search_spaces/<id>.yaml`` of the repository)."""
    return SHIPPED_SPACES / f"{name}.yaml"


def find_space(name: str, task_file: Path | None = None) -> Path:
    """Resolve a space given as a path or an id: ``search_spaces/<id>.yaml`` beside the task's folder, in the cwd,
    or shipped with infertune."""
    near = task_file.parent if task_file else None
    direct = Path(name)
    if direct.suffix in (".yaml", ".yml"):
        candidates = [direct] if direct.is_absolute() or near is None else [near / direct, direct]
    else:
        roots = ([near.parent / "search_spaces", near / "search_spaces"] if near else []) + [Path("search_spaces"),
                                                                                      SHIPPED_SPACES]
        candidates = [root / f"{name}.yaml" for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError("search space not found", source=str(task_file) if task_file else None, field="search_space",
                      value=name)
