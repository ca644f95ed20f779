"""Serving under load (design §15): a real transformers server, real GuideLLM load, and every way it can fail."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, TEST_OWNER_VARIABLE
from tuner.evaluation.evaluator import Evaluator
from tuner.objective import SERVING_METRICS
from tuner.serving.load_metrics import combine, run_metrics
from tuner.serving.loadgen import LoadFailed, LoadRun, RequestSample, run_load
from tuner.serving.server import ServerFailed, start_server
from tuner.task import load_task

TINY_SERVING = ROOT / "envs" / "tiny-serving.yaml"
pytestmark = pytest.mark.usefixtures("kv_cache_sized_from_free_memory")  # one such server on the machine


def _gone(pid: int) -> bool:
    """Whether no process ``pid`` runs any more (a zombie awaiting its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def _live_processes() -> Iterator[tuple[int, Path, str]]:
    """Every live process on this machine: its pid, its /proc folder and its command line (a vanished one skipped)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and not _gone(int(entry.name)):
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            yield int(entry.name), entry, command


def _our_servers() -> list[str]:
    """Command lines of serving processes and GuideLLM runs still alive that this pytest process started.

    Started means: carrying this process's test-owner mark in their environment, which survives reparenting, so
    an orphan still counts while a server of the xdist worker beside us does not.
    """
    mark = f"{TEST_OWNER_VARIABLE}={os.environ[TEST_OWNER_VARIABLE]}".encode()
    found = []
    for _, entry, command in _live_processes():
        if "tuner.serving.hf_server" not in command and "guidellm run" not in command:
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(command)
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def serving_run(tmp_path_factory: pytest.TempPathFactory):
    """One measured serving config (the reference's own settings) and the measurer's process facts after close."""
    task = load_task(TINY_SERVING)
    runs = tmp_path_factory.mktemp("runs")
    here = Path.cwd()
    os.chdir(runs)  # a relative runs folder (--runs-dir runs), as users give it: the load generator runs elsewhere
    try:
        with Evaluator(task, Path("serving"), use_cache=False) as evaluator:
            record = evaluator.evaluate({"max_num_seqs": 8, "max_batch_tokens": 256, "quantization": "none"})
            server_pid = evaluator.measurer.pid
            refused = evaluator.evaluate({"max_num_seqs": 1, "max_batch_tokens": 64,
                                          "quantization": "int8-weight-only"})
            starts = evaluator.measurer.starts
    finally:
        os.chdir(here)
    return record, refused, server_pid, starts, runs / "serving"


def test_a_config_is_measured_on_a_real_server_under_load(serving_run):
    record, _, server_pid, _, run_dir = serving_run
    assert record.status in ("ok", "unstable"), record.error
    metrics = record.metrics
    assert set(metrics) == set(SERVING_METRICS)  # every §15 figure, and no static-batch one
    for name in ("ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "itl_p50_s", "itl_p95_s", "e2e_p95_s", "requests_per_s",
                 "output_tokens_per_s", "goodput_rps", "server_start_s", "warmup_s"):
        assert isinstance(metrics[name], float) and metrics[name] > 0, name
    assert metrics["ttft_p50_s"] <= metrics["ttft_p95_s"] <= metrics["ttft_p99_s"]
    # each request's first token comes before its last, so every TTFT percentile is at most the same E2E one (the
    # TTFT p99 may pass the E2E p95: one slow first token among 24 requests did, in CI)
    assert metrics["ttft_p95_s"] <= metrics["e2e_p95_s"]
    assert metrics["goodput_rps"] <= metrics["requests_per_s"] + 1e-9
    assert metrics["token_agree"] == 1.0  # the reference config's own settings agree with themselves
    assert metrics["repeats"] == 2 and len(record.info["runs"]) == 2
    assert record.info["load"] == {"process": "poisson", "rate": 4.0, "num_requests": 12, "max_tokens": 8}
    # the requests really went through GuideLLM to our server: its log holds them, its report every request
    report = json.loads((run_dir / "serving" / "load" / "guidellm.json").read_text())
    assert sum(len(report["benchmarks"][0]["requests"][kind] or []) for kind in ("successful", "errored")) == 12
    assert (run_dir / "serving" / "server.log").read_text().count("POST /v1/completions") >= 2 * 12
    assert server_pid is not None and _gone(server_pid)  # close() stopped it


def test_a_value_the_engine_lacks_is_infeasible_with_the_reason_before_any_server(serving_run):
    _, refused, _, starts, _ = serving_run
    assert refused.status == "infeasible"
    assert "bitsandbytes" in refused.error["message"]
    # one server in all: the measured config has the reference's engine settings, so the server that gave the
    # reference answers was kept up and measured it; the refused config started none
    assert starts == 1


def test_nothing_is_left_running_after_the_measurer_closes(serving_run):
    assert _our_servers() == []


def test_goodput_counts_only_requests_within_every_slo():
    samples = (RequestSample(True, 0.2, 0.01, 0.5, 8, 0.0, 0.5),   # within both
               RequestSample(True, 0.9, 0.01, 1.2, 8, 0.1, 1.3),   # first token too late
               RequestSample(True, 0.3, 0.08, 1.0, 8, 0.2, 1.2),   # tokens too slow
               RequestSample(False, None, None, None, 0, 0.3, 0.4))  # failed
    metrics = run_metrics(LoadRun(samples, 2.0), {"ttft_p95_s": 0.5, "itl_p95_s": 0.05})
    assert metrics["goodput_rps"] == 0.5  # 1 good request in 2 s
    assert metrics["requests_per_s"] == 1.5 and metrics["failed_requests"] == 1
    assert metrics["output_tokens_per_s"] == 12.0


def test_repeated_load_runs_must_agree():
    steady = [{"goodput_rps": 2.0, "requests_per_s": 3.0}, {"goodput_rps": 2.1, "requests_per_s": 3.1}]
    swinging = [{"goodput_rps": 2.0, "requests_per_s": 3.0}, {"goodput_rps": 1.0, "requests_per_s": 3.0}]
    assert combine(steady)[1] is True
    combined, agree, spread = combine(swinging)
    assert agree is False and spread == pytest.approx(1.0 / 1.5)
    assert combined["goodput_rps"] == 1.5  # the median


def test_a_server_that_never_becomes_healthy_times_out_and_is_killed(tmp_path):
    argv = [sys.executable, "-c", "import time; print('loading forever', flush=True); time.sleep(600)"]
    started = time.perf_counter()
    with pytest.raises(ServerFailed) as failure:
        start_server(argv, port=_free_port(), log_path=tmp_path / "server.log", timeout_s=3)
    assert failure.value.status == "timeout" and time.perf_counter() - started < 15
    assert "loading forever" in failure.value.log_tail
    assert not [line for line in _processes_with("loading forever")]


def test_a_server_that_exits_at_start_is_a_crash_with_its_log(tmp_path):
    argv = [sys.executable, "-c", "import sys; print('CUDA out of memory while loading', flush=True); sys.exit(3)"]
    with pytest.raises(ServerFailed) as failure:
        start_server(argv, port=_free_port(), log_path=tmp_path / "server.log", timeout_s=30)
    assert failure.value.status == "crash" and "exited with code 3" in str(failure.value)
    assert failure.value.log_tail == ["CUDA out of memory while loading"]


def test_a_port_in_use_is_reported_with_the_servers_own_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        with pytest.raises(ServerFailed) as failure:
            start_server(argv, port=port, log_path=tmp_path / "server.log", timeout_s=30, health_path="/")
    assert failure.value.status == "crash"
    assert any("address already in use" in line.lower() for line in failure.value.log_tail)


def test_a_hung_load_generator_times_out_and_leaves_nothing_behind(tmp_path):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        load = {"process": "constant", "rate": 2.0, "num_requests": 2, "max_tokens": 4}
        started = time.perf_counter()
        with pytest.raises(LoadFailed) as failure:
            run_load(url, str(tmp_path), ["hello"], load, tmp_path / "load", timeout_s=20)
    assert failure.value.status == "timeout" and time.perf_counter() - started < 40
    assert not [command for command in _our_servers() if "guidellm" in command]


def test_a_server_outlives_no_tuner_killed_with_sigkill(tmp_path):
    """The tuner dies by SIGKILL (no cleanup runs): the kernel still ends its server (parent-death signal)."""
    script = tmp_path / "dying_tuner.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from tuner.serving.server import free_port, start_server
        port = free_port()
        server = start_server([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], port=port,
                              log_path=Path({str(tmp_path / 'server.log')!r}), timeout_s=30, health_path="/")
        print(server.process.pid, flush=True)
        time.sleep(600)
    """))
    tuner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    server_pid = int(tuner.stdout.readline())
    assert not _gone(server_pid)
    tuner.send_signal(signal.SIGKILL)
    tuner.wait()
    deadline = time.time() + 10
    while not _gone(server_pid) and time.time() < deadline:
        time.sleep(0.1)
    assert _gone(server_pid)


