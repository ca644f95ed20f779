"""Security: safe YAML only, remote code only when asked, local-only servers, no secrets in anything written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import REPLAY, ROOT, TINY, tiny_without_compile
from tuner.cli import build_parser
from tuner.task import load_task
from tuner.util.redact import redact_text, redact_url

SECRET = "hf_SECRETtoken0123456789"
POSTGRES = os.environ.get("INFERTUNE_TEST_POSTGRES_URL")


def _infertune(runs: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env={**os.environ, **(env or {})})


def _files_containing(folder: Path, needle: str) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()]


def _mlflow_text(runs: Path) -> str:
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return "".join(repr(run.data.params) + repr(run.data.tags) for run in client.search_runs(experiments))


def test_only_safe_yaml_loading_in_the_package():
    import yaml

    from tuner.space.loader import _UniqueKeyLoader

    sources = "\n".join(path.read_text() for path in (ROOT / "tuner").rglob("*.py"))
    assert not re.search(r"yaml\.(unsafe_load|full_load)\(", sources)
    loads = re.findall(r"yaml\.load\(.*|Loader=\w+", sources)
    assert loads and all("_UniqueKeyLoader" in call for call in loads), loads  # user files: one loader
    assert issubclass(_UniqueKeyLoader, yaml.SafeLoader)


def test_a_python_object_tag_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    task = tmp_path / "evil.yaml"
    task.write_text(f"id: !!python/object/apply:os.system ['touch {marker}']\nmodel: {{tiny: {{}}}}\n")
    result = _infertune(tmp_path / "runs", "measure", str(task))
    assert result.returncode == 2 and "malformed YAML" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_remote_code_only_when_the_task_says_so(tmp_path):
    sources = "\n".join(path.read_text() for path in (ROOT / "tuner").rglob("*.py"))
    assert "trust_remote_code=True" not in sources
    assert "trust_remote_code" not in load_task(TINY).model  # absent means False at every from_pretrained
    task = tmp_path / "remote.yaml"
    task.write_text((ROOT / "envs" / "tiny-cpu.yaml").read_text().replace(
        "model:\n", "model:\n  trust_remote_code: yes please\n").replace("search_space: hf-transformers",
                                                                         f"search_space: {ROOT}/search_spaces/"
                                                                         "hf-transformers.yaml"))
    result = _infertune(tmp_path / "runs", "measure", str(task))
    assert result.returncode == 2 and "model.trust_remote_code: must be true or false" in result.stderr


def test_the_ui_binds_localhost_unless_told():
    assert build_parser().parse_args(["ui"]).host == "127.0.0.1"


def test_no_token_in_records_mlflow_or_exports(tmp_path):
    runs = tmp_path / "runs"
    tokens = {"HF_TOKEN": SECRET, "HUGGING_FACE_HUB_TOKEN": SECRET}
    task = tiny_without_compile(tmp_path)
    result = _infertune(runs, "tune", str(task), "--agent", "random", "--budget", "2", "--run", "t", env=tokens)
    assert result.returncode == 0, result.stderr[-2000:]
    # Export from the replay task: its timings are recorded, so a deployable config exists on any machine
    # (two random tiny-model configs may both time as unstable on a loaded CI runner).
    replayed = _infertune(runs, "tune", str(REPLAY), "--agent", "random", "--budget", "3", "--run", "r", env=tokens)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    exported = _infertune(runs, "export", "r", "--to", "all", "--out", str(runs / "exported"), env=tokens)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (runs / "t" / "records.jsonl").is_file() and len(list((runs / "exported").iterdir())) >= 5
    assert _files_containing(runs, SECRET) == []
    assert SECRET not in _mlflow_text(runs) + result.stdout + result.stderr + replayed.stdout + exported.stdout


def test_passwords_are_masked_in_urls_and_in_free_text():
    assert redact_url("postgresql://tuner:hunter2@db:5432/studies") == "postgresql://tuner:***@db:5432/studies"
    assert redact_url("postgresql://tuner:hunter2@db:notaport/x") == "postgresql://tuner:***@db:notaport/x"
    assert redact_url("sqlite:////tmp/optuna.db") == "sqlite:////tmp/optuna.db"
    driver_error = "could not parse (got 'noise\nmysql+pymysql://me:p@ss:w0rd@h/d') near a:b@c"
    assert redact_text(driver_error) == "could not parse (got 'noise\nmysql+pymysql://me:***@h/d') near a:b@c"


@pytest.mark.parametrize("storage", ["postgresql://tuner:hunter2@127.0.0.1:notaport/studies",
                                     "postgresql://tuner:hunter2@127.0.0.1:1/studies"])
def test_a_storage_that_cannot_be_opened_is_one_line_without_its_password(tmp_path, storage):
    result = _infertune(tmp_path / "runs", "tune", str(REPLAY), "--agent", "optuna", "--budget", "1",
                        "--storage", storage)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("infertune: error: --storage: cannot open the study:")
    assert "hunter2" not in result.stdout + result.stderr + "".join(
        path.read_text(errors="replace") for path in (tmp_path / "runs").rglob("*") if path.is_file())


@pytest.mark.skipif(not POSTGRES, reason="INFERTUNE_TEST_POSTGRES_URL not set (bash .ci/postgres)")
def test_no_database_password_in_anything_written(tmp_path):
    runs = tmp_path / "runs"
    password = POSTGRES.split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
    result = _infertune(runs, "tune", str(REPLAY), "--agent", "optuna", "--budget", "3", "--storage", POSTGRES,
                        "--study", f"secret-{os.getpid()}", "--run", "db")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _files_containing(runs, f":{password}@") == []
    assert f":{password}@" not in _mlflow_text(runs) + result.stdout
    assert redact_url(POSTGRES) in (runs / "db" / "run.json").read_text()
    again = _infertune(runs, "tune", str(REPLAY), "--resume", "db")
    assert again.returncode == 2 and "pass it again" in again.stderr
    resumed = _infertune(runs, "tune", str(REPLAY), "--resume", "db", "--storage", POSTGRES)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
