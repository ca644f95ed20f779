"""Search-space YAML: the shipped space, validation errors naming file/knob/value, constraints."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT
from tuner.space import load_space, parse_constraint
from tuner.space.loader import shipped_space, space_from_dict
from tuner.util.errors import ConfigError


def test_shipped_space_has_the_promised_knobs():
    space = load_space(ROOT / "search_spaces" / "hf-transformers.yaml")
    assert space.label == "hf-transformers@1"
    assert space.names == ["batch_size", "dtype", "quantization", "attn_implementation", "cache_implementation",
                           "compile", "shard_count"]
    assert space.knob("compile").choices == (False, True)
    assert space.size() == 7 * 3 * 4 * 2 * 2 * 2 * 4
    grid = list(space.grid())
    assert all(not config["compile"] or config["cache_implementation"] == "static" for config in grid)
    assert len(grid) < space.size()


def test_complete_fills_defaults_and_coerces_text():
    space = load_space(ROOT / "search_spaces" / "hf-transformers.yaml")
    config = space.complete({"batch_size": "8", "compile": "true", "cache_implementation": "static"})
    assert config["batch_size"] == 8 and config["compile"] is True and config["dtype"] == "float32"


@pytest.mark.parametrize(("partial", "fragment"), [
    ({"batch_size": 3}, "batch_size: value not allowed"),
    ({"dtype": "float8"}, "dtype: value not allowed"),
    ({"compile": "maybe"}, "compile: value not allowed"),
    ({"turbo": True}, "turbo: unknown knob"),
])
def test_bad_config_names_knob_and_value(partial, fragment):
    space = load_space(ROOT / "search_spaces" / "hf-transformers.yaml")
    with pytest.raises(ConfigError) as caught:
        space.complete(partial)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nknobs:\n  batch_size: {type: int, choices: [1, 2\n")
    with pytest.raises(ConfigError) as caught:
        load_space(bad)
    message = str(caught.value)
    assert str(bad) in message and "malformed YAML" in message and "line" in message


@pytest.mark.parametrize(("knobs", "fragment"), [
    ({"b": {"type": "float", "choices": [1.0]}}, "knobs.b.type: type must be one of"),
    ({"b": {"type": "int", "choices": [1, "two"]}}, "knobs.b.choices: every choice must be int (got 'two')"),
    ({"b": {"type": "int", "choices": [1, 2], "default": 4}}, "knobs.b.default: default is not one of the choices"),
    ({"b": {"type": "int", "choices": []}}, "knobs.b.choices: choices must be a non-empty list"),
    ({"b": {"type": "int", "choices": [1], "colour": "red"}}, "knobs.b.colour: unknown key"),
    ({"b": {"type": "int", "choices": [1, 2], "costly": [3]}}, "knobs.b.costly: costly lists some of the choices"),
    ({"b": {"type": "bool", "costly": ["yes"]}}, "knobs.b.costly: costly lists some of the choices"),
    ({"b": {"type": "int", "choices": [1, 2], "default": 1, "costly": [1]}},
     "knobs.b.costly: the default cannot be costly (got 1)"),
])
def test_space_validation_errors(knobs, fragment):
    with pytest.raises(ConfigError) as caught:
        space_from_dict({"id": "s", "knobs": knobs}, "space.yaml")
    assert str(caught.value).startswith("space.yaml: ")
    assert fragment in str(caught.value)


def test_the_shipped_space_marks_what_pays_a_setup_on_every_measurement():
    space = load_space(shipped_space("hf-transformers"))
    assert space.knob("compile").is_costly(True) and not space.knob("compile").is_costly(False)
    assert [value for value in space.knob("shard_count").choices if space.knob("shard_count").is_costly(value)] == [
        2, 4, 8]
    assert not space.knob("batch_size").costly


def test_constraint_naming_unknown_knob_is_rejected():
    with pytest.raises(ConfigError, match=r"constraints\[0\]: constraint names an unknown knob \(got 'warp'\)"):
        space_from_dict({"id": "s", "knobs": {"b": {"type": "bool"}}, "constraints": ["b requires warp == 1"]},
                        "space.yaml")


def test_constraint_syntax():
    rule = parse_constraint("compile and batch_size in [1, 2] requires cache_implementation != dynamic")
    assert rule.violated_by({"compile": True, "batch_size": 2, "cache_implementation": "dynamic"})
    assert not rule.violated_by({"compile": True, "batch_size": 4, "cache_implementation": "dynamic"})
    assert not rule.violated_by({"compile": True, "batch_size": 1, "cache_implementation": "static"})
    assert not rule.violated_by({"compile": False, "batch_size": 1, "cache_implementation": "dynamic"})
    negated = parse_constraint("not compile requires shard_count not in [4, 8]")
    assert negated.violated_by({"compile": False, "shard_count": 8})
    assert not negated.violated_by({"compile": True, "shard_count": 8})
    with pytest.raises(ValueError, match="requires"):
        parse_constraint("compile implies static")
    with pytest.raises(ValueError, match="cannot read condition"):
        parse_constraint("__import__('os') requires x == 1")
