"""Retention covers every restricted table with its own period: raw api_requests (prompt text, raw IPs),
quarantine and bronze requests. --dry-run lists exactly what the real run then deletes, on every table, and
writes nothing; labels and analyst decisions are never touched; a huge period is one line."""

from __future__ import annotations

import datetime as dt

import pytest
from deltalake import DeltaTable

from jobs import cli, ingest, retention
from lake import catalog
from simulator import simulate

START = dt.date(2026, 4, 1)
TODAY = START + dt.timedelta(days=4)  # periods of 3 days keep 04-02 .. 04-04 (cut-off 04-02)


def _versions(settings, names):
    return {n: DeltaTable(settings.table_uri(n)).version() for n in names if catalog.exists(settings, n)}


def _dates(settings, name):
    column = catalog.table(name).partition_by[0]
    return sorted({r[column] for r in catalog.read_arrow(settings, name).select([column]).to_pylist()})


def test_dry_run_lists_what_retention_deletes_on_every_restricted_table(spark, settings, capsys):
    from console import decisions

    simulate.run(settings, start=START, days=3, accounts=150, seed=3)
    for day in (START, START + dt.timedelta(days=1), START + dt.timedelta(days=2)):
        ingest.run(spark, settings, day)
    decisions.record_decision(
        settings, analyst="alice", label="benign", note="n", account_id="acct-outside", allow_unknown=True
    )
    restricted = tuple(retention.RESTRICTED)
    kept = ("enforcement_labels", "analyst_decisions", "ingest_runs")
    assert all(catalog.exists(settings, n) for n in (*restricted, *kept))
    before = _versions(settings, (*restricted, *kept))
    periods = dict(raw_days=3, quarantine_days=3, bronze_days=3, today=TODAY)

    planned = retention.run(settings, **periods, dry_run=True)
    out = capsys.readouterr().out
    assert _versions(settings, (*restricted, *kept)) == before, "a dry run writes nothing"
    for name in restricted:
        old = [d for d in _dates(settings, name) if d < TODAY - dt.timedelta(days=3)]
        assert old == [START], name  # the simulator's first day is the one before the cut-off
        assert planned[name] > 0 and f"{name} (kept 3 days, before 2026-04-02): 2026-04-01 ({planned[name]:,})" in out

    assert retention.run(settings, **periods) == planned
    for name in restricted:
        assert START not in _dates(settings, name) and _dates(settings, name), name
        assert DeltaTable(settings.table_uri(name)).version() == before[name] + 1, "one commit per table"
    assert {n: v for n, v in _versions(settings, kept).items()} == {n: before[n] for n in kept}, "never touched"


def test_each_table_has_its_own_period_and_bad_periods_are_one_line(spark, settings, capsys):
    simulate.run(settings, start=START, days=2, accounts=100, seed=4)
    ingest.run(spark, settings, START)
    before = _versions(settings, retention.RESTRICTED)
    assert retention.run(settings, raw_days=1, today=TODAY)["api_requests"] > 0
    assert _versions(settings, ("quarantine", "requests")) == {n: before[n] for n in ("quarantine", "requests")}

    for flags, message in (
        (["--older-than", "99999999999"], "--older-than 99999999999: must be between 1 and 36,500 days"),
        (["--raw-days", "0"], "--raw-days 0: must be between 1"),
        ([], "give at least one retention period"),
    ):
        assert cli.main(["--lake", settings.lake_root, "retention", *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", retention.NEVER_TOUCHED)
def test_labels_and_decisions_are_never_retention_targets(name):
    assert name not in retention.RESTRICTED
