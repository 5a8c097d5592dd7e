"""The console over HTTP (Starlette's test client, real app, real Delta tables): authentication, CSRF and
cross-site refusal, escaping, no raw prompts or IPs, loopback by default, the queue reflecting a decision at once,
the model page's MLflow link, and decisions made in the console entering the next point-in-time training set."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow.compute as pc
import pytest

from console.app import CSP, ConsoleConfig, create_app
from console.auth import AuthConfig, issue_token
from jobs import cli
from lake import catalog
from tests.helpers import reviewed_lake
from tests.helpers.console_client import ORIGIN, client_for, form_csrf, signed_in

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
LAST_DAY = dt.date(2026, 3, 14)


@pytest.fixture()
def console_lake(settings, tmp_path):
    info = reviewed_lake.write(settings, accounts=48, days=3, last_day=LAST_DAY)
    tokens = tmp_path / "analyst_tokens"
    token = issue_token(tokens, "alice")
    return settings, info, AuthConfig(tokens_file=tokens), token


def _client(settings, auth):
    return client_for(create_app(settings, ConsoleConfig(auth=auth)))


def _signed_in(settings, auth, token):
    return signed_in(create_app(settings, ConsoleConfig(auth=auth)), token)


def _analyst_labels(settings):
    if not catalog.exists(settings, "enforcement_labels"):
        return []
    return [r for r in catalog.read_arrow(settings, "enforcement_labels").to_pylist() if r["source"] == "analyst"]


def _decide_from_account_page(client, account_id: str, note: str, next_page: str):
    """Decide one account extraction through the account page's form, as an analyst does."""
    return client.post(
        "/decide",
        data={
            "csrf_token": form_csrf(client.get(f"/account/{account_id}").text),
            "target_kind": "account",
            "target_id": account_id,
            "label": "extraction",
            "note": note,
            "next": next_page,
        },
    )


def test_nothing_without_sign_in_and_no_write_without_credentials(console_lake):
    settings, _, auth, token = console_lake
    anonymous = _client(settings, auth)
    for path in ("/", "/account/acct-000000", "/cluster/cl-00000", "/model", "/queue.csv", "/explore", "/audit"):
        response = anonymous.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
    refused = anonymous.post(
        "/decide",
        data={"target_kind": "account", "target_id": "acct-000000", "label": "extraction", "note": "x"},
        follow_redirects=False,
    )
    assert refused.status_code == 401
    assert anonymous.post("/audit/draw", data={"date": "2026-03-14"}, follow_redirects=False).status_code == 401
    page = anonymous.get("/login")
    wrong = anonymous.post("/login", data={"token": token + "x", "csrf_token": form_csrf(page.text), "next": "/"})
    assert wrong.status_code == 401 and "unknown token" in wrong.text
    assert _analyst_labels(settings) == []


