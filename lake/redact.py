"""One redaction rule for secrets in connection strings, applied to everything the project prints or logs.

Spark Connect URLs carry a bearer token as a parameter (`sc://host:15002/;token=...;user_id=...`); MLflow and
object-store URIs can carry `user:password@` and `?token=`-style query parameters. `redact` keeps the host (an
operator needs it to see where the job went) and replaces every secret value with `***`.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_SECRET_KEYS = r"(?:token|password|passwd|pwd|secret|api[_-]?key|access[_-]?key|auth|authorization|x-api-key)"
# `;token=...` (Spark Connect parameters) and `?token=...` / `&password=...` (URL query parameters)
_PARAM = re.compile(rf"(?i)([;?&]{_SECRET_KEYS}=)[^;&\s'\"]+")
# scheme://user:password@host
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^@/\s'\"]+@")


def redact(text: object) -> str:
    """`text` with secret values of any connection string in it replaced by ***."""
    value = str(text)
    value = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", value)
    return _PARAM.sub(lambda m: f"{m.group(1)}{MASK}", value)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, arguments included, through `redact` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def install_log_redaction() -> None:
    """Attach the filter to every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(uri without `user:password@`, user, password). Clients that print the URI they were given (MLflow prints
    "View run ... at: <tracking URI>") get the clean one, and the credentials travel separately."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), unquote(user) or None, unquote(password) or None
