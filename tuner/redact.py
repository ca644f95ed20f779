"""Keep credentials out of what infertune writes: a URL's password becomes ``***``."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str | None) -> str | None:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``; other strings unchanged."""
    if not url or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def same_url(given: str | None, saved: str | None) -> bool:
    """Whether ``given`` is the URL ``saved`` (which may have been written redacted)."""
    return given == saved or redact_url(given) == saved
