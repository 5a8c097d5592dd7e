"""The console served by uvicorn on a free loopback port, for the Playwright tests, and how they launch Debian's
Chromium (/usr/bin/chromium; `make test` installs it). Screenshots go to the git-ignored test_artifacts/console/."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test_artifacts" / "console"


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """Serve the ASGI app on 127.0.0.1 until the block ends; yields its base URL."""
    import uvicorn

    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the console did not start"
        time.sleep(0.05)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def console_page(settings, tmp_path: Path) -> Iterator[tuple[object, str, str]]:
    """A signed-out Chromium page (1360x900) next to the console served over `settings`, with one analyst token
    issued for "alice"; yields (page, token, base URL)."""
    from playwright.sync_api import sync_playwright

    from console.app import ConsoleConfig, create_app
    from console.auth import AuthConfig, issue_token

    tokens = tmp_path / "analyst_tokens"
    token = issue_token(tokens, "alice")
    with served(create_app(settings, ConsoleConfig(auth=AuthConfig(tokens_file=tokens)))) as base:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield browser.new_page(viewport={"width": 1360, "height": 900}), token, base
            finally:
                browser.close()
