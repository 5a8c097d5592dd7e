"""`distillguard ingest --date D`: one day of raw api_requests → bronze `requests` + `quarantine`.

Ingest is the one job that reads prompt text: bronze carries each request's signals (features/signals.py) as
columns, so aggregation and backfills never scan text again, and re-ingesting a date recomputes them.

The run id is derived from the date and the raw table's Delta version, so rerunning the same date
over the same raw data rewrites byte-for-byte the same rows (idempotent), while a rerun after the
gateway re-delivered the day is traceable to the new raw version.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from pyspark.sql import functions as F

from features.signals import with_request_signals
from lake import catalog
from lake.config import Settings
from lake.errors import MissingInputError
from lake.table_creation import staged_frame
from lake.validation import duplicate_request_ids, raw_delivery, validate_requests


@dataclass(frozen=True)
class IngestResult:
    ingest_run_id: str
    event_date: dt.date
    raw_rows: int
    bronze_rows: int
    quarantined_rows: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


def run(spark, settings: Settings, event_date: dt.date) -> IngestResult:
    from deltalake import DeltaTable

    raw = raw_delivery(catalog.read(spark, settings, "api_requests"), event_date)
    raw_version = DeltaTable(settings.table_uri("api_requests")).version()
    run_id = f"ingest-{event_date.isoformat()}-v{raw_version}"
    raw_rows = raw.count()
    if raw_rows == 0:
        raise MissingInputError(
            f"no raw api_requests rows for {event_date}: refusing to publish an empty day (is the gateway export late?)"
        )

    # both writes below read the repeated ids: found once, key-only (no null id, so the row added for an empty
    # day matches nothing)
    repeated = duplicate_request_ids(raw).unionByName(spark.createDataFrame([(None,)], "request_id string"))
    with staged_frame(spark, settings, repeated, f"{run_id}-repeated-ids") as duplicate_ids:
        bronze, quarantine = validate_requests(
            raw, event_date, settings.pseudonym_key.get_secret_value(), run_id, duplicate_ids
        )
        # the only place prompt text is read: each request's content and client signals become bronze columns
        bronze = with_request_signals(bronze)
        # Quarantine first and the run record last: a crash in between leaves no run record, and the
        # rerun replaces every partition it wrote.
        catalog.write_partition(quarantine, settings, "quarantine", event_date)
        catalog.write_partition(bronze, settings, "requests", event_date)

    written_bronze = catalog.read_partition(spark, settings, "requests", event_date).count()
    reasons = {
        row["reason"]: int(row["n"])
        for row in catalog.read_partition(spark, settings, "quarantine", event_date)
        .groupBy("reason")
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    }
    quarantined = sum(reasons.values())
    if written_bronze + quarantined != raw_rows:
        raise RuntimeError(
            f"ingest {event_date}: {raw_rows} raw rows but {written_bronze} bronze + "
            f"{quarantined} quarantined; refusing to record the run"
        )
    result = IngestResult(run_id, event_date, raw_rows, written_bronze, quarantined, dict(sorted(reasons.items())))
    run_record = spark.createDataFrame(
        [
            (
                run_id,
                event_date,
                raw_version,
                raw_rows,
                written_bronze,
                quarantined,
                json.dumps(result.quarantine_reasons),
            )
        ],
        catalog.spark_ddl("ingest_runs"),
    )
    catalog.write_partition(run_record, settings, "ingest_runs", event_date)
    detail = ", ".join(f"{k}: {v}" for k, v in result.quarantine_reasons.items()) or "none"
    print(
        f"ingest {event_date}: {raw_rows:,} raw -> {written_bronze:,} bronze, {quarantined:,} quarantined ({detail})",
        flush=True,
    )
    return result
