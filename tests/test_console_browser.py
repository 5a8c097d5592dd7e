"""The console in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium; `make test` installs it
when missing) against the console served by uvicorn on a loopback port, over a synthetic reviewed lake written with
the catalog's schemas. Signs in, opens the queue, an account and its cluster, records a cluster decision whose note
holds markup, and checks enforcement_labels. Screenshots go to test_artifacts/console/ (git-ignored)."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from console.app import ConsoleConfig, create_app
from console.auth import AuthConfig, issue_token
from lake import catalog
from tests.helpers import reviewed_lake

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test_artifacts" / "console"
LAST_DAY = dt.date(2026, 3, 14)
NOTE = "Same rubric prompts and card <script>window.__pwned = 1</script>"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def served_console(settings, tmp_path):
    import uvicorn

    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: `apt-get install chromium` (make test does this)")
    info = reviewed_lake.write(settings, accounts=240, days=10, last_day=LAST_DAY)
    tokens = tmp_path / "analyst_tokens"
    token = issue_token(tokens, "alice")
    app = create_app(settings, ConsoleConfig(auth=AuthConfig(tokens_file=tokens)))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the console did not start")
        time.sleep(0.05)
    yield settings, info, token, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_analyst_reviews_the_queue_an_account_and_a_cluster_and_records_a_decision(served_console):
    from playwright.sync_api import expect, sync_playwright

    settings, info, token, base = served_console
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(base + "/")
        expect(page).to_have_url(f"{base}/login?next=%2F")
        page.fill("input[name=token]", token)
        page.screenshot(path=ARTIFACTS / "0-sign-in.png")
        page.click("button:text('Sign in')")

        expect(page.locator("h1")).to_have_text("Review queue")
        expect(page.locator(".daystatus")).to_contain_text("published")
        expect(page.locator(".daystatus")).to_contain_text(f"v{reviewed_lake.MODEL_VERSION}")
        rows = page.locator("table.queue tbody tr")
        expect(rows).to_have_count(50)
        page.screenshot(path=ARTIFACTS / "1-queue.png", full_page=False)

        page.select_option("select[name=tier]", "high")
        page.check("input[name=undecided]")
        page.click("button:text('Apply')")
        first = page.locator("table.queue tbody tr").first.locator("td.id a").first
        account = first.inner_text()
        assert account in info["campaign_accounts"]
        first.click()

        expect(page.locator("h1")).to_contain_text(account)
        expect(page.locator("table.reasons-table thead")).to_contain_text("Typical account")
        assert page.locator("table.reasons-table tbody tr").count() == 3
        expect(page.locator("svg.chart").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "2-account.png", full_page=True)

        page.locator("a.id[href^='/cluster/']").click()
        cluster = page.locator("h1 .id").inner_text()
        assert cluster in info["clusters"]
        members = page.locator("section.card:has(h2:text('Members')) tbody tr")
        expect(members).to_have_count(8)
        page.check("input[name=label][value=extraction]")
        page.fill("textarea[name=note]", NOTE)
        page.fill("input[name=campaign_id]", "camp-browser")
        page.click("button:text('Record decision')")
        expect(page.locator(".flash")).to_contain_text("Recorded extraction for 8 account(s)")
        expect(members.locator(".decision.d-extraction")).to_have_count(8)
        page.screenshot(path=ARTIFACTS / "3-cluster-after-decision.png", full_page=True)

        page.goto(f"{base}/account/{account}")
        expect(page.locator("td.note").first).to_have_text(NOTE)  # the markup shows as text
        assert page.evaluate("typeof window.__pwned") == "undefined"
        page.screenshot(path=ARTIFACTS / "4-account-after-decision.png", full_page=True)

        page.goto(base + "/?tier=high&undecided=1")
        assert account not in page.locator("table.queue").inner_text()
        browser.close()

    labels = [r for r in catalog.read_arrow(settings, "enforcement_labels").to_pylist() if r["source"] == "analyst"]
    assert len(labels) == 8 and {r["label"] for r in labels} == {"extraction"}
    assert {r["note"] for r in labels} == {NOTE} and {r["campaign_id"] for r in labels} == {"camp-browser"}
    audit = catalog.read_arrow(settings, "analyst_decisions").to_pylist()
    assert {(r["analyst"], r["target_kind"], r["target_id"]) for r in audit} == {("alice", "cluster", cluster)}
