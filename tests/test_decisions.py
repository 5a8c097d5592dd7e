"""Analyst decisions into enforcement_labels + the audit log: one commit per decision, cluster decisions, reversals,
validation, concurrent writers in separate processes, and the `review decide` / `risk` command lines."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from console import decisions
from jobs import cli
from lake import catalog
from lake.errors import InputError, MissingInputError
from tests.helpers import reviewed_lake

LAST_DAY = dt.date(2026, 3, 14)


@pytest.fixture()
def lake(settings):
    info = reviewed_lake.write(settings, accounts=48, days=3, last_day=LAST_DAY)
    return settings, info


def _labels(settings):
    return catalog.read_arrow(settings, "enforcement_labels").to_pylist()


def _version(settings, name):
    return DeltaTable(settings.table_uri(name)).version()


def test_account_decision_appends_one_label_and_an_audit_row_with_what_the_analyst_saw(lake):
    settings, _ = lake
    before = _version(settings, "enforcement_labels")
    # acct-000001 carries a rule label "benign" from the synthetic lake: that is its previous standing
    receipt = decisions.record_decision(
        settings,
        analyst="alice",
        account_id="acct-000001",
        label="extraction",
        note="same rubric template as campaign B",
        campaign_id="camp-B",
    )
    assert _version(settings, "enforcement_labels") == before + 1
    analyst_rows = [r for r in _labels(settings) if r["source"] == "analyst"]
    assert [(r["account_id"], r["label"], r["campaign_id"], r["note"]) for r in analyst_rows] == [
        ("acct-000001", "extraction", "camp-B", "same rubric template as campaign B")
    ]
    commit = DeltaTable(settings.table_uri("enforcement_labels")).history(limit=1)[0]
    assert (commit["decision_id"], commit["analyst"], commit["target"]) == (
        receipt.decision_id,
        "alice",
        "account:acct-000001",
    )
    [audit] = catalog.read_arrow(settings, "analyst_decisions").to_pylist()
    risk = next(
        r
        for r in catalog.read_arrow(settings, "account_risk").to_pylist()
        if r["account_id"] == "acct-000001" and r["score_date"] == LAST_DAY
    )
    assert audit["analyst"] == "alice" and audit["label"] == "extraction" and audit["target_kind"] == "account"
    assert audit["previous_label"] == "benign" and audit["previous_decided_at"] is not None
    assert (audit["score_date"], audit["score"], audit["tier"], audit["model_version"]) == (
        LAST_DAY,
        risk["score"],
        risk["tier"],
        reviewed_lake.MODEL_VERSION,
    )
    assert audit["decision_id"] == receipt.decision_id


def test_cluster_decision_labels_every_member_in_one_commit_and_reversals_stand_latest(lake):
    settings, info = lake
    cluster = info["clusters"][0]
    members = sorted(
        r["account_id"]
        for r in catalog.read_arrow(settings, "account_risk").to_pylist()
        if r["cluster_id"] == cluster and r["score_date"] == LAST_DAY
    )
    assert len(members) == 8
    before = _version(settings, "enforcement_labels")
    receipt = decisions.record_decision(
        settings,
        analyst="bob",
        cluster_id=cluster,
        label="extraction",
        note="shared payment fingerprint, identical rubric prompts",
    )
    assert _version(settings, "enforcement_labels") == before + 1  # one commit for all eight labels
    assert sorted(receipt.account_ids) == members
    labelled = [r for r in _labels(settings) if r["source"] == "analyst"]
    assert sorted(r["account_id"] for r in labelled) == members
    assert len({r["decided_at"] for r in labelled}) == 1
    audit = catalog.read_arrow(settings, "analyst_decisions")
    assert sorted(audit["account_id"].to_pylist()) == members
    assert set(audit["target_id"].to_pylist()) == {cluster} and set(audit["target_kind"].to_pylist()) == {"cluster"}

    # a reversal on appeal: the latest decision is the standing, and the audit row remembers the one before
    decisions.record_decision(
        settings, analyst="carol", account_id=members[0], label="benign", note="appeal: university eval harness"
    )
    standing = decisions.latest_decisions(settings, members)
    assert standing[members[0]]["label"] == "benign"
    assert {standing[m]["label"] for m in members[1:]} == {"extraction"}
    assert decisions.decision_log(settings, members[0])[0]["previous_label"] == "extraction"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"account_id": "acct-000002", "label": "fraud"}, "label must be one of"),
        ({"account_id": "acct-000002", "note": "   "}, "needs a note"),
        ({"account_id": "<script>alert(1)</script>"}, "account_id must be"),
        ({"account_id": "acct-000002", "campaign_id": "camp A"}, "campaign id must be"),
        ({"account_id": "acct-000002", "analyst": "eve<script>"}, "analyst must be"),
        ({"account_id": "acct-000002", "cluster_id": "cl-00000"}, "exactly one account, one cluster or one campaign"),
    ],
)
def test_invalid_decisions_are_refused_and_write_nothing(lake, kwargs, message):
    settings, _ = lake
    args = {"analyst": "alice", "label": "benign", "note": "looks fine", **kwargs}
    before = _version(settings, "enforcement_labels")
    with pytest.raises(InputError, match=message):
        decisions.record_decision(settings, **args)
    assert _version(settings, "enforcement_labels") == before
    assert not catalog.exists(settings, "analyst_decisions")


def test_a_cluster_without_members_that_day_is_a_missing_input(lake):
    settings, _ = lake
    with pytest.raises(MissingInputError, match="no members"):
        decisions.record_decision(settings, analyst="alice", cluster_id="cl-99999", label="benign", note="x")


def _decide_after_barrier(lake_root: str, mlflow_uri: str, worker: int, barrier, per_worker: int) -> None:
    from lake.config import load_settings

    settings = load_settings(lake_root=lake_root, mlflow_tracking_uri=mlflow_uri)
    barrier.wait()
    for n in range(per_worker):
        decisions.record_decision(
            settings,
            analyst=f"analyst-{worker}",
            account_id=f"acct-{worker * 5 + n:06d}",
            label="needs_more_info" if n % 2 else "extraction",
            note=f"w{worker} n{n}",
        )


def test_concurrent_decisions_from_separate_processes_lose_and_duplicate_nothing(lake):
    settings, _ = lake
    workers, per_worker = 4, 3
    # forkserver: fresh processes (no inherited delta-rs runtime threads) forked from a server that has already
    # imported the decision code, so they start in milliseconds and really do race
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["console.decisions", "lake.config"])
    barrier = context.Barrier(workers)
    processes = [
        context.Process(
            target=_decide_after_barrier,
            args=(settings.lake_root, settings.mlflow_tracking_uri, w, barrier, per_worker),
        )
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * workers
    labelled = [(r["account_id"], r["note"]) for r in _labels(settings) if r["source"] == "analyst"]
    expected = {(f"acct-{w * 5 + n:06d}", f"w{w} n{n}") for w in range(workers) for n in range(per_worker)}
    assert sorted(labelled) == sorted(expected)  # every decision once: nothing lost, nothing doubled
    audit = catalog.read_arrow(settings, "analyst_decisions")
    assert audit.num_rows == workers * per_worker
    assert len(set(audit["decision_id"].to_pylist())) == workers * per_worker
    # one label commit per decision, each carrying its decision id
    commits = DeltaTable(settings.table_uri("enforcement_labels")).history()
    committed = [c["decision_id"] for c in commits if "decision_id" in c]
    assert sorted(committed) == sorted(audit["decision_id"].to_pylist())
    retried = [c for c in commits if c.get("operationMetrics", {}).get("num_retries")]
    print(f"{len(retried)} of {workers * per_worker} label commits retried after losing a race")


def _cli(settings, capsys, *argv):
    """The real `distillguard` entry point in this process: exit code, stdout, stderr."""
    code = cli.main(["--lake", settings.lake_root, "--mlflow-uri", settings.mlflow_tracking_uri, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_review_decide_and_risk_cluster_on_the_command_line(lake, capsys):
    settings, info = lake
    cluster = info["clusters"][1]
    code, out, err = _cli(
        settings,
        capsys,
        "review",
        "decide",
        "--cluster",
        cluster,
        "--label",
        "extraction",
        "--note",
        "scripted bulk decision",
        "--campaign-id",
        "camp-C",
        "--analyst",
        "scripted-job",
    )
    assert code == 0, err
    receipt = json.loads(out)
    assert len(receipt["accounts"]) == 8 and receipt["label"] == "extraction"
    labelled = [r for r in _labels(settings) if r["source"] == "analyst"]
    assert sorted(r["account_id"] for r in labelled) == sorted(receipt["accounts"])
    assert {r["campaign_id"] for r in labelled} == {"camp-C"}

    code, out, err = _cli(settings, capsys, "review", "decide", "bad id!", "--label", "benign", "--note", "x")
    assert code == 2 and err.count("\n") == 1 and "account_id must be" in err

    code, out, err = _cli(settings, capsys, "risk", "cluster", cluster, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["cluster"]["cluster_id"] == cluster and document["cluster"]["n_accounts"] == 8
    assert sorted(m["account_id"] for m in document["members"]) == sorted(receipt["accounts"])
    assert all(m["link_types"] for m in document["members"])
    scores = [m["score"] for m in document["members"]]
    assert scores == sorted(scores, reverse=True)
    member_rows = pc.equal(catalog.read_arrow(settings, "account_risk")["cluster_id"], cluster)
    assert pc.sum(member_rows).as_py() == 8 * 3  # three scored days in the lake


def test_only_accounts_and_days_that_exist_are_decided(lake, capsys):
    settings, _ = lake
    labels = _version(settings, "enforcement_labels")
    base = ["--lake", settings.lake_root, "review", "decide", "--label", "extraction", "--note", "n"]
    assert cli.main([*base[:4], "acct_does_not_exist", *base[4:]]) == InputError.exit_code
    err = capsys.readouterr().err
    assert "acct_does_not_exist' has never appeared in the lake" in err and "--allow-unknown" in err
    assert cli.main([*base[:4], "acct-000001", *base[4:], "--date", "2026-01-01"]) == MissingInputError.exit_code
    assert "2026-01-01 was never scored" in capsys.readouterr().err
    assert _version(settings, "enforcement_labels") == labels, "nothing written"

    assert cli.main([*base[:4], "acct_does_not_exist", *base[4:], "--allow-unknown"]) == 0
    assert [r["account_id"] for r in _labels(settings) if r["source"] == "analyst"] == ["acct_does_not_exist"]
