"""Knobs, constraints and the SearchSpace: the one source for gym action spaces and Optuna distributions."""

from tuner.space.constraints import Constraint, parse_constraint
from tuner.space.knobs import Knob
from tuner.space.loader import find_space, load_space
from tuner.space.search_space import SearchSpace

__all__ = ["Constraint", "Knob", "SearchSpace", "find_space", "load_space", "parse_constraint"]
