"""Who is at the console: per-analyst tokens (the default) or a reverse proxy's identity header (opt-in).

Tokens file: one analyst per line, `<analyst> sha256:<hex digest of the token>`; blank lines and `#` comments are
ignored. Only digests are stored, so the file never holds a credential; still, it says who may sign in, so the
console refuses a file (or its folder) that other users can read or write. `distillguard review issue-token NAME`
creates a token, replacing any earlier one of that analyst, and prints it once; `review list-tokens` and
`review revoke-token NAME` list and remove them.

Sessions are server-side records (`SessionStore`): the signed cookie carries only a random session id. Every
request looks the id up and checks that the token the session signed in with is still that analyst's line in the
tokens file, so signing out, revoking a token or issuing a new one ends the sessions at once; a copied cookie
is worth nothing afterwards. Records live in the console process: a restart ends every session.

Trusted header (`--auth trusted-header --trusted-header X-Forwarded-User`): the console believes whatever that
header says, so it is only safe behind a proxy that authenticates every request and strips the header from
clients. It is never on unless asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from console.decisions import check_analyst
from lake.errors import InputError

AUTH_MODES = ("token", "trusted-header")
TOKEN_PREFIX = "sha256:"
SESSION_MAX_AGE_S = 12 * 3600


def token_digest(token: str) -> str:
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def check_private(path: Path) -> None:
    """Refuse a tokens file, or its folder, that users other than the owner can read or write."""
    for target, fix_mode in ((path, "600"), (path.parent, "700")):
        mode = stat.S_IMODE(target.stat().st_mode)
        if mode & 0o066:
            raise InputError(
                f"{target} is readable or writable by other users (mode {mode:04o}); "
                f"restrict it with `chmod {fix_mode} {target}`"
            )


def _parse(path: Path) -> list[tuple[str, str]]:
    """(analyst, digest) per line of an existing tokens file."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith(TOKEN_PREFIX):
            raise InputError(f"{path}:{number}: expected '<analyst> sha256:<hex>'")
        entries.append((check_analyst(parts[0]), parts[1]))
    return entries


def read_tokens(path: Path) -> dict[str, str]:
    """digest -> analyst. Refuses a missing, empty or non-private file."""
    if not path.is_file():
        raise InputError(
            f"no analyst tokens file at {path}; create one with "
            "`distillguard review issue-token <analyst> --tokens-file PATH`"
        )
    check_private(path)
    digests = {digest: analyst for analyst, digest in _parse(path)}
    if not digests:
        raise InputError(f"{path} lists no analysts; nobody could sign in")
    return digests


def _rewrite(path: Path, entries: list[tuple[str, str]]) -> None:
    """Replace the tokens file in one rename, mode 0600, so a reader never sees half of it."""
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.writelines(f"{analyst} {digest}\n" for analyst, digest in entries)
    os.replace(scratch, path)


def _entries(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    check_private(path)
    return _parse(path)


def issue_token(path: Path, analyst: str) -> str:
    """A new random token for `analyst`; its digest replaces any earlier one (which ends that analyst's sessions).
    A missing file is created 0600 in a 0700 folder, whatever the umask."""
    analyst = check_analyst(analyst)
    token = secrets.token_urlsafe(24)
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o700)
    kept = [entry for entry in _entries(path) if entry[0] != analyst]
    _rewrite(path, [*kept, (analyst, token_digest(token))])
    return token


def list_tokens(path: Path) -> list[tuple[str, str]]:
    """(analyst, digest prefix) per token, in file order; the prefix tells tokens apart without being one."""
    return [(analyst, digest[: len(TOKEN_PREFIX) + 12]) for analyst, digest in _entries(path)]


def revoke_token(path: Path, analyst: str) -> int:
    """Remove every token of `analyst`; returns how many went. Refuses an analyst without a token."""
    analyst = check_analyst(analyst)
    entries = _entries(path)
    kept = [entry for entry in entries if entry[0] != analyst]
    if len(kept) == len(entries):
        raise InputError(f"{analyst} has no token in {path}")
    _rewrite(path, kept)
    return len(entries) - len(kept)


@dataclass(frozen=True)
class AuthConfig:
    mode: str = "token"
    tokens_file: Path | None = None
    trusted_header: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in AUTH_MODES:
            raise InputError(f"auth mode must be one of {', '.join(AUTH_MODES)}, got {self.mode!r}")
        if self.mode == "token" and self.tokens_file is None:
            raise InputError("token auth needs a tokens file (--tokens-file or $DG_CONSOLE_TOKENS_FILE)")
        if self.mode == "trusted-header" and not self.trusted_header:
            raise InputError("trusted-header auth needs the header's name (--trusted-header)")

    def sign_in(self, token: str) -> tuple[str, str] | None:
        """(analyst, digest) for a valid token, else None."""
        digest = token_digest(token)
        # compare against every digest so the time taken does not say which prefix matched
        found = None
        for known, analyst in read_tokens(self.tokens_file).items():
            if hmac.compare_digest(known, digest):
                found = (analyst, known)
        return found

    def still_valid(self, analyst: str, digest: str) -> bool:
        """The token a session signed in with is still this analyst's (not revoked, not replaced)."""
        try:
            return read_tokens(self.tokens_file).get(digest) == analyst
        except InputError:
            return False  # a tokens file made unreadable or unsafe ends every session


@dataclass
class _Session:
    analyst: str
    digest: str
    expires_at: float


class SessionStore:
    """Server-side session records, keyed by a random id the signed cookie carries."""

    def __init__(self, max_age_s: float = SESSION_MAX_AGE_S) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self.max_age_s = max_age_s

    def open(self, analyst: str, digest: str) -> str:
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = _Session(analyst, digest, time.monotonic() + self.max_age_s)
        return session_id

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def analyst(self, session_id: str | None, auth: AuthConfig) -> str | None:
        """The session's analyst while the session is open, unexpired and its token still stands; else None (and
        the record is dropped)."""
        with self._lock:
            record = self._sessions.get(session_id or "")
        if record is None:
            return None
        if record.expires_at < time.monotonic() or not auth.still_valid(record.analyst, record.digest):
            self.close(session_id)
            return None
        return record.analyst
