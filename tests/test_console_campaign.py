"""The campaign page and the cluster page's link evidence, over HTTP and in a real browser (Playwright driving
Debian's Chromium against uvicorn on loopback): a synthetic reviewed lake (tests/helpers/reviewed_lake.py) plus stored
links between each cluster's members, with the real campaigns job run over its days. Screenshots go to
test_artifacts/console/ (git-ignored)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from console.app import ConsoleConfig, create_app
from console.auth import AuthConfig, issue_token
from lake import catalog
from tests.helpers import reviewed_lake as synthetic_lake
from tests.helpers.browser import ARTIFACTS, console_page
from tests.helpers.console_client import ORIGIN, form_csrf, signed_in

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
LAST_DAY = dt.date(2026, 3, 14)


def _campaign_lake(settings, accounts: int, days: int) -> dict:
    """The synthetic lake, a payment link between consecutive members of every cluster each day (an IP prefix too
    on every other pair), and the campaigns job over every day."""
    from jobs import campaigns

    info = synthetic_lake.write(settings, accounts=accounts, days=days, last_day=LAST_DAY)
    synthetic_lake.write_cluster_links(settings, info["days"])
    for day in info["days"]:
        campaigns.run(None, settings, day)
    return info


@pytest.fixture()
def signed_in_lake(settings, tmp_path):
    info = _campaign_lake(settings, accounts=48, days=3)
    tokens = tmp_path / "analyst_tokens"
    token = issue_token(tokens, "alice")
    return settings, info, signed_in(create_app(settings, ConsoleConfig(auth=AuthConfig(tokens_file=tokens))), token)


def test_cluster_evidence_links_to_a_campaign_whose_page_decides_for_every_member(signed_in_lake):
    settings, info, client = signed_in_lake
    cluster = info["clusters"][0]
    page = client.get(f"/cluster/{cluster}?date={LAST_DAY}")
    assert page.status_code == 200
    # acct-000001 holds the synthetic lake's one benign rule label
    assert "8 of 8 members share a payment method (7 linked pairs; 0 decided as extraction, 1 as benign)" in page.text
    assert "6 of 8 members sent traffic from the same uncrowded IP prefix as another member" in page.text
    assert "8 members: 0 already decided as extraction, 1 as benign, 7 undecided" in page.text
    campaign_id = re.search(r'href="/campaign/(cmp-[0-9a-f]+)"', page.text).group(1)

    campaign = client.get(f"/campaign/{campaign_id}")
    assert campaign.status_code == 200
    assert "seen 2026-03-12 to 2026-03-14 (3 days)" in campaign.text
    assert (
        "8 of 8 members share a payment method (7 linked pairs; 0 decided as extraction, 1 as benign)" in campaign.text
    )
    assert campaign.text.count("<td>continued") == 2 and campaign.text.count("<td>new") == 1
    for text in (synthetic_lake.RAW_PROMPT_MARKER, synthetic_lake.RAW_IP_MARKER):
        assert text not in page.text and text not in campaign.text

    done = client.post(
        "/decide",
        data={
            "csrf_token": form_csrf(campaign.text),
            "target_kind": "campaign",
            "target_id": campaign_id,
            "label": "extraction",
            "note": "one operator: shared card across the campaign",
            "next": f"/campaign/{campaign_id}",
        },
        headers={"origin": ORIGIN},
        follow_redirects=False,
    )
    assert done.status_code == 303
    labels = [r for r in catalog.read_arrow(settings, "enforcement_labels").to_pylist() if r["source"] == "analyst"]
    assert sorted(r["account_id"] for r in labels) == sorted(a for a in info["campaign_accounts"][:8])
    assert {r["campaign_id"] for r in labels} == {campaign_id}
    audit = catalog.read_arrow(settings, "analyst_decisions").to_pylist()
    assert {(r["target_kind"], r["target_id"]) for r in audit} == {("campaign", campaign_id)}
    after = client.get(f"/cluster/{cluster}?date={LAST_DAY}")
    assert "8 members: 8 already decided as extraction, 0 as benign, 0 undecided" in after.text
    assert client.get("/campaign/cmp-unknown").status_code == 404


def test_campaign_page_in_a_browser(settings, tmp_path):
    from playwright.sync_api import expect

    info = _campaign_lake(settings, accounts=240, days=10)
    with console_page(settings, tmp_path) as (page, token, base):
        page.goto(f"{base}/cluster/{info['clusters'][1]}")
        page.fill("input[name=token]", token)
        page.click("button:text('Sign in')")
        expect(page.locator("ul.evidence")).to_contain_text("8 of 8 members share a payment method")
        page.screenshot(path=ARTIFACTS / "5-cluster-evidence.png", full_page=True)
        page.locator("a.id[href^='/campaign/']").click()
        expect(page.locator("h1")).to_contain_text("Campaign cmp-")
        expect(page.locator("table.timeline tbody tr")).to_have_count(10)
        expect(page.locator("svg.chart")).to_be_visible()
        members = page.locator("section.card:has(h2:text('Members')) tbody tr")
        expect(members).to_have_count(8)
        page.screenshot(path=ARTIFACTS / "6-campaign.png", full_page=True)
        page.check("input[name=label][value=extraction]")
        page.fill("textarea[name=note]", "same card and prefixes for ten days")
        page.click("button:text('Record decision')")
        expect(page.locator(".flash")).to_contain_text("Recorded extraction for 8 account(s)")
        expect(members.locator(".decision.d-extraction")).to_have_count(8)
        page.screenshot(path=ARTIFACTS / "7-campaign-after-decision.png", full_page=True)
