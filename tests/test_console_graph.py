"""The cluster page's graph and the account page's edge table (console/link_graph.py), over HTTP and in a real
browser (Playwright driving Debian's Chromium against uvicorn on loopback): a synthetic reviewed lake
(tests/helpers/reviewed_lake.py) with stored `account_edges` between every pair of each cluster's members.
Screenshots go to test_artifacts/console/ (git-ignored)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from console import link_graph
from console.app import CSP, ConsoleConfig, create_app
from console.auth import AuthConfig, issue_token
from tests.helpers import reviewed_lake as synthetic_lake
from tests.helpers.browser import ARTIFACTS, console_page
from tests.helpers.console_client import signed_in

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
LAST_DAY = dt.date(2026, 3, 14)
CLUSTER = "cl-00000"  # acct-000000 .. acct-000007; acct-000001 holds the lake's one benign label
PAIRS_IN_CLUSTER = 8 * 7 // 2


def _graph_lake(settings, with_edges: bool = True) -> dict:
    info = synthetic_lake.write(settings, accounts=48, days=2, last_day=LAST_DAY)
    if with_edges:
        synthetic_lake.write_cluster_edges(settings, info["days"])
    return info


def _client(settings, tmp_path):
    tokens = tmp_path / "analyst_tokens"
    token = issue_token(tokens, "alice")
    return signed_in(create_app(settings, ConsoleConfig(auth=AuthConfig(tokens_file=tokens))), token)


def _graph_json(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="cluster-graph-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_pairs_are_grouped_with_their_artefacts_strongest_first(settings):
    _graph_lake(settings)
    members = [synthetic_lake.account_id(i) for i in range(8)]
    pairs = link_graph.cluster_pairs(settings, members, LAST_DAY)
    assert len(pairs) == PAIRS_IN_CLUSTER
    strengths = [p["strength"] for p in pairs]
    assert strengths == sorted(strengths, reverse=True)
    # consecutive pairs from an odd member share an IP prefix (2 accounts) and the cluster's card (8 accounts)
    top = pairs[0]
    assert (top["src"], top["dst"], top["kinds"], top["in_cluster_graph"]) == (
        members[1],
        members[2],
        ["ip_prefix", "payment"],
        True,
    )
    assert [(a["kind"], a["accounts"]) for a in top["artefacts"]] == [("ip_prefix", 2), ("payment", 8)]
    payment = synthetic_lake.artefact_of("payment", CLUSTER)
    assert top["artefacts"][1]["artefact"] == payment[: link_graph.ARTEFACT_SHOWN_CHARS] + "…"
    assert top["artefacts"][1]["first_seen"] == LAST_DAY - dt.timedelta(days=1)
    assert top["artefacts"][1]["last_seen"] == LAST_DAY
    # an account's own pairs name the other end; a member of another cluster is not among them
    mine = link_graph.account_pairs(settings, members[3], LAST_DAY)
    assert sorted(p["other"] for p in mine) == sorted(m for m in members if m != members[3])
    assert link_graph.cluster_pairs(settings, members[:1], LAST_DAY) == []


def test_cluster_page_embeds_the_graph_and_says_when_edges_are_capped(settings, tmp_path, monkeypatch):
    _graph_lake(settings)
    client = _client(settings, tmp_path)
    page = client.get(f"/cluster/{CLUSTER}?date={LAST_DAY}")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CSP
    assert '<script src="/static/vendor/cytoscape.min.js" defer></script>' in page.text
    assert f"Showing all <b>{PAIRS_IN_CLUSTER}</b> linked pairs." in page.text
    graph = _graph_json(page.text)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert len(nodes) == 8 and len(graph["edges"]) == graph["total_edges"] == PAIRS_IN_CLUSTER
    assert nodes["acct-000001"]["decision"] == "benign" and nodes["acct-000002"]["decision"] == "none"
    assert nodes["acct-000000"]["tier"] in ("critical", "high", "elevated", "low")
    assert nodes["acct-000003"]["href"] == f"/account/acct-000003?date={LAST_DAY}"
    assert graph["edges"][0]["artefacts"][0] | {"artefact": None} == {
        "kind": "ip_prefix",
        "artefact": None,
        "accounts": 2,
        "first_seen": (LAST_DAY - dt.timedelta(days=1)).isoformat(),
        "last_seen": LAST_DAY.isoformat(),
    }
    # the full pseudonyms, raw prompts and raw IPs never reach the page
    for text in (
        synthetic_lake.artefact_of("payment", CLUSTER),
        synthetic_lake.RAW_PROMPT_MARKER,
        synthetic_lake.RAW_IP_MARKER,
    ):
        assert text not in page.text
    for path in ("/static/vendor/cytoscape.min.js", "/static/cluster_graph.js"):
        served = client.get(path)
        assert served.status_code == 200 and "javascript" in served.headers["content-type"]

    monkeypatch.setattr(link_graph, "MAX_DRAWN_EDGES", 10)
    capped = client.get(f"/cluster/{CLUSTER}?date={LAST_DAY}")
    assert f"Showing the <b>10</b> strongest of <b>{PAIRS_IN_CLUSTER}</b> linked pairs" in capped.text
    graph = _graph_json(capped.text)
    assert len(graph["edges"]) == 10 and graph["total_edges"] == PAIRS_IN_CLUSTER
    # the 7 pairs the clusters kept are the strongest, so all of them are drawn
    assert sum(e["in_cluster_graph"] for e in graph["edges"]) == 7


def test_account_page_lists_its_edges(settings, tmp_path):
    _graph_lake(settings)
    client = _client(settings, tmp_path)
    page = client.get(f"/account/acct-000001?date={LAST_DAY}")
    assert page.status_code == 200
    table = page.text.split('<table class="edges">', 1)[1].split("</table>", 1)[0]
    others = re.findall(r'<a href="/account/(acct-\d+)\?date=', table)
    assert others[0] == "acct-000002" and sorted(others) == [f"acct-00000{i}" for i in range(8) if i != 1]
    ip_prefix = synthetic_lake.artefact_of("ip_prefix", "acct-000001")[: link_graph.ARTEFACT_SHOWN_CHARS]
    assert f"ip prefix <code>{ip_prefix}…</code>" in table
    assert table.count("(not kept by the clusters)") == 5  # acct-000003 .. acct-000007
    assert synthetic_lake.artefact_of("ip_prefix", "acct-000001") not in page.text
    alone = client.get(f"/account/acct-000008?date={LAST_DAY}")
    assert "No stored edges for this account on 2026-03-14." in alone.text


def test_pages_say_when_no_edges_are_stored(settings, tmp_path):
    _graph_lake(settings, with_edges=False)
    client = _client(settings, tmp_path)
    page = client.get(f"/cluster/{CLUSTER}?date={LAST_DAY}")
    assert page.status_code == 200 and "No stored edges (<code>account_edges</code>)" in page.text
    assert "cytoscape" not in page.text


@pytest.mark.browser
def test_clicking_an_edge_shows_what_joined_the_accounts(settings, tmp_path):
    from playwright.sync_api import expect

    _graph_lake(settings)
    with console_page(settings, tmp_path) as (page, token, base):
        errors: list[str] = []  # a script the CSP refuses, or one that throws, shows here
        page.on(
            "console",
            lambda m: (
                errors.append(f"{m.text} {m.location.get('url')}")
                if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
                else None
            ),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/cluster/{CLUSTER}?date={LAST_DAY}")
        page.fill("input[name=token]", token)
        page.click("button:text('Sign in')")
        graph = page.locator("#cluster-graph[data-ready='1']")
        expect(graph).to_be_visible()
        assert page.evaluate("document.getElementById('cluster-graph').cy.nodes().length") == 8
        # click the middle of the strongest drawn link whose middle no member covers (a click on a member opens
        # its account page instead)
        x, y = page.evaluate(
            "(() => { const cy = document.getElementById('cluster-graph').cy;"
            " const clear = (p) => cy.nodes().every((n) => { const b = n.renderedBoundingBox();"
            " return p.x < b.x1 - 6 || p.x > b.x2 + 6 || p.y < b.y1 - 6 || p.y > b.y2 + 6; });"
            " const free = cy.edges().filter((e) => clear(e.renderedMidpoint()));"
            " const p = free.max((e) => e.data('strength')).ele.renderedMidpoint(); return [p.x, p.y]; })()"
        )
        box = graph.bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        panel = page.locator("#edge-panel")
        selected = page.evaluate(
            "(() => { const e = document.getElementById('cluster-graph').cy.edges(':selected');"
            " return e.length === 1 ? [e.data('source'), e.data('target')] : null; })()"
        )
        assert selected is not None, "the click selected no link"
        expect(panel.locator("h3")).to_have_text(f"{selected[0]} — {selected[1]}")
        payment = synthetic_lake.artefact_of("payment", CLUSTER)[: link_graph.ARTEFACT_SHOWN_CHARS] + "…"
        expect(panel).to_contain_text("Linked by")
        expect(panel.locator("tbody")).to_contain_text(f"payment{payment}8")
        expect(panel).to_contain_text("Accounts sharing it")
        page.screenshot(path=ARTIFACTS / "8-cluster-graph-edge.png", full_page=True)
        panel.locator(f"a:text('open {selected[0]}')").click()
        expect(page.locator("h1")).to_contain_text(selected[0])
        expect(page.locator("table.edges tbody tr").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "9-account-edges.png", full_page=True)
        assert errors == []
