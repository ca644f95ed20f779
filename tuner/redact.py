"""Keep credentials out of what infertune writes: a URL's password becomes ``***``."""

from __future__ import annotations

import re

MASK = "***"
# scheme://user:password@ anywhere in a text, e.g. a database driver quoting the URL in its error message;
# greedy up to the URL's last "@", so an unescaped "@" inside the password is masked too
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s'\"]+@")


def redact_url(url: str | None) -> str | None:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``; other strings unchanged."""
    # A regex, not urlsplit: a malformed URL (a port that is not a number) must be redacted too, not raise.
    return redact_text(url) if url else url


def same_url(given: str | None, saved: str | None) -> bool:
    """Whether ``given`` is the URL ``saved`` (which may have been written redacted)."""
    return given == saved or redact_url(given) == saved


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` inside ``text`` with its password replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda match: f"{match.group(1)}{MASK}@", text)
