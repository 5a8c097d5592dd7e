"""`distillguard console` and `distillguard review ...`: the parser set-up and handlers. jobs/cli.py finds
`add_subcommands` through the `distillguard.commands` entry point (pyproject.toml), so jobs/ never imports console/. Heavy imports stay inside the handlers so `distillguard --help` stays fast.

  distillguard console [--host 127.0.0.1] [--port 8050] [--auth token|trusted-header] [--tokens-file F]
  distillguard review decide ACCOUNT | --cluster ID | --campaign ID --label extraction|benign|needs_more_info --note TEXT
                             [--campaign-id ID] [--date D] [--analyst NAME] [--allow-unknown]
  distillguard review audit [--date D] [--per-stratum N]
  distillguard review issue-token ANALYST [--tokens-file F]
  distillguard review list-tokens [--tokens-file F]
  distillguard review revoke-token ANALYST [--tokens-file F]
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lake.config import Settings

SettingsOf = Callable[[argparse.Namespace], "Settings"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def tokens_file(args, settings) -> Path:
    """--tokens-file, else $DG_CONSOLE_TOKENS_FILE, else <lake>/_console/analyst_tokens for a local lake."""
    from lake.errors import InputError

    value = getattr(args, "tokens_file", None) or os.environ.get("DG_CONSOLE_TOKENS_FILE")
    if value:
        return Path(value).expanduser().resolve()
    if not settings.is_local_lake:
        raise InputError("a remote lake needs --tokens-file or $DG_CONSOLE_TOKENS_FILE")
    return Path(settings.lake_root) / "_console" / "analyst_tokens"


def _cmd_console(settings_of: SettingsOf, args: argparse.Namespace) -> None:
    import uvicorn

    from console.app import ConsoleConfig, create_app
    from console.auth import AuthConfig, read_tokens
    from lake.errors import InputError

    settings = settings_of(args)
    if args.host not in LOOPBACK_HOSTS and not args.allow_remote:
        raise InputError(
            f"--host {args.host} listens beyond this machine; add --allow-remote to mean it "
            "(and put TLS in front: --secure-cookies)"
        )
    if args.auth == "token":
        auth = AuthConfig(mode="token", tokens_file=tokens_file(args, settings))
        read_tokens(auth.tokens_file)  # fail now, not at the first sign-in
    else:
        auth = AuthConfig(mode="trusted-header", trusted_header=args.trusted_header)
    config = ConsoleConfig(
        auth=auth,
        mlflow_ui_url=args.mlflow_ui or os.environ.get("DG_MLFLOW_UI_URL") or "http://127.0.0.1:5000",
        session_secret=os.environ.get("DG_CONSOLE_SECRET") or None,
        secure_cookies=args.secure_cookies,
    )
    listening = _bind(args.host, args.port)  # before the banner: a busy port is one line, not a started console
    print(
        f"distillguard console on http://{args.host}:{args.port} (lake {settings.lake_root}, auth {auth.mode})",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, config), log_level="warning", proxy_headers=False, lifespan="off")
    )
    server.run(sockets=[listening])


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; a port in use or a bad address is the operator's to change (exit 2)."""
    from lake.errors import InputError

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(128)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    return listening


def _cmd_decide(settings_of: SettingsOf, args: argparse.Namespace) -> None:
    from console.decisions import receipt_json, record_decision

    receipt = record_decision(
        settings_of(args),
        analyst=args.analyst or os.environ.get("DG_ANALYST") or getpass.getuser(),
        label=args.label,
        note=args.note,
        account_id=args.account_id,
        cluster_id=args.cluster,
        campaign=args.campaign,
        campaign_id=args.campaign_id,
        score_date=args.date,
        allow_unknown=args.allow_unknown,
    )
    print(receipt_json(receipt), flush=True)


def _cmd_audit(settings_of: SettingsOf, args: argparse.Namespace) -> None:
    from jobs.risk_query import latest_score_date
    from models import tier_audit

    settings = settings_of(args)
    day = args.date or latest_score_date(settings)
    per_stratum = tier_audit.PER_STRATUM if args.per_stratum is None else args.per_stratum
    drawn = tier_audit.draw_for_day(settings, day, per_stratum)
    decided = tier_audit.decided_as_of(settings, dt.datetime.now(dt.UTC).date())
    print(
        f"tier audit of {day} (model v{drawn['model_version'].iloc[0] if len(drawn) else '-'}): {len(drawn)} accounts "
        "drawn at random per tier band; decide every one (distillguard review decide ACCOUNT ...), and the next "
        "scored days' tiers move by what they show",
        flush=True,
    )
    for row in drawn.itertuples():
        standing = decided.get(row.account_id, "undecided")
        print(f"{row.account_id}\t{tier_audit.STRATA[row.stratum]}\t{row.score:.6f}\t{standing}", flush=True)


def _cmd_issue_token(settings_of: SettingsOf, args: argparse.Namespace) -> None:
    from console.auth import issue_token

    path = tokens_file(args, settings_of(args))
    token = issue_token(path, args.analyst)
    print(
        f"token for {args.analyst} (shown once; it replaces any earlier one; its digest is in {path}):\n{token}",
        flush=True,
    )


