"""``infertune ui`` serves the MLflow UI; headless Chromium (Debian's) shows the runs and a metric."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPLAY, ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a root, offline, headless Chromium (no sandbox, no background calls to the closed network).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000", "--window-size=1400,1000"]


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
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None, server.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, "MLflow UI did not come up in 90 s"
        time.sleep(0.5)
    try:
        yield base, runs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_ui_shows_runs_and_metrics(tmp_path, ui_server):
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (.ci/run installs it)"
    base, runs = ui_server
    client = MlflowClient(tracking_uri=f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("smollm2-cpu-replay").experiment_id
    page = _browser(tmp_path, f"{base}/#/experiments/{experiment}/runs", "--dump-dom")
    assert "ui-demo" in page  # the parent run's name, rendered by the UI's JavaScript
    best = client.search_runs([experiment], "tags.deployable = 'true'")[0]
    url = f"{base}/#/experiments/{experiment}/runs/{best.info.run_id}"
    run_page = _browser(tmp_path, url, "--dump-dom")
    assert best.info.run_name in run_page and "tokens_per_s" in run_page and "deployable" in run_page
    shot = ROOT / "runs" / "ui-screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    _browser(tmp_path, url, f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000


def test_ui_binds_loopback_by_default(ui_server):
    base, _ = ui_server
    port = int(base.rsplit(":", 1)[1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":  # 0A: LISTEN
                listening.append(address)
    assert listening and all(address == "0100007F" for address in listening)  # 127.0.0.1 only
