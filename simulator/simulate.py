"""`distillguard simulate`: write a simulated raw lake (benign population + distillation campaigns).

Writes the raw tables of lake/catalog.py:
- api_requests, one atomic Delta commit per day (that day's partition replaced), streamed in bounded
  record batches so memory does not grow with the day's volume;
- accounts, model_releases, asn_info, enforcement_labels as whole-table overwrites.

Campaign membership (the ground truth) goes to <ground_truth_root>/accounts.parquet, outside the
lake: jobs never read it, only evaluation and tests do (`read_ground_truth`).

The same (start, days, accounts, seed) always produces the same data.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.catalog import exists, table, write_arrow
from lake.config import Settings
from lake.dates import date_range
from simulator import world
from simulator.scenarios import DEFAULT_SCENARIO, build_population
from simulator.traffic import BAD_KINDS, DayStats, TrafficGenerator

GROUND_TRUTH_FILE = "accounts.parquet"
CHUNK_ROWS = 100_000  # rows per generated record batch (~45 MB of Arrow)
PREFETCH_BATCHES = 1


@dataclass
class SimulationSummary:
    start: dt.date
    days: int
    seed: int
    scenario: str
    accounts: int  # all accounts, including campaign replacements created during the period
    accounts_by_segment: dict[str, int]
    campaign_accounts: dict[str, int]
    records_by_day: dict[dt.date, int]
    records_by_group: dict[str, int]  # traffic group: benign segment, campaign, or a half of the reseller
    bad_records: dict[str, int]
    labels: dict[str, int]
    new_model: str
    new_model_released_at: dt.datetime
    elapsed_s: float = 0.0

    @property
    def records(self) -> int:
        return sum(self.records_by_day.values())

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s else 0.0


def ground_truth_path(settings: Settings) -> str:
    return f"{settings.ground_truth_root.rstrip('/')}/{GROUND_TRUTH_FILE}"


def read_ground_truth(settings: Settings):
    """Campaign membership per account: account_id, segment, campaign_id, is_campaign, archetype (the kind of
    campaign, None for benign accounts), benign_segment (None for campaign accounts), hydra_id,
    campaign_traffic_share, created_at, banned_at."""
    path = ground_truth_path(settings)
    if "://" not in path and not Path(path).exists():
        raise FileNotFoundError(f"no simulator ground truth at {path}; run `distillguard simulate` first")
    return pq.read_table(path).to_pandas()


def run(
    settings: Settings,
    start: dt.date,
    days: int,
    accounts: int,
    seed: int,
    scenario: str = DEFAULT_SCENARIO,
    hold_out: str | None = None,
) -> SimulationSummary:
    """scenario: "classic" (three labelled campaigns and a reseller), "extended" (plus campaigns that are
    never labelled and benign look-alikes, randomised per seed; simulator/extended.py) or "randomised" (every
    campaign tactic drawn per seed; simulator/randomised.py, whose archetype `hold_out` no labelled campaign has)."""
    began = time.perf_counter()
    _check_ground_truth_outside_lake(settings)
    dates = date_range(start, days)
    _refuse_foreign_partitions(settings, dates)

    population = build_population(
        seed=seed, accounts=accounts, start=start, days=days, scenario=scenario, hold_out=hold_out
    )
    print(
        f"simulate ({scenario}): {population.n_accounts:,} accounts "
        f"({sum(population.campaign_counts.values()):,} in campaigns {population.campaign_counts}), "
        f"{len(population.profiles):,} traffic profiles, built in {time.perf_counter() - began:.1f} s",
        flush=True,
    )
    write_arrow(settings, "asn_info", population.network.asn_table())
    write_arrow(settings, "model_releases", world.model_releases(start, days))
    write_arrow(settings, "accounts", population.accounts)

    generator = TrafficGenerator(population, seed=seed, chunk_rows=CHUNK_ROWS)
    records_by_day: dict[dt.date, int] = {}
    records_by_group: Counter = Counter()
    bad: dict[str, int] = {kind: 0 for kind in BAD_KINDS}
    for day_index, day in enumerate(dates):
        day_began = time.perf_counter()
        stats = DayStats()
        _write_day(settings, day, generator.day_batches(day_index, day, stats), generator.schema)
        records_by_day[day] = stats.records
        records_by_group.update(stats.by_group)
        for kind, count in stats.bad.items():
            bad[kind] += count
        seconds = time.perf_counter() - day_began
        print(
            f"simulate {day}: {stats.records:,} records in {seconds:.1f} s "
            f"({stats.records / max(seconds, 1e-9):,.0f}/s)",
            flush=True,
        )

    write_arrow(settings, "enforcement_labels", population.labels)
    _write_ground_truth(settings, population.ground_truth)

    label_counts = pc.value_counts(population.labels["label"]).to_pylist()
    summary = SimulationSummary(
        start=start,
        days=days,
        seed=seed,
        scenario=scenario,
        accounts=population.n_accounts,
        accounts_by_segment=population.segment_counts,
        campaign_accounts=population.campaign_counts,
        records_by_day=records_by_day,
        records_by_group=dict(records_by_group),
        bad_records=bad,
        labels={item["values"]: item["counts"] for item in label_counts},
        new_model=world.NEW_MODEL,
        new_model_released_at=world.new_model_release(start, days),
        elapsed_s=time.perf_counter() - began,
    )
    print(
        f"simulate: {summary.records:,} records over {days} days in {summary.elapsed_s:.1f} s "
        f"({summary.records_per_s:,.0f}/s); bad records {bad}; labels {summary.labels}",
        flush=True,
    )
    return summary


def _write_day(settings: Settings, day: dt.date, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
    """Replace one event_date partition in a single Delta commit, streaming the batches.

    Batches are generated on a background thread while delta-rs encodes the previous ones, so numpy/
    Arrow generation and Parquet encoding overlap; the queue depth bounds how many batches are in memory."""
    from deltalake import ColumnProperties, WriterProperties, write_deltalake

    reader = pa.RecordBatchReader.from_batches(schema, _prefetch(batches, depth=PREFETCH_BATCHES))
    uri = settings.table_uri("api_requests")
    # dictionary encoding is tried and abandoned on near-unique columns; skipping it there saves encode time
    near_unique = ColumnProperties(dictionary_enabled=False)
    properties = WriterProperties(
        compression="ZSTD",
        compression_level=1,
        column_properties={column: near_unique for column in ("request_id", "event_ts", "client_ip", "prompt_prefix")},
    )
    if exists(settings, "api_requests"):
        write_deltalake(
            uri, reader, mode="overwrite", predicate=f"event_date = '{day.isoformat()}'", writer_properties=properties
        )
    else:
        write_deltalake(
            uri,
            reader,
            mode="overwrite",
            partition_by=list(table("api_requests").partition_by),
            writer_properties=properties,
        )


_DONE = object()


def _prefetch(items: Iterator[pa.RecordBatch], depth: int) -> Iterator[pa.RecordBatch]:
    """Iterate `items` on a worker thread, at most `depth` ahead; its exceptions re-raise here."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            slots.put(exc)

    worker = threading.Thread(target=produce, name="simulate-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _refuse_foreign_partitions(settings: Settings, dates: list[dt.date]) -> None:
    """The dimension tables are rewritten for this population, so raw days of another run would not join
    with them; refuse instead of silently mixing two populations."""
    if not exists(settings, "api_requests"):
        return
    from deltalake import DeltaTable

    wanted = {d.isoformat() for d in dates}
    present = {p["event_date"] for p in DeltaTable(settings.table_uri("api_requests")).partitions()}
    foreign = sorted(present - wanted)
    if foreign:
        raise ValueError(
            f"{settings.table_uri('api_requests')} already holds days outside {dates[0]}..{dates[-1]} "
            f"({foreign[0]}{' ...' if len(foreign) > 1 else ''}) from another simulation; use a fresh lake"
        )


def _check_ground_truth_outside_lake(settings: Settings) -> None:
    lake, truth = settings.lake_root.rstrip("/") + "/", settings.ground_truth_root.rstrip("/") + "/"
    if truth.startswith(lake) or lake.startswith(truth):
        raise ValueError(
            f"ground truth root {settings.ground_truth_root} must be outside the lake "
            f"{settings.lake_root}: jobs must not be able to read campaign membership"
        )


def _write_ground_truth(settings: Settings, ground_truth: pa.Table) -> None:
    path = ground_truth_path(settings)
    if "://" not in path:
        os.makedirs(settings.ground_truth_root, exist_ok=True)
        tmp = f"{path}.tmp"
        pq.write_table(ground_truth, tmp)
        os.replace(tmp, path)  # readers never see a half-written file
    else:
        pq.write_table(ground_truth, path)
