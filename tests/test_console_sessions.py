"""Console sessions end when they should: sign-out, token revocation and a replaced token each end a session at
once, even for a copied cookie; tokens can be listed and revoked; a tokens file or folder that others can read
or write is refused; a busy port is one line and exit 2, before any banner."""

from __future__ import annotations

import datetime as dt
import os
import socket

import pytest

from console.app import ConsoleConfig, create_app
from console.auth import AuthConfig, issue_token
from jobs import cli
from tests.helpers import reviewed_lake as synthetic_lake
from tests.helpers.console_client import client_for, form_csrf, signed_in

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
LAST_DAY = dt.date(2026, 3, 14)


@pytest.fixture()
def console_lake(settings, tmp_path):
    synthetic_lake.write(settings, accounts=12, days=2, last_day=LAST_DAY)
    tokens = tmp_path / "console" / "analyst_tokens"
    token = issue_token(tokens, "alice")
    return settings, AuthConfig(tokens_file=tokens), token


def _replay(app, cookie: str):
    """A fresh client holding only a copied session cookie."""
    client = client_for(app, cookies={"dg_console": cookie})
    return client.get("/", follow_redirects=False)


def test_a_copied_cookie_stops_working_after_sign_out(console_lake):
    settings, auth, token = console_lake
    app = create_app(settings, ConsoleConfig(auth=auth, session_secret="fixed-secret"))
    client = signed_in(app, token)
    cookie = client.cookies["dg_console"]
    assert _replay(app, cookie).status_code == 200
    csrf = form_csrf(client.get("/").text)
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    replayed = _replay(app, cookie)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/login")

    cookie = signed_in(app, token).cookies["dg_console"]
    restarted = create_app(settings, ConsoleConfig(auth=auth, session_secret="fixed-secret"))
    assert _replay(restarted, cookie).status_code == 303, "a restart ends sessions even with a fixed secret"


def test_revoking_or_replacing_a_token_ends_its_sessions(console_lake, capsys):
    settings, auth, token = console_lake
    app = create_app(settings, ConsoleConfig(auth=auth))
    flags = ["--lake", settings.lake_root, "review"]
    cookie = signed_in(app, token).cookies["dg_console"]

    new_token = issue_token(auth.tokens_file, "alice")  # a replaced token: the old one and its sessions end
    assert _replay(app, cookie).status_code == 303
    stale = client_for(app)
    page = stale.get("/login")
    refused = stale.post("/login", data={"token": token, "csrf_token": form_csrf(page.text), "next": "/"})
    assert refused.status_code == 401

    cookie = signed_in(app, new_token).cookies["dg_console"]
    assert _replay(app, cookie).status_code == 200
    issue_token(auth.tokens_file, "bob")
    assert cli.main([*flags, "list-tokens", "--tokens-file", str(auth.tokens_file)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["alice", "bob"]  # one line per analyst, never two
    assert new_token not in "".join(listed)
    assert cli.main([*flags, "revoke-token", "alice", "--tokens-file", str(auth.tokens_file)]) == 0
    assert _replay(app, cookie).status_code == 303
    assert cli.main([*flags, "revoke-token", "alice", "--tokens-file", str(auth.tokens_file)]) == 2
    assert "alice has no token" in capsys.readouterr().err


def test_tokens_readable_by_others_are_refused_with_the_fix(console_lake, capsys):
    settings, auth, _ = console_lake
    argv = ["--lake", settings.lake_root, "console", "--port", "0", "--tokens-file", str(auth.tokens_file)]
    os.chmod(auth.tokens_file, 0o644)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "readable or writable by other users" in err and f"chmod 600 {auth.tokens_file}" in err
    assert len(err.strip().splitlines()) == 1
    os.chmod(auth.tokens_file, 0o600)
    os.chmod(auth.tokens_file.parent, 0o777)
    assert cli.main(argv) == 2
    assert f"chmod 700 {auth.tokens_file.parent}" in capsys.readouterr().err


def test_issue_token_makes_private_files_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        path = tmp_path / "fresh" / "tokens"
        issue_token(path, "carol")
    finally:
        os.umask(previous)
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert oct(path.parent.stat().st_mode & 0o777) == oct(0o700)


def test_a_busy_port_is_one_line_and_not_the_quality_gate_code(console_lake, capsys):
    settings, auth, _ = console_lake
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = cli.main(
            ["--lake", settings.lake_root, "console", "--port", str(port), "--tokens-file", str(auth.tokens_file)]
        )
    captured = capsys.readouterr()
    assert code == 2 and code != cli.EXIT_QUALITY_GATE_FAILED
    assert "distillguard console on" not in captured.out
    assert f"cannot listen on 127.0.0.1:{port}" in captured.err and "--port" in captured.err
