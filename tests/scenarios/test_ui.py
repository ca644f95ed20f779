"""``infertune ui`` serves the MLflow UI; headless Chromium (Debian's) shows the runs and a metric."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import CHROMIUM, FLAGS, REPLAY, ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _browser(tmp_path: Path, url: str, *action: str) -> str:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *action, url], capture_output=True,
                            text=True, timeout=120)
    return result.stdout


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """One tuned replay run and one UI server on it for the module (starting the UI takes ~25 s here)."""
    runs = tmp_path_factory.mktemp("ui") / "runs"
    tuned = subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune", str(REPLAY),
                            "--agent", "optuna", "--budget", "6", "--run", "ui-demo"], capture_output=True, text=True,
                           cwd=ROOT, timeout=300)
    assert tuned.returncode == 0, tuned.stderr
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "ui", "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                              text=True)
    base = f"http://127.0.0.1:{port}"
    printed = []  # what `infertune ui` told the user before the server took over its process
    while not printed or not printed[-1].startswith("serving "):
        line = server.stdout.readline()
        assert line, "".join(printed)
        printed.append(line.rstrip())
    # Keep reading what the server logs: a full pipe (64 KiB) blocks the server, and the browser waits forever.
    threading.Thread(target=server.stdout.read, daemon=True).start()
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None, "\n".join(printed)
        assert time.monotonic() < deadline, "MLflow UI did not come up in 90 s"
        time.sleep(0.5)
    try:
        yield base, runs, printed
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _links(lines: list[str]) -> list[str]:
    return [line.rsplit(": ", 1)[1] for line in lines if ": http://" in line]


def test_the_printed_link_opens_the_runs_table_with_the_deployable_trial_first(tmp_path, ui_server):
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (.ci/run installs it)"
    base, runs, printed = ui_server
    client = MlflowClient(tracking_uri=f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("smollm2-cpu-replay").experiment_id
    assert printed[1].startswith("  smollm2-cpu-replay (1 runs): ")
    [link] = _links(printed)
    assert link.startswith(f"{base}/#/experiments/{experiment}/runs")  # not the experiment's GenAI overview
    page = _browser(tmp_path, link, "--dump-dom")
    best = client.search_runs([experiment], "tags.deployable = 'true'")[0]
    trials = sorted(set(re.findall(r"optuna-trial-\d{4}", page)), key=page.index)
    assert len(trials) == 6 and trials[0] == best.info.run_name  # every trial shown, the deployable one first
    assert "Group: ui-demo" in page  # grouped by infertune run, the group open
    assert "Training runs" in page and "No data available for the selected time range" not in page  # not Overview


def test_ui_run_links_lead_to_the_deployable_trial_then_the_run(tmp_path, ui_server):
    base, runs, _ = ui_server
    port = base.rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "ui", "--port", port,
                             "--run", "ui-demo", "--links-only"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("smollm2-cpu-replay").experiment_id
    best = client.search_runs([experiment], "tags.deployable = 'true'")[0]
    deployable, parent = _links(result.stdout.splitlines())
    assert deployable == f"{base}/#/experiments/{experiment}/runs/{best.info.run_id}"
    run_page = _browser(tmp_path, deployable, "--dump-dom")
    assert best.info.run_name in run_page and "tokens_per_s" in run_page and "deployable" in run_page
    assert parent.endswith(best.data.tags["mlflow.parentRunId"])
    shot = ROOT / "runs" / "ui-screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    _browser(tmp_path, deployable, f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000
    unknown = subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "ui", "--run", "nope",
                              "--links-only"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1 and "--run" in unknown.stderr


def test_ui_binds_loopback_by_default(ui_server):
    base, _, _ = ui_server
    port = int(base.rsplit(":", 1)[1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":  # 0A: LISTEN
                listening.append(address)
    assert listening and all(address == "0100007F" for address in listening)  # 127.0.0.1 only
