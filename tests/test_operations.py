"""Operator-facing behaviour: strict dates, --help, one-line errors, secrets never printed, upstream checks,
backfill with skip / stop / resume."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from jobs import backfill, cli, preconditions
from lake import catalog
from lake.dates import parse_date
from lake.errors import InputError, MissingInputError, ServiceUnreachableError
from lake.redact import redact

REPO = Path(__file__).resolve().parents[1]
SENTINEL = "SENTINEL-7f3a9c"


def _cli(*argv: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "text", ["20261112", "2026-W46-4", "2026-11-12T00:00", " 2026-11-12", "2026-13-01", "26-11-12"]
)
def test_only_yyyy_mm_dd_is_a_date(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_date(text)
    assert parse_date("2026-11-12") == dt.date(2026, 11, 12)


def test_every_subcommand_has_a_description_and_every_flag_help():
    def walk(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from walk(child)

    parsers = list(walk(cli.build_parser()))
    assert {"backfill", "ingest", "train"} <= {p.prog.split()[-1] for p in parsers}
    for parser in parsers:
        assert parser.description, parser.prog
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, (parser.prog, action.dest)
    help_text = next(p for p in parsers if p.prog.endswith(" simulate")).format_help()
    assert "(default: 14)" in help_text


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            f"sc://spark.internal:15002/;token={SENTINEL};user_id=etl",
            "sc://spark.internal:15002/;token=***;user_id=etl",
        ),
        (f"http://mlflow:{SENTINEL}@mlflow.internal:5000", "http://mlflow:***@mlflow.internal:5000"),
        (f"postgresql://dg:{SENTINEL}@db/mlflow?sslmode=require", "postgresql://dg:***@db/mlflow?sslmode=require"),
        (f"https://h/api?api_key={SENTINEL}&x=1", "https://h/api?api_key=***&x=1"),
    ],
)
def test_redaction_keeps_the_host_and_hides_the_secret(url, shown):
    assert redact(f"connecting to {url} now") == f"connecting to {shown} now"


def test_unreachable_spark_connect_gives_one_line_naming_the_host_never_the_token(tmp_path):
    """Nothing listens on port 9; a blackholed address would wait DG_CONNECT_TIMEOUT_S instead. Run both with
    -v as well: the traceback is printed then, and must not leak the token either."""
    env = {
        "DG_CONNECT_TIMEOUT_S": "3",
        "MLFLOW_TRACKING_URI": f"http://dg:{SENTINEL}@127.0.0.1:9/",
        "DG_LAKE": str(tmp_path / "lake"),
    }
    for verbose in ((), ("-v",)):
        result = _cli(
            *verbose, "--remote", f"sc://127.0.0.1:9/;token={SENTINEL}", "ingest", "--date", "2026-06-01", env=env
        )
        output = result.stdout + result.stderr
        assert result.returncode == ServiceUnreachableError.exit_code, output
        assert "cannot reach the Spark Connect server at 127.0.0.1:9" in output
        assert SENTINEL not in output
        if not verbose:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_log_records_and_their_tracebacks_are_redacted():
    """The filter the CLI installs on every handler (tests/test_mlflow_server.py scans a real training run)."""
    import io
    import logging

    from lake.redact import RedactingFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("distillguard.sentinel")
    logger.addHandler(handler)
    try:
        logger.warning("engine %s, tracking %s", f"sc://h:1/;token={SENTINEL}", f"http://u:{SENTINEL}@h/")
        try:
            raise RuntimeError(f"cannot open sc://h:1/;token={SENTINEL}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert SENTINEL not in stream.getvalue()
    assert "token=***" in stream.getvalue() and "cannot open sc://h:1/;token=***" in stream.getvalue()


def test_demo_key_is_refused_for_a_non_local_lake_unless_demo():
    from lake.config import DEMO_PSEUDONYM_KEY, load_settings

    os.environ.pop("DG_PSEUDONYM_KEY", None)
    with pytest.raises(InputError, match="demo key"):
        load_settings(lake_root="s3://bucket/lake", mlflow_tracking_uri="http://mlflow:5000")
    assert (
        load_settings(
            lake_root="s3://bucket/lake", mlflow_tracking_uri="http://mlflow:5000", allow_demo_key=True
        ).pseudonym_key.get_secret_value()
        == DEMO_PSEUDONYM_KEY
    )
    assert (
        load_settings(
            lake_root="s3://bucket/lake", mlflow_tracking_uri="http://mlflow:5000", pseudonym_key="a-real-secret"
        ).pseudonym_key.get_secret_value()
        == "a-real-secret"
    )
    printed = load_settings(lake_root="/tmp/lake", pseudonym_key="a-real-secret")
    assert "a-real-secret" not in repr(printed) and "a-real-secret" not in str(printed.model_dump())


# --- upstream completeness ------------------------------------------------------------------------------


def _run_record(day: dt.date, raw: int, bronze: int, quarantined: int) -> pa.Table:
    return pa.Table.from_pylist(
        [
            dict(
                ingest_run_id=f"ingest-{day}-v0",
                event_date=day,
                raw_table_version=0,
                raw_rows=raw,
                bronze_rows=bronze,
                quarantined_rows=quarantined,
                quarantine_reasons="{}",
            )
        ],
        catalog.table("ingest_runs").schema,
    )


def _bronze(day: dt.date, n: int) -> pa.Table:
    rows = [
        {name: None for name in catalog.table("requests").columns}
        | dict(request_id=f"r{i}", event_date=day, account_id="a")
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, catalog.table("requests").schema)


def test_aggregate_refuses_a_day_whose_ingest_is_missing_or_disagrees(settings):
    day = dt.date(2026, 6, 1)
    with pytest.raises(MissingInputError, match="no ingest run is recorded for 2026-06-01"):
        preconditions.check_aggregate(settings, day)
    catalog.write_arrow(settings, "requests", _bronze(day, 3), partition_value=day)
    catalog.write_arrow(settings, "ingest_runs", _run_record(day, 3, 3, 0), partition_value=day)
    preconditions.check_aggregate(settings, day)  # consistent: passes
    # a doubled bronze partition (the concurrent-create failure mode) no longer matches the record
    from deltalake import write_deltalake

    write_deltalake(settings.table_uri("requests"), _bronze(day, 3), mode="append")
    with pytest.raises(MissingInputError, match="3 raw = 3 bronze \\+ 0 quarantined, but the tables hold 6 bronze"):
        preconditions.check_aggregate(settings, day)
    with pytest.raises(MissingInputError, match="account_daily does not exist"):
        preconditions.check_features(settings, day)
    with pytest.raises(MissingInputError, match=r"account_features does not exist.*distillguard features"):
        preconditions.check_score(settings, day)


# --- backfill ---------------------------------------------------------------------------------------------


def test_backfill_skips_complete_dates_stops_at_the_first_failure_and_says_how_to_resume(settings, capsys):
    from tests.helpers.raw_requests import TWO_DAYS, write_two_days

    D1, D2 = TWO_DAYS

    write_two_days(Path(settings.lake_root))  # raw rows for D1 and D2 only: D3 fails
    d3 = D2 + dt.timedelta(days=1)
    with pytest.raises(MissingInputError, match=f"no raw api_requests rows for {d3}"):
        backfill.run(settings, D1, d3 + dt.timedelta(days=1), steps=("ingest",))
    err = capsys.readouterr().err
    assert f"backfill stopped at {d3} (2 dates ran, 0 skipped" in err
    assert f"distillguard backfill --from {d3} --to {d3 + dt.timedelta(days=1)} --steps ingest" in err
    assert sorted(r["event_date"] for r in catalog.read_arrow(settings, "ingest_runs").to_pylist()) == [D1, D2]

    versions = _versions(settings)
    assert backfill.run(settings, D1, D2, steps=("ingest",)) == {"ran": [], "skipped": [D1, D2]}
    assert _versions(settings) == versions, "a skipped date writes nothing"
    assert backfill.run(settings, D2, D2, steps=("ingest",), force=True)["ran"] == [D2]
    assert _versions(settings)["requests"] > versions["requests"]


def _versions(settings) -> dict[str, int]:
    from deltalake import DeltaTable

    return {name: DeltaTable(settings.table_uri(name)).version() for name in ("requests", "quarantine", "ingest_runs")}


def test_retention_deletes_old_quarantine_rows_in_one_commit(settings):
    from deltalake import DeltaTable

    from jobs import retention

    rows = [
        dict(
            raw_record=json.dumps({"client_ip": "203.0.113.7"}),
            reason="malformed client_ip",
            source_table="api_requests",
            source_partition=day,
            ingest_run_id="r",
        )
        for day in (dt.date(2026, 1, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 20), dt.date(2026, 1, 31))
    ]
    for day in sorted({r["source_partition"] for r in rows}):
        catalog.write_arrow(
            settings,
            "quarantine",
            pa.Table.from_pylist([r for r in rows if r["source_partition"] == day], catalog.table("quarantine").schema),
            partition_value=day,
        )
    before = DeltaTable(settings.table_uri("quarantine")).version()
    removed = retention.run(settings, older_than_days=10, today=dt.date(2026, 1, 31))
    assert removed == {"quarantine": 3}  # 2026-01-01 (2 rows) and 2026-01-20 are before the cut-off 2026-01-21
    table = DeltaTable(settings.table_uri("quarantine"))
    assert table.version() == before + 1, "one commit"
    assert [r["source_partition"] for r in table.to_pyarrow_table().to_pylist()] == [dt.date(2026, 1, 31)]
