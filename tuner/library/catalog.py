"""The landscape library: every recorded landscape shipped in ``envs/recordings/library`` (design §14)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tuner.library.landscape import Landscape, load_landscape
from tuner.util.errors import ConfigError

LIBRARY = Path(__file__).resolve().parents[2] / "envs" / "recordings" / "library"


def load_library(folder: Path = LIBRARY, holdout: Sequence[str] = ()) -> list[Landscape]:
    """Every landscape in ``folder`` (a task ``.yaml`` with its ``.jsonl`` recording), except those held out.

    A held-out name must be in the library: a typo would otherwise train on the landscape it meant to hide.
    """
    landscapes = [load_landscape(path) for path in sorted(Path(folder).glob("*.yaml"))
                  if path.with_suffix(".jsonl").is_file()]
    names = {landscape.name for landscape in landscapes}
    for name in holdout:
        if name not in names:
            raise ConfigError(f"no such landscape in the library; it has {', '.join(sorted(names))}",
                              source=str(folder), field="--holdout", value=name)
    kept = [landscape for landscape in landscapes if landscape.name not in set(holdout)]
    if holdout and not kept:
        raise ConfigError("no landscape left to learn from", source=str(folder), field="--holdout",
                          value=list(holdout))
    return kept
