"""Soak: 500 replay trials (Optuna) and 50 tiny-model trials in one tuner process.

Target (issue #6): the tuner's resident memory stays within ±10% of its level after warm-up (trial 50 of
the replay phase), and no measurement worker process is left behind. Prints the figures, saves soak.json
and soak.png (RSS per trial) under runs/benchmarks/soak-<time>/.

    python benchmarks/soak.py [--replay-trials 500] [--tiny-trials 50]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

from tuner.agents import make_agent
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.session import TuningSession
from tuner.measure.memory import peak_rss_mb
from tuner.task import load_task

WARMUP_TRIALS = 50  # imports, caches and the study's first pages settle before the baseline is taken
CHEAP_TINY_CONFIGS = [  # no compile: the soak is about the tuner, not about compiling graphs
    {"batch_size": batch, "dtype": dtype, "attn_implementation": attention, "cache_implementation": cache}
    for batch, dtype, attention, cache in itertools.product((1, 2, 4), ("float32", "bfloat16"), ("eager", "sdpa"),
                                                            ("dynamic", "static"))]


def rss_mb() -> float:
    """Resident memory of this process now (not the peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return peak_rss_mb()


def worker_processes() -> set[int]:
    """PIDs of live measurement workers started from this process."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"tuner.measure.worker" in command and int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(entry))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replay-trials", type=int, default=500)
    parser.add_argument("--tiny-trials", type=int, default=50)
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args()

    out = Path(args.runs_dir) / "benchmarks" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    samples: list[tuple[str, int, float]] = []  # (phase, trial, RSS MiB)
    started = time.perf_counter()

    replay = load_task("envs/smollm2-cpu-replay.yaml")
    with Evaluator(replay, out / "replay", agent="optuna", use_cache=False) as evaluator:
        session = TuningSession(evaluator, args.replay_trials,
                                on_record=lambda s, r: samples.append(("replay", len(s.records), rss_mb())))
        make_agent("optuna").search(session, seed=0)
        replay_trials = len(session.records)
        print(f"replay: {replay_trials} trials, {session.spent} measurements, "
              f"{time.perf_counter() - started:.0f} s", flush=True)

    tiny = load_task("envs/tiny-cpu.yaml")
    tiny_started = time.perf_counter()
    with Evaluator(tiny, out / "tiny", agent="soak", use_cache=False) as evaluator:
        # straight to the evaluator: a session answers a repeated config from its record, and the soak must
        # measure the same configs again and again
        for trial, config in enumerate(itertools.islice(itertools.cycle(CHEAP_TINY_CONFIGS), args.tiny_trials), 1):
            record = evaluator.evaluate(config)
            samples.append(("tiny", trial, rss_mb()))
            if trial % 10 == 0:
                print(f"tiny: trial {trial}/{args.tiny_trials} {record.status}, "
                      f"RSS {samples[-1][2]:.1f} MiB", flush=True)
        workers_during = worker_processes()
    left_behind = worker_processes()

    baseline = next(rss for phase, trial, rss in samples if trial >= min(WARMUP_TRIALS, replay_trials))
    after_warmup = [rss for phase, trial, rss in samples if phase == "tiny" or trial >= WARMUP_TRIALS]
    figures = {
        "replay_trials": replay_trials, "tiny_trials": args.tiny_trials,
        "rss_mb_baseline": baseline, "rss_mb_min": min(after_warmup), "rss_mb_max": max(after_warmup),
        "rss_mb_last": samples[-1][2],
        "drift_pct_max": 100 * (max(after_warmup) / baseline - 1),
        "drift_pct_min": 100 * (min(after_warmup) / baseline - 1),
        "workers_during_tiny_phase": len(workers_during), "workers_left_behind": len(left_behind),
        "tiny_phase_s": time.perf_counter() - tiny_started, "total_s": time.perf_counter() - started,
    }
    figures["within_10_pct"] = abs(figures["drift_pct_max"]) <= 10 and abs(figures["drift_pct_min"]) <= 10
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps({"figures": figures, "samples": samples}, indent=1))
    _plot(samples, baseline, out / "soak.png")
    for key, value in figures.items():
        print(f"{key:28s} {value:.1f}" if isinstance(value, float) else f"{key:28s} {value}")
    print(f"saved {out / 'soak.json'} and {out / 'soak.png'}")


def _plot(samples: list[tuple[str, int, float]], baseline: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    offset = 0
    for phase in ("replay", "tiny"):
        points = [(trial, rss) for name, trial, rss in samples if name == phase]
        axis.plot([offset + trial for trial, _ in points], [rss for _, rss in points], label=f"{phase} trials")
        offset += max((trial for trial, _ in points), default=0)
    for bound in (0.9, 1.0, 1.1):
        axis.axhline(baseline * bound, color="grey", linestyle=":" if bound != 1.0 else "--", linewidth=1)
    axis.set_xlabel("trial (replay, then tiny model)")
    axis.set_ylabel("tuner RSS (MiB)")
    axis.set_title("soak: tuner memory per trial (dotted: ±10% of the level after warm-up)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
