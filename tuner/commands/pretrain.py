"""``infertune pretrain``: train the tuning policy on the landscape library (design §14)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.commands.common import runs_folder, seed_value
from tuner.util.errors import ConfigError

if TYPE_CHECKING:
    from tuner.tracking.mlflow_sink import MlflowSink


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``pretrain`` subcommand's arguments, bound to its handler."""
    pretrain = commands.add_parser("pretrain", help="train the tuning policy on the landscape library (replayed, "
                                   "no inference)")
    pretrain.add_argument("--library", help="folder of landscapes: task .yaml + .jsonl (default: "
                          "envs/recordings/library)")
    pretrain.add_argument("--holdout", nargs="+", default=[], metavar="ID", help="landscapes to leave out")
    pretrain.add_argument("--timesteps", type=int, default=200_000, help="environment steps (default 200000)")
    pretrain.add_argument("--augment", type=float, default=0.0, metavar="SHARE",
                          help="share of episodes on perturbed copies of the landscapes (default 0)")
    pretrain.add_argument("--mirror-batch", type=float, default=0.0, metavar="SHARE",
                          help="share of the perturbed copies whose batch sizes are mirrored, smallest playing as "
                          "largest (default 0)")
    pretrain.add_argument("--seed", type=seed_value, default=0)
    pretrain.add_argument("--out", default="policies/default.zip", help="where to save the policy (.zip; its "
                          "canonical values and provenance go beside it as .json)")
    pretrain.add_argument("--no-progress", action="store_true", help="no progress bar")
    pretrain.add_argument("--no-mlflow", action="store_true", help="do not log the learning curve to MLflow")
    pretrain.set_defaults(handler=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pretrain MaskablePPO over replayed landscapes; save the policy, its learning curve and a plot."""
    from tuner.agents.policy_file import save_policy
    from tuner.learning.pretrain import pretrain
    from tuner.library.catalog import LIBRARY, load_library
    from tuner.results.plots import learning_curve_plot

    if args.timesteps <= 0:
        raise ConfigError("must be a positive number of steps", field="--timesteps", value=args.timesteps)
    for flag, share in (("--augment", args.augment), ("--mirror-batch", args.mirror_batch)):
        if not 0.0 <= share <= 1.0:
            raise ConfigError("must be a share between 0 and 1", field=flag, value=share)
    folder = Path(args.library) if args.library else LIBRARY
    landscapes = load_library(folder, args.holdout)
    if not landscapes:
        raise ConfigError("no landscape (a task .yaml with its .jsonl recording) in the library", source=str(folder))
    out = Path(args.out)
    print(f"pretraining on {len(landscapes)} landscapes ({', '.join(landscape.name for landscape in landscapes)})"
          f"{'; held out: ' + ', '.join(args.holdout) if args.holdout else ''}; {args.timesteps} steps", flush=True)
    sink = _mlflow(args, out, {"landscapes": len(landscapes), "holdout": ",".join(args.holdout),
                               "timesteps": args.timesteps, "augment": args.augment,
                               "mirror_batch": args.mirror_batch, "seed": args.seed})
    try:
        policy, curve = pretrain(landscapes, timesteps=args.timesteps, seed=args.seed, augment=args.augment,
                                 mirror_batch=args.mirror_batch,
                                 report=sink.log_training if sink else None, progress_bar=not args.no_progress)
    except BaseException:
        if sink is not None:
            sink.finish(None)  # the MLflow run ends (what was logged stays) even when training is stopped
        raise
    save_policy(policy, out)
    plot = out.with_name(f"{out.stem}-learning.png")
    learning_curve_plot(curve, plot, f"pretraining on {len(landscapes)} landscapes")
    out.with_name(f"{out.stem}-learning.json").write_text(json.dumps(curve))
    if sink is not None:
        sink.attach([out, out.with_suffix(".json"), plot])
        sink.finish(None)
    final = curve[-1][1] if curve else float("nan")
    print(f"policy: {out} ({policy.meta['seconds']:.0f} s; last rollout's mean final quality {final:.3f}); "
          f"learning curve: {plot}")
    return 0


def _mlflow(args: argparse.Namespace, out: Path, params: dict) -> MlflowSink | None:
    if args.no_mlflow:
        return None
    from tuner.tracking import resolve_tracking_uri
    from tuner.tracking.mlflow_sink import MlflowSink

    runs = runs_folder(args)
    sink = MlflowSink(resolve_tracking_uri(args.tracking_uri, runs), "infertune-pretrain",
                      artifact_root=runs / "mlartifacts")
    sink.start(out.stem, params, {"infertune.policy": str(out.resolve())})
    return sink
