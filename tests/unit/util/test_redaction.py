"""One redaction for everything printed: URL userinfo, secret query parameters; log records, warnings, streams."""

from __future__ import annotations

import io
import logging
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from tests.helpers import REPLAY, ROOT
from tuner.util.redact import (
    MASK,
    RedactingStream,
    install_redaction,
    redact_record,
    redact_text,
    show_warning,
    userinfo_url,
)

PASSWORD, TOKEN, API_KEY = "trkpw7Kq", "trktok8Lr", "trkkey9Ms"
DB_PASSWORD, SSL_PASSWORD, QUERY_PASSWORD = "dbpw3Fx", "dbssl4Gy", "dbqp5Hz"
# a root handler made before the CLI starts, and library loggers at DEBUG: every record they raise is shown
VERBOSE_LIBRARIES = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    for name in ("urllib3", "requests", "psycopg", "sqlalchemy.pool", "sqlalchemy.engine"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    from tuner.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the socket goes


def _infertune(runs: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a process of its own, with the libraries' log records shown (a fresh process each call)."""
    return subprocess.run([sys.executable, "-c", VERBOSE_LIBRARIES, "--runs-dir", str(runs), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def _leaks(secrets: tuple[str, ...], runs: Path, *results: subprocess.CompletedProcess) -> list[str]:
    """Where any secret shows: an output stream or a file under the runs folder."""
    found = [f"{result.args[3:]} {name}" for result in results for name in ("stdout", "stderr")
             for secret in secrets if secret in getattr(result, name)]
    return found + [str(path) for path in runs.rglob("*") if path.is_file()
                    for secret in secrets if secret.encode() in path.read_bytes()]


def test_userinfo_runs_to_the_last_at_before_the_host():
    assert userinfo_url("postgresql://u:p@ss789@127.0.0.1:1/db") == "postgresql://u:p%40ss789@127.0.0.1:1/db"
    assert userinfo_url("postgresql://u:p%40ss@h/db?x=a@b") == "postgresql://u:p%40ss@h/db?x=a@b"
    assert userinfo_url("http://h:5000/x@y") == "http://h:5000/x@y"
    assert userinfo_url("sqlite:////tmp/a@b/optuna.db") == "sqlite:////tmp/a@b/optuna.db"
    assert redact_text("postgresql://u:p@ss789@127.0.0.1:1/db") == "postgresql://u:***@127.0.0.1:1/db"


def test_secret_query_parameters_are_masked_and_nothing_else():
    text = ("http://h/?token=T1&x=1 db?sslpassword=S2&password=P3 api_key=K4 HF_TOKEN=H5 "
            "https://T6@github.com tokens_per_s=12.5 max_new_tokens=8 sqlite:////tmp/a@b.db")
    assert redact_text(text) == ("http://h/?token=***&x=1 db?sslpassword=***&password=*** api_key=*** HF_TOKEN=*** "
                                 "https://***@github.com tokens_per_s=12.5 max_new_tokens=8 sqlite:////tmp/a@b.db")
    assert redact_text(redact_text(text)) == redact_text(text)


def test_a_log_record_is_redacted_with_its_traceback():
    try:
        raise ConnectionError(f"refused: http://u:{PASSWORD}@h/?token={TOKEN}")
    except ConnectionError:
        record = logging.LogRecord("urllib3.connectionpool", logging.WARNING, __file__, 1, "retrying %s",
                                   (f"/?api_key={API_KEY}",), sys.exc_info())
    text = logging.Formatter().format(redact_record(record))
    assert record.exc_info is None  # rendered and redacted: no formatter can render the raw exception again
    assert "ConnectionError: refused: http://u:***@h/?token=***" in text and "/?api_key=***" in text
    assert not any(secret in text for secret in (PASSWORD, TOKEN, API_KEY))


def test_warnings_and_streams_are_redacted():
    shown, written = io.StringIO(), io.StringIO()
    show_warning(UserWarning(f"could not reach http://u:{PASSWORD}@h"), UserWarning, "x.py", 3, file=shown)
    RedactingStream(written).write(f"uploading to http://h/?token={TOKEN}\n")
    assert f"http://u:{MASK}@h" in shown.getvalue() and written.getvalue() == f"uploading to http://h/?token={MASK}\n"


def test_install_routes_records_warnings_and_prints_through_the_redaction(monkeypatch):
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())  # restored after the test
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    stdout, stderr, warned = io.StringIO(), io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    install_redaction()
    install_redaction()  # once is enough; twice changes nothing
    record = logging.getLogger("sqlalchemy.pool").makeRecord("sqlalchemy.pool", logging.ERROR, "x.py", 1,
                                                             "connect to %s", (f"postgresql://u:{PASSWORD}@h",), None)
    print(f"https://{TOKEN}@github.com", file=sys.stdout)
    warnings.showwarning(UserWarning(f"api_key={API_KEY}"), UserWarning, "x.py", 1, file=warned)  # not via stderr
    assert record.getMessage() == f"connect to postgresql://u:{MASK}@h"
    assert stdout.getvalue() == f"https://{MASK}@github.com\n" and f"api_key={MASK}" in warned.getvalue()
    assert isinstance(sys.stdout, RedactingStream) and not isinstance(sys.stdout.wrapped, RedactingStream)


def test_every_library_logger_and_handler_is_redacted_in_a_real_process():
    """MLflow, Optuna and Alembic bring their own handlers (made before the CLI starts); the others use root's."""
    script = textwrap.dedent(f"""
        import logging, sys, warnings
        import alembic.runtime.migration, mlflow, optuna, psycopg, requests, sqlalchemy, urllib3
        optuna.logging.get_logger("optuna")  # Optuna adds its stderr handler on first use
        logging.basicConfig(format="%(name)s: %(message)s")
        from tuner.util.redact import install_redaction
        install_redaction()
        secret = "postgresql://u:{PASSWORD}@h/db?token={TOKEN}"
        for name in ("mlflow.utils.rest_utils", "optuna.storages", "alembic.runtime.migration", "sqlalchemy.engine",
                     "psycopg", "urllib3.connectionpool", "requests", "tuner"):
            logging.getLogger(name).warning("%s says %s", name, secret)
        try:
            raise OSError(secret)
        except OSError:
            logging.getLogger("sqlalchemy.pool").exception("pool")
        warnings.warn(f"warned {{secret}}")
        print(f"printed {{secret}}")
        raise SystemExit(f"exiting {{secret}}")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    output = result.stdout + result.stderr
    assert PASSWORD not in output and TOKEN not in output, output
    shown = "postgresql://u:***@h/db?token=***"
    for name in ("mlflow.utils.rest_utils", "optuna.storages", "alembic.runtime.migration", "sqlalchemy.engine",
                 "psycopg", "urllib3.connectionpool", "requests", "tuner"):
        assert f"{name} says {shown}" in output, output
    assert f"OSError: {shown}" in output and f"warned {shown}" in output and f"printed {shown}" in output
    assert f"exiting {shown}" in output


def test_an_unreachable_tracking_server_costs_seconds_and_shows_no_secret(tmp_path):
    runs = tmp_path / "runs"
    uri = f"http://u:p@{PASSWORD}@127.0.0.1:{_closed_port()}/?token={TOKEN}&api_key={API_KEY}"
    started = time.monotonic()
    tuned = _infertune(runs, "--tracking-uri", uri, "tune", str(REPLAY), "--agent", "random", "--budget", "2",
                       "--run", "offline")
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert len((runs / "offline" / "records.jsonl").read_text().splitlines()) == 2
    synced = _infertune(runs, "--tracking-uri", uri, "sync", "offline")
    assert synced.returncode == 1, synced.stderr[-3000:]
    assert time.monotonic() - started < 60  # MLflow's own retries would wait ~100 s on each
    for result in (tuned, synced):
        warning = next(line for line in result.stderr.splitlines() if "MLflow upload failed (start run)" in line)
        assert "http://u:***@127.0.0.1" in warning and "token=***" in warning, warning
        retried = [line for line in result.stderr.splitlines() if line.startswith("urllib3.connectionpool: Retrying")]
        assert retried and all("token=***&api_key=***" in line for line in retried), result.stderr[-3000:]
    assert _leaks((PASSWORD, TOKEN, API_KEY), runs, tuned, synced) == []


def test_a_storage_password_with_an_at_is_parsed_and_never_shown(tmp_path):
    runs = tmp_path / "runs"
    port = _closed_port()
    storage = f"postgresql://u:p@{DB_PASSWORD}@127.0.0.1:{port}/db?sslpassword={SSL_PASSWORD}&password={QUERY_PASSWORD}"
    result = _infertune(runs, "tune", str(REPLAY), "--budget", "1", "--storage", storage)
    assert result.returncode == 2, result.stderr[-3000:]
    error = result.stderr.splitlines()[-1]
    assert error.startswith("infertune: error: --storage: cannot open the study:"), result.stderr[-3000:]
    assert f'connection to server at "127.0.0.1", port {port} failed' in error and "resolve host" not in error
    assert "psycopg: connection failed" in result.stderr  # the driver's own records were shown
    assert f"'postgresql://u:***@127.0.0.1:{port}/db?sslpassword=***&password=***'" in error
    assert _leaks((DB_PASSWORD, SSL_PASSWORD, QUERY_PASSWORD), runs, result) == []


def test_the_optuna_storage_reads_the_userinfo_to_the_last_at():
    from sqlalchemy.exc import OperationalError

    from tuner.agents.optuna_storage import heartbeat_storage

    port = _closed_port()
    with pytest.raises(OperationalError) as refused:
        heartbeat_storage(f"postgresql://u:p@{DB_PASSWORD}@127.0.0.1:{port}/db")
    assert f'connection to server at "127.0.0.1", port {port} failed' in str(refused.value)


@pytest.mark.parametrize("uri", ["http://u:p@ss@127.0.0.1:1/", "http://127.0.0.1:1"])
def test_the_tracking_uri_is_parsed_the_same_way(uri, tmp_path, monkeypatch):
    from tuner.tracking.uri import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(uri, tmp_path) == uri.replace("p@ss", "p%40ss")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert resolve_tracking_uri(None, tmp_path) == uri.replace("p@ss", "p%40ss")


def test_the_mirror_warns_without_the_password(tmp_path):
    from tuner.tracking.mlflow_sink import MlflowSink

    warned: list[str] = []
    sink = MlflowSink(f"http://u:{PASSWORD}@127.0.0.1:{_closed_port()}/?token={TOKEN}", "x", warn=warned.append)
    assert sink.start("r", {}, {}) is None and len(warned) == 1
    assert "http://u:***@127.0.0.1" in warned[0] and PASSWORD not in warned[0] and TOKEN not in warned[0]
