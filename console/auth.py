"""Who is at the console: per-analyst tokens (the default) or a reverse proxy's identity header (opt-in).

Tokens file: one analyst per line, `<analyst> sha256:<hex digest of the token>`; blank lines and `#` comments are
ignored. Only digests are stored, so the file can be read by the console's service account without handing out
credentials. `distillguard review issue-token NAME` creates a token, appends its digest and prints the token once.

Trusted header (`--auth trusted-header --trusted-header X-Forwarded-User`): the console believes whatever that
header says, so it is only safe behind a proxy that authenticates every request and strips the header from
clients. It is never on unless asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from console.decisions import check_analyst
from lake.errors import InputError

AUTH_MODES = ("token", "trusted-header")
TOKEN_PREFIX = "sha256:"


def token_digest(token: str) -> str:
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def read_tokens(path: Path) -> dict[str, str]:
    """digest -> analyst."""
    if not path.is_file():
        raise InputError(
            f"no analyst tokens file at {path}; create one with "
            "`distillguard review issue-token <analyst> --tokens-file PATH`"
        )
    digests: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith(TOKEN_PREFIX):
            raise InputError(f"{path}:{number}: expected '<analyst> sha256:<hex>'")
        digests[parts[1]] = check_analyst(parts[0])
    if not digests:
        raise InputError(f"{path} lists no analysts; nobody could sign in")
    return digests


def issue_token(path: Path, analyst: str) -> str:
    """A new random token for `analyst`, its digest appended to the tokens file (created 0600 if missing)."""
    analyst = check_analyst(analyst)
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
    with path.open("a") as handle:
        handle.write(f"{analyst} {token_digest(token)}\n")
    return token


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

    def analyst_for_token(self, token: str) -> str | None:
        digest = token_digest(token)
        # compare against every digest so the time taken does not say which prefix matched
        found = None
        for known, analyst in read_tokens(self.tokens_file).items():
            if hmac.compare_digest(known, digest):
                found = analyst
        return found