def test_cross_site_and_csrf_less_posts_are_refused(console_lake):
    settings, _, auth, token = console_lake
    client = _signed_in(settings, auth, token)
    csrf = form_csrf(client.get("/account/acct-000000").text)
    form = {
        "target_kind": "account",
        "target_id": "acct-000000",
        "label": "extraction",
        "note": "x",
        "score_date": LAST_DAY.isoformat(),
        "next": "/",
    }
    # a page on another site auto-submitting a form: the browser sends the session cookie... and its Origin
    assert (
        client.post(
            "/decide",
            data={**form, "csrf_token": csrf},
            headers={"Origin": "https://evil.example"},
            follow_redirects=False,
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/decide",
            data={**form, "csrf_token": csrf},
            headers={"Sec-Fetch-Site": "cross-site"},
            follow_redirects=False,
        ).status_code
        == 403
    )
    assert client.post("/decide", data=form, follow_redirects=False).status_code == 403  # no token
    assert client.post("/decide", data={**form, "csrf_token": "forged"}, follow_redirects=False).status_code == 403
    assert _analyst_labels(settings) == []
    accepted = client.post(
        "/decide", data={**form, "csrf_token": csrf}, headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert accepted.status_code == 303 and len(_analyst_labels(settings)) == 1


def test_markup_renders_inert_ids_are_validated_and_raw_prompts_and_ips_never_show(console_lake):
    settings, info, auth, token = console_lake
    client = _signed_in(settings, auth, token)
    account = "acct-000000"
    page = client.get(f"/account/{account}")
    assert page.headers["Content-Security-Policy"] == CSP and "script-src 'self';" in CSP and "unsafe" not in CSP
    note = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
    client.post(
        "/decide",
        data={
            "csrf_token": form_csrf(page.text),
            "target_kind": "account",
            "target_id": account,
            "label": "needs_more_info",
            "note": note,
            "next": f"/account/{account}",
        },
    )
    shown = client.get(f"/account/{account}").text
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in shown
    assert "<script" not in shown and "<img" not in shown
    bad = client.get("/account/%3Cscript%3Ealert(1)")
    assert bad.status_code == 400 and "<script>" not in bad.text and "&lt;script&gt;" in bad.text
    assert client.get("/cluster/..%2F..%2Fetc").status_code in (400, 404)
    assert client.get("/?tier=<b>").status_code == 400
    pages = [
        client.get(path).text
        for path in (
            "/",
            "/queue.csv",
            *(f"/account/acct-00000{i}" for i in range(3)),
            f"/cluster/{info['clusters'][0]}",
        )
    ]
    for text in pages:
        assert reviewed_lake.RAW_PROMPT_MARKER not in text and reviewed_lake.RAW_IP_MARKER not in text


def test_trusted_header_mode_is_explicit_and_still_needsform_csrf(console_lake):
    settings, _, _, _ = console_lake
    with pytest.raises(ValueError, match="header's name"):
        AuthConfig(mode="trusted-header")
    client = _client(settings, AuthConfig(mode="trusted-header", trusted_header="X-Forwarded-User"))
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"X-Forwarded-User": "bad user<"}).status_code == 401
    page = client.get("/account/acct-000003", headers={"X-Forwarded-User": "dora"})
    assert page.status_code == 200 and "dora" in page.text
    form = {"target_kind": "account", "target_id": "acct-000003", "label": "benign", "note": "known customer"}
    assert (
        client.post("/decide", data=form, headers={"X-Forwarded-User": "dora"}, follow_redirects=False).status_code
        == 403
    )
    done = client.post(
        "/decide",
        data={**form, "csrf_token": form_csrf(page.text)},
        headers={"X-Forwarded-User": "dora"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    [audit] = catalog.read_arrow(settings, "analyst_decisions").to_pylist()
    assert audit["analyst"] == "dora"


def test_console_listens_on_loopback_unless_told_otherwise(console_lake, capsys):
    settings, _, auth, _ = console_lake
    args = cli.build_parser().parse_args(["console"])
    assert (args.host, args.auth) == ("127.0.0.1", "token")
    code = cli.main(
        ["--lake", settings.lake_root, "console", "--host", "0.0.0.0", "--tokens-file", str(auth.tokens_file)]
    )
    assert code == 2 and "--allow-remote" in capsys.readouterr().err
    missing = cli.main(["--lake", settings.lake_root, "console", "--tokens-file", "/nonexistent/tokens"])
    assert missing == 2 and "no analyst tokens file" in capsys.readouterr().err


def test_queue_filters_pages_and_reflects_a_decision_at_once(console_lake):
    settings, info, auth, token = console_lake
    client = _signed_in(settings, auth, token)
    queue = client.get("/")
    assert "published" in queue.text and f"{reviewed_lake.MODEL_NAME} v{reviewed_lake.MODEL_VERSION}" in queue.text
    flagged = client.get("/?tier=high&undecided=1").text
    top = re.findall(r'href="/account/(acct-\d+)\?', flagged)
    assert top and set(top) <= set(info["campaign_accounts"])
    reasoning = set(re.findall(r'href="/account/(acct-\d+)\?', client.get("/?capability=reasoning").text))
    coding = set(re.findall(r'href="/account/(acct-\d+)\?', client.get("/?capability=coding").text))
    assert set(info["campaign_accounts"]) <= reasoning and not coding & set(info["campaign_accounts"]) and coding
    second = client.get("/?page=2").text
    assert "← previous" in second
    chosen = top[0]
    _decide_from_account_page(client, chosen, "confirmed", next_page="/")
    after = client.get("/?tier=high&undecided=1").text
    assert f"/account/{chosen}?" not in after
    export = client.get("/queue.csv?tier=high")
    assert export.headers["content-type"].startswith("text/csv")
    rows = export.text.splitlines()
    assert rows[0].startswith("rank,score_date,account_id") and any(chosen in r and "extraction" in r for r in rows)


def test_the_exploration_page_lists_undecided_accounts_and_drops_one_once_decided(console_lake):
    settings, _, auth, token = console_lake
    client = _signed_in(settings, auth, token)
    assert f'href="/explore?date={LAST_DAY}"' in client.get("/").text
    page = client.get("/explore")
    assert page.status_code == 200 and "Unlike anything decided" in page.text
    listed = re.findall(r'<td class="id"><a href="/account/(acct-\d+)\?', page.text)
    decided = {r["account_id"] for r in catalog.read_arrow(settings, "enforcement_labels").to_pylist()}
    assert listed and not set(listed) & decided
    chosen = listed[0]
    _decide_from_account_page(client, chosen, "a new campaign", next_page="/explore")
    after = client.get("/explore").text
    assert f'<td class="id"><a href="/account/{chosen}?' not in after
    assert client.get("/explore?date=1999-01-01").status_code == 404


@pytest.mark.slow
def test_model_page_links_the_champion_run_and_the_experiment_opens_on_runs(console_lake, session_settings):
    import mlflow

    from models import registry

    lake_settings, _, auth, token = console_lake
    # the session's MLflow store (creating a SQLite store runs every migration: slow), under a model name of its own
    settings = lake_settings.model_copy(
        update={"mlflow_tracking_uri": session_settings.mlflow_tracking_uri, "model_name": "console-model-page-test"}
    )
    client_ml = registry.configure(settings)
    experiment = registry.experiment_id(client_ml, settings)
    assert client_ml.get_experiment(experiment).tags[registry.TAG_EXPERIMENT_KIND] == "custom_model_development"
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_metrics({"pr_auc": 0.81, "tier_recall/high": 0.25, "tier_recall/elevated": 0.6})
    client_ml.create_registered_model(settings.model_name)
    version = client_ml.create_model_version(
        settings.model_name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    ).version
    registry.set_version_tags(
        client_ml,
        settings.model_name,
        version,
        {registry.TAG_TIER_BOUNDS: '[["critical", 0.93], ["high", 0.71], ["elevated", 0.4]]'},
    )
    registry.set_alias(client_ml, settings.model_name, registry.CHAMPION, version)
    page = _signed_in(settings, auth, token).get("/model").text
    assert f"{settings.model_name} v{version}" in page
    assert f'href="http://127.0.0.1:5000/#/experiments/{experiment}/runs/{run.info.run_id}"' in page
    assert "25.0%" in page and "60.0%" in page and "0.930" in page


@pytest.mark.slow
def test_decisions_made_in_the_console_enter_the_next_training_set(spark, settings, tmp_path):
    """Decisions recorded through the console's form today label yesterday's and earlier snapshots in the next
    `training-set --as-of`; needs_more_info does not become a label."""
    from jobs import train

    today = dt.datetime.now(dt.UTC).date()
    info = reviewed_lake.write(settings, accounts=40, days=6, last_day=today - dt.timedelta(days=1))
    as_of = today + dt.timedelta(days=3)  # three observed label days for yesterday's snapshot
    before = train.build(spark, settings, as_of).frame
    extraction, unsure, cleared = "acct-000003", "acct-000005", info["campaign_accounts"][0]
    assert before.loc[before["account_id"].isin([extraction, unsure]), "label"].sum() == 0

    tokens = tmp_path / "tokens"
    client = _signed_in(settings, AuthConfig(tokens_file=tokens), issue_token(tokens, "alice"))
    for account, label, campaign in (
        (extraction, "extraction", "camp-Z"),
        (unsure, "needs_more_info", ""),
        (cleared, "extraction", ""),
        (cleared, "needs_more_info", ""),
    ):
        page = client.get(f"/account/{account}")
        done = client.post(
            "/decide",
            data={
                "csrf_token": form_csrf(page.text),
                "target_kind": "account",
                "target_id": account,
                "label": label,
                "note": f"{label} via console",
                "campaign_id": campaign,
            },
            follow_redirects=False,
        )
        assert done.status_code == 303

    after = train.build(spark, settings, as_of).frame
    labelled = after[after["account_id"] == extraction]
    assert len(labelled) == 6 and set(labelled["label"]) == {1} and set(labelled["campaign_id"]) == {"camp-Z"}
    assert set(after.loc[after["account_id"] == unsure, "label"]) == {0}  # still an ordinary negative
    # extraction then needs_more_info: the extraction still stands for training
    assert set(after.loc[after["account_id"] == cleared, "label"]) == {1}
    assert len(after) == len(before)


def test_a_cluster_scored_without_its_cluster_risk_row_still_has_a_page(console_lake):
    """A score run killed between its two tables leaves members in account_risk and no cluster_risk row: the
    cluster page shows the members with no cluster score, not an error."""
    settings, info, auth, token = console_lake
    cluster = info["clusters"][0]
    risk = catalog.read_arrow(settings, "cluster_risk")
    day = max(risk.column("score_date").to_pylist())
    on_day = catalog.read_arrow(settings, "cluster_risk", filters=[("score_date", "=", day)])
    others = on_day.filter(pc.field("cluster_id") != cluster)
    catalog.write_arrow(settings, "cluster_risk", others, partition_value=day)
    page = _signed_in(settings, auth, token).get(f"/cluster/{cluster}?date={day.isoformat()}")
    assert page.status_code == 200
    assert "cluster score <b>-</b>" in page.text and "How the accounts are linked" in page.text


def test_the_audit_page_offers_a_draw_on_a_lake_never_audited(console_lake):
    settings, _, auth, token = console_lake
    page = _signed_in(settings, auth, token).get(f"/audit?date={LAST_DAY}")
    assert page.status_code == 200 and "No audit was drawn from this day." in page.text
    assert 'action="/audit/draw"' in page.text