def test_a_load_generator_outlives_no_tuner_killed_with_sigkill(tmp_path):
    """The tuner dies by SIGKILL while GuideLLM waits on a server that never answers: GuideLLM ends too."""
    script = tmp_path / "dying_tuner.py"
    script.write_text(textwrap.dedent(f"""
        import socket
        from pathlib import Path
        from tuner.serving.loadgen import run_load
        silent = socket.socket()  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{{silent.getsockname()[1]}}"
        load = {{"process": "constant", "rate": 2.0, "num_requests": 2, "max_tokens": 4}}
        run_load(url, {str(tmp_path)!r}, ["hello"], load, Path({str(tmp_path / 'load')!r}), timeout_s=600)
    """))
    tuner = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    scenario = str(tmp_path / "load" / "scenario.json")
    assert _wait_for(lambda: bool(_processes_with(scenario)), within_s=60)
    time.sleep(2)  # GuideLLM is up and waiting on its requests
    assert _processes_with(scenario)
    tuner.send_signal(signal.SIGKILL)
    tuner.wait()
    assert _wait_for(lambda: not _processes_with(scenario), within_s=10), _processes_with(scenario)


def test_a_server_killed_mid_load_is_a_crash_with_its_log_and_nothing_left_running(tmp_path):
    task = load_task(TINY_SERVING)
    task = dataclasses.replace(task, workload=dataclasses.replace(task.workload, warmup_requests=1))

    def kill_when_loading(event: dict) -> None:
        if event["phase"].startswith("load run 1"):
            _wait_for(lambda: any("guidellm run" in command for command in _our_servers()), within_s=60)
            os.killpg(evaluator.measurer.pid, signal.SIGKILL)

    with Evaluator(task, tmp_path / "runs" / "crash", use_cache=False) as evaluator:
        evaluator.measurer._reference_texts = ["", ""]  # noqa: SLF001 - the reference server is not the subject
        config = evaluator.task.space.complete({"max_num_seqs": 1})
        reply = evaluator.measurer.request({"op": "measure", "config": config}, timeout_s=240,
                                           on_phase=kill_when_loading)
    assert reply["status"] in ("crash", "error"), reply
    assert reply["error"]["log_tail"], reply["error"]
    # SIGKILLed processes take a moment to be torn down; one still there after 10 s was left running
    assert _wait_for(lambda: _our_servers() == [], within_s=10), _our_servers()


def _wait_for(condition: Callable[[], bool], within_s: float) -> bool:
    """Whether ``condition`` holds within ``within_s`` seconds (polled)."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_with(text: str) -> list[int]:
    return [pid for pid, _, command in _live_processes() if text in command]