def _cmd_list_tokens(settings_of: SettingsOf, args: argparse.Namespace) -> None:
    from console.auth import list_tokens

    path = tokens_file(args, settings_of(args))
    entries = list_tokens(path)
    for analyst, digest_prefix in entries:
        print(f"{analyst}\t{digest_prefix}", flush=True)
    if not entries:
        print(f"no tokens in {path}", flush=True)


def _cmd_revoke_token(settings_of: SettingsOf, args: argparse.Namespace) -> None:
    from console.auth import revoke_token

    path = tokens_file(args, settings_of(args))
    count = revoke_token(path, args.analyst)
    print(f"revoked {count} token(s) of {args.analyst} in {path}; their console sessions have ended", flush=True)


def add_subcommands(sub, settings_of: SettingsOf) -> None:
    """Add `console` and `review` to the CLI's subparsers; `settings_of(args)` builds Settings from the global flags
    (jobs/cli.py owns them)."""
    from lake.config import optional_positive_int
    from lake.dates import parse_date

    p = sub.add_parser("console", help="serve the analysts' web console (loopback only unless asked)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"bind address (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port to listen on")
    p.add_argument("--allow-remote", action="store_true", help="allow a --host other than loopback")
    p.add_argument(
        "--auth",
        choices=("token", "trusted-header"),
        default="token",
        help="token: per-analyst tokens (default); trusted-header: a reverse proxy's identity header",
    )
    p.add_argument("--tokens-file", help="analyst tokens (default $DG_CONSOLE_TOKENS_FILE or <lake>/_console/...)")
    p.add_argument("--trusted-header", help="header carrying the analyst name, e.g. X-Forwarded-User")
    p.add_argument(
        "--mlflow-ui", help="MLflow UI base URL for model links (default $DG_MLFLOW_UI_URL or http://127.0.0.1:5000)"
    )
    p.add_argument("--secure-cookies", action="store_true", help="send the session cookie over HTTPS only")
    p.set_defaults(func=partial(_cmd_console, settings_of))

    review = sub.add_parser("review", help="record analyst decisions from scripts").add_subparsers(
        dest="review_command", required=True
    )
    p = review.add_parser(
        "decide",
        help="label an account or every member of a cluster or campaign (appends to "
        "enforcement_labels, source=analyst, plus an audit row)",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("account_id", nargs="?", help="the account to label")
    target.add_argument("--cluster", help="label every member of this cluster (as scored on --date)")
    target.add_argument("--campaign", help="label every latest member of this campaign (the campaigns table)")
    p.add_argument(
        "--label",
        required=True,
        choices=("extraction", "benign", "needs_more_info"),
        help="the decision; needs_more_info is recorded but never becomes a training label",
    )
    p.add_argument("--note", required=True, help="why (kept with the label and in the audit log)")
    p.add_argument("--campaign-id", dest="campaign_id", help="the campaign this decision attributes the account to")
    p.add_argument("--date", type=parse_date, help="the score date the decision is based on (default: latest)")
    p.add_argument("--analyst", help="who decides (default $DG_ANALYST or the login name)")
    p.add_argument(
        "--allow-unknown",
        dest="allow_unknown",
        action="store_true",
        help="decide an account the lake has never seen (known from outside, e.g. an abuse report)",
    )
    p.set_defaults(func=partial(_cmd_decide, settings_of))
    p = review.add_parser(
        "audit",
        help="draw accounts at random from each tier's band of a scored day for analysts to decide; their "
        "decisions relax or tighten that model version's tier bounds on later days (models/tier_audit.py)",
    )
    p.add_argument("--date", type=parse_date, help="the score date to draw from (default: latest)")
    p.add_argument(
        "--per-stratum",
        dest="per_stratum",
        type=optional_positive_int,
        help="accounts drawn per tier band (default 10, PER_STRATUM; empty: the default)",
    )
    p.set_defaults(func=partial(_cmd_audit, settings_of))
    p = review.add_parser("issue-token", help="create a console sign-in token for an analyst")
    p.add_argument("analyst", help="the analyst's login name the token signs in as")
    p.add_argument(
        "--tokens-file", help="analyst token digests (default $DG_CONSOLE_TOKENS_FILE or <lake>/_console/...)"
    )
    p.set_defaults(func=partial(_cmd_issue_token, settings_of))
    for name, help_text, handler in (
        ("list-tokens", "list the analysts who hold a console token (digest prefixes only)", _cmd_list_tokens),
        ("revoke-token", "remove an analyst's console token; their sessions end at once", _cmd_revoke_token),
    ):
        p = review.add_parser(name, help=help_text)
        if name == "revoke-token":
            p.add_argument("analyst", help="the analyst whose token goes")
        p.add_argument(
            "--tokens-file", help="analyst token digests (default $DG_CONSOLE_TOKENS_FILE or <lake>/_console/...)"
        )
        p.set_defaults(func=partial(handler, settings_of))
