"""Keep credentials out of what infertune writes and prints: passwords, tokens and keys become ``***``.

One redaction, ``redact_text``, and one place that installs it at CLI start (``install_redaction``): every log
record of every logger (MLflow, SQLAlchemy, psycopg, urllib3, requests, Optuna, ours), every Python warning and
every write to ``sys.stdout``/``sys.stderr`` goes through it. ``userinfo_url`` is the matching parser rule for
the URLs the user gives (``--storage``, ``--tracking-uri``): the userinfo runs up to the last ``@`` before the host.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TextIO
from urllib.parse import quote

MASK = "***"
# scheme://user:password@ anywhere in a text, e.g. a database driver quoting the URL in its error message;
# greedy up to the URL's last "@", so an unescaped "@" (or "/") inside the password is masked too: this may mask
# more than a parser takes for the password, never less
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@'\"]*:)[^\s'\"]+@")
# scheme://token@ (a userinfo without a password, e.g. an access token as the user name)
_URL_USER = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^\s:/?#@'\"]+(?:@[^\s:/?#@'\"]+)*@")
# name=value where the name ends in a secret's name: ?token=, &password=, sslpassword=, api_key=, HF_TOKEN=, ...
# ("max_new_tokens=", "tokens_per_s=" do not end in one)
_SECRET_PARAM = re.compile(
    r"(?<![\w.-])([\w.-]*?(?:token|passw(?:or)?d|pwd|secret|(?:api|access|secret|private|auth)[_-]?key|apikey"
    r"|signature|credentials?)=)[^&\s'\"#]+", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][\w+.-]*://")
_USERINFO_SAFE = "%!$&'()*+,;=~"  # sub-delims and "%" (already-escaped octets stay as they are)


def redact_text(text: str) -> str:
    """``text`` with every URL password or token and every secret ``name=value`` replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda match: f"{match.group(1)}{MASK}@", text)
    text = _URL_USER.sub(lambda match: f"{match.group(1)}{MASK}@", text)
    return _SECRET_PARAM.sub(lambda match: f"{match.group(1)}{MASK}", text)


def redact_url(url: str | None) -> str | None:
    """``postgresql://user:secret@host/db?sslpassword=x`` → ``postgresql://user:***@host/db?sslpassword=***``."""
    # A regex, not urlsplit: a malformed URL (a port that is not a number) must be redacted too, not raise.
    return redact_text(url) if url else url


def same_url(given: str | None, saved: str | None) -> bool:
    """Whether ``given`` is the URL ``saved`` (which may have been written redacted)."""
    return given == saved or redact_url(given) == saved


def userinfo_url(url: str) -> str:
    """``url`` with its userinfo (up to the last ``@`` before the host) percent-escaped, so parsers agree on it.

    ``postgresql://u:p@ss@host/db`` → ``postgresql://u:p%40ss@host/db``: SQLAlchemy, requests and libpq otherwise
    split at the first ``@`` and take ``ss@host`` for the host. Escaped octets already there are kept.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url
    rest = url[scheme.end():]
    authority_end = min((index for index in (rest.find(mark) for mark in "/?#") if index >= 0), default=len(rest))
    userinfo, at, host = rest[:authority_end].rpartition("@")
    if not at:
        return url
    user, colon, password = userinfo.partition(":")
    escaped = quote(user, safe=_USERINFO_SAFE) + colon + quote(password, safe=_USERINFO_SAFE + ":")
    return f"{scheme.group()}{escaped}@{host}{rest[authority_end:]}"


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """The log record with its message, traceback and stack text redacted (rendered now, so none escapes later)."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: show both, as logging's error report would
        message = f"{record.msg} {record.args!r}"
    record.msg, record.args = redact_text(message), ()
    if record.exc_info:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_info = None  # a formatter appends exc_text; it can no longer render the raw exception
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    return record


class RedactingStream:
    """A text stream whose writes pass through ``redact_text`` on their way to the real stream."""

    def __init__(self, stream: TextIO):
        self.wrapped = stream

    def write(self, text: str) -> int:
        """Write ``text`` redacted; report it as written whole."""
        self.wrapped.write(redact_text(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each line redacted."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def _record_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A log record factory that redacts what ``make`` builds."""
    def redacted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(make(*args, **kwargs))

    redacted.redacts = True  # type: ignore[attr-defined]
    return redacted


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
    """``warnings.showwarning``, redacted."""
    stream = file if file is not None else sys.stderr
    if stream is None:
        return
    with contextlib.suppress(OSError):  # as the standard one: a closed stream loses the warning, not the run
        stream.write(redact_text(warnings.formatwarning(message, category, filename, lineno, line)))


def install_redaction() -> None:
    """Route every log record, warning and stdout/stderr write of this process through ``redact_text`` (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "redacts", False):
        logging.setLogRecordFactory(_record_factory(factory))
    warnings.showwarning = show_warning
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message (its type's name when it has none), cut to ``limit`` characters."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
