"""Risk queries over a hand-built account_risk Delta table, and Spark-free reads of that table."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from jobs import risk_query
from lake import catalog

DAY1 = dt.date(2026, 2, 9)
DAY2 = dt.date(2026, 2, 10)


def _reason(feature: str, value: float, contribution: float, text: str) -> dict:
    return {"feature": feature, "value": value, "contribution": contribution, "text": text}


def _risk(day, account_id, score, tier, cluster_id=None, reasons=()) -> dict:
    return {
        "score_date": day,
        "account_id": account_id,
        "score": score,
        "tier": tier,
        "cluster_id": cluster_id,
        "cluster_score": None if cluster_id is None else 0.9,
        "reasons": list(reasons),
        "model_name": "distillguard-extraction",
        "model_version": "3",
        "feature_set_version": "fs-test",
    }


COT = _reason("cot_elicitation_rate_7d", 0.82, 2.5, "82% of prompts ask for step-by-step reasoning")
RUBRIC = _reason("rubric_grading_rate_7d", 0.40, 1.25, "40% of prompts grade answers against a rubric")
AGE = _reason("account_age_days", 3.0, 0.5, "account is 3 days old")

ROWS = [
    _risk(DAY1, "acct-old", 0.99, "critical", reasons=[AGE]),
    _risk(DAY2, "acct-a", 0.97, "critical", "c-1", [AGE, COT, RUBRIC]),  # reasons stored out of order
    _risk(DAY2, "acct-b", 0.97, "critical", "c-1", [RUBRIC]),
    _risk(DAY2, "acct-c", 0.80, "high", reasons=[COT]),
    _risk(DAY2, "acct-d", 0.55, "elevated"),
    _risk(DAY2, "acct-e", 0.05, "low", reasons=[_reason("vision_share_7d", 0.0, 0.01, "[bold]no images[/bold]")]),
    _risk(DAY1, "acct-a", 0.60, "elevated", "c-1", [COT]),
]


@pytest.fixture()
def risk_settings(settings):
    catalog.write_arrow(
        settings, "account_risk", pa.Table.from_pylist(ROWS, schema=catalog.table("account_risk").schema)
    )
    return settings


def test_top_accounts_defaults_to_latest_date_ordered_by_score(risk_settings):
    top = risk_query.top_accounts(risk_settings, limit=10)
    assert top["rank"].to_pylist() == [1, 2, 3, 4, 5]
    assert top["account_id"].to_pylist() == ["acct-a", "acct-b", "acct-c", "acct-d", "acct-e"]
    assert set(top["score_date"].to_pylist()) == {DAY2}
    assert top["score"].to_pylist() == [0.97, 0.97, 0.80, 0.55, 0.05]


def test_top_accounts_limit_tier_and_explicit_date(risk_settings):
    assert risk_query.top_accounts(risk_settings, limit=2)["account_id"].to_pylist() == ["acct-a", "acct-b"]
    high = risk_query.top_accounts(risk_settings, tier="high")
    assert high["account_id"].to_pylist() == ["acct-c"]
    assert high.column("reasons")[0].as_py() == [COT]
    day1 = risk_query.top_accounts(risk_settings, score_date=DAY1, limit=1)
    assert day1.select(["account_id", "score"]).to_pylist() == [{"account_id": "acct-old", "score": 0.99}]
    assert risk_query.top_accounts(risk_settings, score_date=DAY1, tier="low").num_rows == 0


def test_latest_date_ignores_replaced_partitions(risk_settings):
    later = dt.date(2026, 2, 11)
    catalog.write_arrow(
        risk_settings,
        "account_risk",
        pa.Table.from_pylist([_risk(later, "acct-z", 0.5, "elevated")], schema=catalog.table("account_risk").schema),
        later,
    )
    assert risk_query.latest_score_date(risk_settings) == later
    catalog.write_arrow(risk_settings, "account_risk", catalog.table("account_risk").schema.empty_table(), later)
    assert risk_query.latest_score_date(risk_settings) == DAY2


def test_account_history_newest_first_with_all_reasons(risk_settings):
    history = risk_query.account_history(risk_settings, "acct-a")
    assert history["score_date"].to_pylist() == [DAY2, DAY1]
    assert history["reasons"][0].as_py() == [AGE, COT, RUBRIC]
    assert [r["feature"] for r in risk_query.reasons_by_contribution(history["reasons"][0].as_py())] == [
        "cot_elicitation_rate_7d",
        "rubric_grading_rate_7d",
        "account_age_days",
    ]
    one_day = risk_query.account_history(risk_settings, "acct-a", score_date=DAY1)
    assert one_day.select(["score", "tier"]).to_pylist() == [{"score": 0.60, "tier": "elevated"}]
    assert risk_query.account_history(risk_settings, "acct-unknown").num_rows == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"limit": 0}, "limit must be an integer from 1 to 10000"),
        ({"limit": 10_001}, "limit must be"),
        ({"limit": True}, "limit must be"),
        ({"limit": "5"}, "limit must be"),
        ({"tier": "severe"}, "tier must be one of low, elevated, high, critical"),
        ({"score_date": "2026-02-10"}, "score_date must be a date"),
        ({"score_date": dt.datetime(2026, 2, 10)}, "score_date must be a date"),
        ({"score_date": dt.date(2026, 3, 1)}, "no rows for score_date 2026-03-01"),
    ],
)
def test_top_accounts_rejects_bad_input(risk_settings, kwargs, message):
    with pytest.raises(ValueError, match=message):
        risk_query.top_accounts(risk_settings, **kwargs)


@pytest.mark.parametrize("account_id", ["", "a' OR '1'='1", "acct a", "x" * 129, "acct;drop", None])
def test_account_history_rejects_bad_account_ids(risk_settings, account_id):
    with pytest.raises(ValueError, match="account_id must be"):
        risk_query.account_history(risk_settings, account_id)


def test_missing_table_is_a_clear_error(settings):
    with pytest.raises(FileNotFoundError, match="run `distillguard score"):
        risk_query.top_accounts(settings)
    with pytest.raises(FileNotFoundError, match="no account_risk table"):
        risk_query.print_account(settings, "acct-a")


def test_print_top_and_account(risk_settings, capsys, monkeypatch):
    # rich sizes tables to the terminal (COLUMNS when stdout is not one); at its 80-column default a long feature
    # name folds across lines, so the substrings below depend on the width: pin one
    monkeypatch.setenv("COLUMNS", "160")
    risk_query.print_top(risk_settings, score_date=None, limit=3, tier=None)
    out = capsys.readouterr().out
    assert "2026-02-10" in out
    assert out.index("acct-a") < out.index("acct-b") < out.index("acct-c")
    assert "acct-d" not in out
    assert "82% of prompts ask for" in out

    risk_query.print_top(risk_settings, score_date=DAY1, limit=5, tier="low")
    assert "no accounts in tier 'low' on 2026-02-09" in capsys.readouterr().out

    risk_query.print_account(risk_settings, "acct-a", score_date=None)
    out = capsys.readouterr().out
    assert out.index("2026-02-10") < out.index("2026-02-09")
    assert "rubric_grading_rate_7d" in out and "1.2500" in out and "account is 3 days old" in out

    risk_query.print_account(risk_settings, "acct-e", score_date=DAY2)
    assert "[bold]no images[/bold]" in capsys.readouterr().out  # data, not rich markup

    risk_query.print_account(risk_settings, "acct-nobody", score_date=None)
    assert "no risk rows for account 'acct-nobody'" in capsys.readouterr().out


def test_cli_risk_commands(risk_settings, capsys):
    from jobs.cli import main

    assert main(["--lake", risk_settings.lake_root, "risk", "top", "--limit", "1", "--tier", "high"]) == 0
    assert "acct-c" in capsys.readouterr().out
    assert main(["--lake", risk_settings.lake_root, "risk", "account", "bad id!"]) == 2
    assert "account_id must be" in capsys.readouterr().err


def test_every_risk_command_exports_json_and_csv_with_whole_ids(settings, capsys, monkeypatch):
    import csv
    import io
    import json

    from jobs.cli import main

    long_id = "org-7f3a9c2e-41d7-4b8e-9a1f:acct-0001-" + "x" * 40  # 79 characters: wider than half a terminal
    cluster = "cluster-" + "c" * 50
    catalog.write_arrow(
        settings,
        "account_risk",
        pa.Table.from_pylist(
            [
                _risk(DAY2, long_id, 0.97, "critical", cluster, [COT, RUBRIC]),
                _risk(DAY2, "acct-b", 0.5, "elevated", cluster),
            ],
            schema=catalog.table("account_risk").schema,
        ),
    )
    lake = ["--lake", settings.lake_root]

    assert main([*lake, "risk", "top", "--format", "json"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert [(r["rank"], r["account_id"], r["cluster_id"]) for r in top] == [
        (1, long_id, cluster),
        (2, "acct-b", cluster),
    ]
    assert top[0]["score_date"] == "2026-02-10" and top[0]["reasons"][0]["feature"] == "cot_elicitation_rate_7d"

    assert main([*lake, "risk", "account", long_id, "--format", "csv"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["account_id"] == long_id and json.loads(row["reasons"])[1]["feature"] == "rubric_grading_rate_7d"

    assert main([*lake, "risk", "cluster", cluster, "--format", "csv"]) == 0
    members = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [m["account_id"] for m in members] == [long_id, "acct-b"] and members[0][
        "link_types"
    ] == ""  # no account_clusters table

    # an 80-column terminal: the ids stay whole on one line (the reasons column folds instead)
    monkeypatch.setenv("COLUMNS", "80")
    for argv in (["risk", "top"], ["risk", "cluster", cluster]):
        assert main([*lake, *argv]) == 0
        lines = capsys.readouterr().out.splitlines()
        if argv[1] == "top":
            assert "NOT published" in "\n".join(lines)
        assert any(long_id in line for line in lines), "\n".join(lines)
        if argv[1] == "top":
            assert any(cluster in line for line in lines)
    assert main([*lake, "risk", "cluster", "nope", "--format", "json"]) == 4
    assert "no members" in capsys.readouterr().err


def test_account_risk_reads_back_without_spark(risk_settings):
    uri = risk_settings.table_uri("account_risk")
    table = DeltaTable(uri).to_pyarrow_table().sort_by([("score_date", "ascending"), ("account_id", "ascending")])
    assert table.num_rows == len(ROWS)
    assert table.schema.field("reasons").type == pa.list_(catalog.REASON_STRUCT)
    first = table.slice(0, 1).to_pylist()[0]
    assert (first["score_date"], first["account_id"], first["score"], first["reasons"]) == (DAY1, "acct-a", 0.60, [COT])

    frame = pl.read_delta(uri)
    critical = frame.filter(pl.col("tier") == "critical").sort("account_id")
    assert critical["account_id"].to_list() == ["acct-a", "acct-b", "acct-old"]
    assert critical["reasons"][0].to_list() == [AGE, COT, RUBRIC]
    assert frame.schema["score_date"] == pl.Date


def test_account_risk_has_the_minimal_protocol(risk_settings):
    delta = DeltaTable(risk_settings.table_uri("account_risk"))
    protocol = delta.protocol()
    configuration = delta.metadata().configuration
    assert "deletionVectors" not in (protocol.reader_features or []) + (protocol.writer_features or [])
    assert "columnMapping" not in (protocol.reader_features or []) + (protocol.writer_features or [])
    assert configuration.get("delta.enableDeletionVectors", "false") == "false"
    assert configuration.get("delta.columnMapping.mode", "none") == "none"
    assert protocol.min_reader_version == 1


def test_account_risk_written_by_spark_is_readable_and_minimal(spark, settings):
    """The scorer may write account_risk through the engine; the table must stay Spark-free readable."""
    rows = [r for r in ROWS if r["score_date"] == DAY2]
    frame = spark.createDataFrame(
        pa.Table.from_pylist(rows, schema=catalog.table("account_risk").schema).to_pandas(),
        schema=catalog.spark_ddl("account_risk"),
    )
    catalog.write_partition(frame, settings, "account_risk", DAY2)

    delta = DeltaTable(settings.table_uri("account_risk"))
    features = (delta.protocol().reader_features or []) + (delta.protocol().writer_features or [])
    assert "deletionVectors" not in features and "columnMapping" not in features
    assert delta.metadata().configuration.get("delta.columnMapping.mode", "none") == "none"
    top = risk_query.top_accounts(settings, limit=2)
    assert top["account_id"].to_pylist() == ["acct-a", "acct-b"]
    assert top["reasons"][0].as_py() == [AGE, COT, RUBRIC]
    assert pl.read_delta(settings.table_uri("account_risk")).height == len(rows)
