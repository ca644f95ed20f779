"""Progress inside a trial: the worker's phases reach the terminal as they happen, and no phase goes silent."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import threading
import time
from datetime import datetime

from tests.helpers import ROOT, TINY
from tuner.run.progress import TrialProgress

LINE = re.compile(r"^(\d\d:\d\d:\d\d) \[1/1\] trial \d+: (.*)$")
COMPILED = ("--set", "compile=true", "--set", "cache_implementation=static")


def _measure(runs, *extra: str, env: dict[str, str] | None = None, **streams) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "measure", str(TINY),
                             *extra, "--no-mlflow", "--no-cache"], cwd=ROOT, env={**os.environ, **(env or {})},
                            text=True, **streams)


def test_off_a_terminal_every_phase_is_a_timestamped_line_and_none_is_silent(tmp_path):
    measure = _measure(tmp_path, *COMPILED, env={"INFERTUNE_PROGRESS_S": "2"}, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    _, err = measure.communicate(timeout=600)
    assert measure.returncode == 0, err
    lines = [match.groups() for match in map(LINE.match, err.splitlines()) if match]
    phases = [text for _, text in lines]
    order = ["starting the measuring worker", "loading the model", "warming up and compiling",
             "calibrating the repeat length", "timing repeats: repeat 1 of at most", "measuring peak memory"]
    found = [next(index for index, text in enumerate(phases) if text.startswith(phase)) for phase in order]
    assert found == sorted(found), phases  # each phase named, in the order the worker went through them
    times = [datetime.strptime(stamp, "%H:%M:%S") for stamp, _ in lines]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:], strict=False)]
    assert max(gaps) <= 4, list(zip(gaps, phases[1:], strict=True))  # a line at least every ~2 s, as asked
    # told again after 2 s of silence, a phase shows at least 2 s in it; "(2s" counts, as fast CI machines show
    retold = re.compile(r"\((?:[2-9]|[1-9]\d+|\d+m\d\d)s in this phase")
    long_phase = [text for text in phases if retold.search(text)]
    assert long_phase, phases  # a phase that lasted longer was told again while it lasted, with its time so far


def test_on_a_terminal_the_trial_line_redraws_in_place(tmp_path):
    controller, terminal = pty.openpty()
    measure = _measure(tmp_path, "--set", "batch_size=1", stdin=terminal, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal's last writer is gone
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    out, _ = measure.communicate(timeout=600)
    reader.join(timeout=30)
    os.close(controller)
    screen = b"".join(chunks).decode(errors="replace")
    assert measure.returncode == 0, screen[-2000:]
    assert "timing repeats" in screen and "in the trial" in screen
    assert "\x1b[2K" in screen  # rich erases the line it drew: a live line, not a scroll of lines
    assert not LINE.search(screen)  # and no timestamped plain lines on a terminal
    assert "records:" in out


def test_eta_follows_the_trials_measured_so_far():
    now = [0.0]
    spent = [0]
    progress = TrialProgress(io.StringIO(), budget=5, spent=lambda: spent[0], live=False, quiet_s=60,
                             clock=lambda: now[0], announce=False)
    assert progress.eta_s() is None  # nothing measured yet: no basis for an estimate
    for seconds in (10.0, 20.0):
        progress.begin(spent[0], {})
        now[0] += seconds
        progress.end()
        spent[0] += 1
    progress.begin(2, {})
    now[0] += 5.0
    # three measurements left after two: this one (15 s by the mean of 10 and 20, 5 s in) and two more
    assert progress.eta_s() == 10.0 + 2 * 15.0
    progress.end()


def test_a_worker_gone_silent_is_still_told_every_quiet_interval():
    out = io.StringIO()
    progress = TrialProgress(out, budget=1, spent=lambda: 0, live=False, quiet_s=1.0, announce=False)
    progress.begin(0, {})
    progress.phase({"phase": "warming up and compiling"})  # then nothing more: a long C call, a stuck kernel
    time.sleep(3.5)
    progress.end()
    lines = out.getvalue().splitlines()
    retold = [line for line in lines if re.search(r"warming up and compiling \([1-9]s in this phase", line)]
    assert len(retold) >= 2, lines  # the ticker speaks for a silent worker, with the phase's time so far


def test_a_progress_interval_that_is_not_a_positive_number_is_one_line(tmp_path):
    measure = _measure(tmp_path, env={"INFERTUNE_PROGRESS_S": "soon"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = measure.communicate(timeout=120)
    assert measure.returncode == 2 and err.strip().splitlines()[-1] == (
        "infertune: error: INFERTUNE_PROGRESS_S: must be a positive number of seconds (got 'soon')")
    assert "Traceback" not in err
