"""`distillguard quality-gate --date D`: refuse to publish a day whose risk table looks broken.

Runs after `score` and before `publish`, so a broken day never reaches analysts. Checks, each named in the error:
  risk_partition       account_risk has rows for D, one per account in that day's account_features
  flagged_share        share of accounts in the high + critical tiers is below an absolute ceiling (a model that
                       flags a large part of the population is broken, whatever its history) and, against the
                       trailing days scored by the same model version, not a spike over their median
  mean_score           the day's mean score lies within the trailing days' range, widened by a margin
  quarantine_share     the day's quarantined / raw rows from `ingest_runs` is below an absolute ceiling and not a
                       spike over the trailing days' median

Tiers are calibrated per model version on benign false-positive rates, so the flagged share is comparable across
days; the score scale is not comparable across versions, so the trailing comparisons only use days scored by the
same version. With fewer than `min_history_days` such days a comparison is reported as skipped (it cannot be made),
never as passed. A failure raises `QualityGateError`; the CLI exits with status 3 so a scheduler can tell a failed
gate (do not retry) from a crash (retry).
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from lake import catalog
from lake.config import Settings
from lake.errors import QualityGateError

FLAGGED_TIERS = ("critical", "high")
PASS, FAIL, SKIPPED = "pass", "fail", "skipped"


@dataclass(frozen=True)
class QualityGateConfig:
    trailing_days: int = 7
    min_history_days: int = 3
    max_flagged_share: float = 0.5
    flagged_share_spike_factor: float = 3.0
    flagged_share_spike_floor: float = 0.05  # absolute rise over the trailing median always tolerated
    mean_score_margin_floor: float = 0.05  # the trailing range is widened by max(this, its own width)
    max_quarantine_share: float = 0.2
    quarantine_spike_factor: float = 3.0
    quarantine_spike_floor: float = 0.01


@dataclass(frozen=True)
class ScoreDaySummary:
    score_date: dt.date
    accounts: int
    mean_score: float
    flagged_share: float
    model_versions: tuple[str, ...]


@dataclass(frozen=True)
class IngestDaySummary:
    event_date: dt.date
    raw_rows: int
    quarantined_rows: int

    @property
    def quarantine_share(self) -> float:
        return self.quarantined_rows / self.raw_rows if self.raw_rows else 0.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # pass | fail | skipped
    detail: str


# --- pure pieces ----------------------------------------------------------------------------------


def score_day_summaries(risk):
    """account_risk rows -> one row per score_date: accounts, mean_score, flagged_share, model_versions."""
    from pyspark.sql import functions as F

    flagged = F.col("tier").isin(*FLAGGED_TIERS).cast("double")
    return risk.groupBy("score_date").agg(
        F.count(F.lit(1)).alias("accounts"),
        F.avg("score").alias("mean_score"),
        F.avg(flagged).alias("flagged_share"),
        F.array_sort(F.collect_set("model_version")).alias("model_versions"),
    )


def check_risk_partition(today: ScoreDaySummary | None, feature_accounts: int) -> CheckResult:
    if today is None or today.accounts == 0:
        return CheckResult("risk_partition", FAIL, "account_risk has no rows for the day")
    if today.accounts != feature_accounts:
        return CheckResult(
            "risk_partition",
            FAIL,
            f"{today.accounts:,} accounts scored but account_features has {feature_accounts:,} for the day",
        )
    return CheckResult("risk_partition", PASS, f"{today.accounts:,} accounts scored")


def _same_model_history(today: ScoreDaySummary, trailing: list[ScoreDaySummary]) -> list[ScoreDaySummary]:
    return [day for day in trailing if day.model_versions == today.model_versions and day.accounts > 0]


def check_score_distribution(
    today: ScoreDaySummary, trailing: list[ScoreDaySummary], config: QualityGateConfig
) -> list[CheckResult]:
    results = []
    share = today.flagged_share
    if share > config.max_flagged_share:
        results.append(
            CheckResult(
                "flagged_share",
                FAIL,
                f"{share:.1%} of accounts in high+critical, above the ceiling {config.max_flagged_share:.1%}",
            )
        )
    history = _same_model_history(today, trailing)
    versions = "/".join(today.model_versions)
    if len(history) < config.min_history_days:
        note = (
            f"{len(history)} trailing score date(s) with model v{versions}, "
            f"{config.min_history_days} needed for a comparison"
        )
        if not results:
            results.append(CheckResult("flagged_share", SKIPPED, f"{share:.1%} in high+critical; {note}"))
        results.append(CheckResult("mean_score", SKIPPED, f"mean {today.mean_score:.4f}; {note}"))
        return results

    if not results:
        median = statistics.median(day.flagged_share for day in history)
        limit = max(median * config.flagged_share_spike_factor, median + config.flagged_share_spike_floor)
        status = FAIL if share > limit else PASS
        results.append(
            CheckResult(
                "flagged_share",
                status,
                f"{share:.2%} in high+critical vs trailing median "
                f"{median:.2%} over {len(history)} day(s) (limit {limit:.2%})",
            )
        )
    means = [day.mean_score for day in history]
    low, high = min(means), max(means)
    margin = max(config.mean_score_margin_floor, high - low)
    inside = low - margin <= today.mean_score <= high + margin
    results.append(
        CheckResult(
            "mean_score",
            PASS if inside else FAIL,
            f"mean {today.mean_score:.4f} vs trailing range {low:.4f}..{high:.4f} over "
            f"{len(history)} day(s) (allowed {low - margin:.4f}..{high + margin:.4f})",
        )
    )
    return results


def check_quarantine(
    today: IngestDaySummary | None, trailing: list[IngestDaySummary], config: QualityGateConfig
) -> CheckResult:
    if today is None:
        return CheckResult(
            "quarantine_share", FAIL, "no ingest_runs record for the day: it was not ingested by `distillguard ingest`"
        )
    share = today.quarantine_share
    counts = f"{today.quarantined_rows:,} of {today.raw_rows:,} raw rows quarantined ({share:.2%})"
    if share > config.max_quarantine_share:
        return CheckResult("quarantine_share", FAIL, f"{counts}, above the ceiling {config.max_quarantine_share:.1%}")
    history = [day for day in trailing if day.raw_rows > 0]
    if len(history) < config.min_history_days:
        return CheckResult(
            "quarantine_share",
            SKIPPED,
            f"{counts}; {len(history)} trailing ingest day(s), {config.min_history_days} needed for a comparison",
        )
    median = statistics.median(day.quarantine_share for day in history)
    limit = max(median * config.quarantine_spike_factor, median + config.quarantine_spike_floor)
    return CheckResult(
        "quarantine_share",
        FAIL if share > limit else PASS,
        f"{counts} vs trailing median {median:.2%} over {len(history)} day(s) (limit {limit:.2%})",
    )


def enforce(score_date: dt.date, results: list[CheckResult]) -> None:
    failed = [r for r in results if r.status == FAIL]
    if failed:
        raise QualityGateError(
            f"quality gate failed for {score_date.isoformat()}: " + "; ".join(f"{r.name}: {r.detail}" for r in failed)
        )


# --- the job --------------------------------------------------------------------------------------


def _trailing_days(spark, settings: Settings, name: str, score_date: dt.date, config: QualityGateConfig):
    """Rows of `name` from the trailing window up to score_date (by its date partition column), or None when
    the table does not exist yet."""
    from pyspark.sql import functions as F

    if not catalog.exists(settings, name):
        return None
    column = F.col(catalog.table(name).partition_by[0])
    first = score_date - dt.timedelta(days=config.trailing_days)
    return catalog.read(spark, settings, name).where((column >= F.lit(first)) & (column <= F.lit(score_date)))


def _score_summaries(spark, settings: Settings, score_date: dt.date, config: QualityGateConfig):
    risk = _trailing_days(spark, settings, "account_risk", score_date, config)
    if risk is None:
        return None, []
    rows = [
        ScoreDaySummary(
            r["score_date"],
            int(r["accounts"]),
            float(r["mean_score"]),
            float(r["flagged_share"]),
            tuple(r["model_versions"]),
        )
        for r in score_day_summaries(risk).collect()
    ]
    today = next((r for r in rows if r.score_date == score_date), None)
    return today, sorted((r for r in rows if r.score_date != score_date), key=lambda r: r.score_date)


def _ingest_summaries(
    spark, settings: Settings, score_date: dt.date, config: QualityGateConfig
) -> tuple[IngestDaySummary | None, list[IngestDaySummary]]:
    runs = _trailing_days(spark, settings, "ingest_runs", score_date, config)
    if runs is None:
        return None, []
    rows = [
        IngestDaySummary(r["event_date"], int(r["raw_rows"]), int(r["quarantined_rows"]))
        for r in runs.select("event_date", "raw_rows", "quarantined_rows").collect()
    ]
    today = next((r for r in rows if r.event_date == score_date), None)
    return today, [r for r in rows if r.event_date != score_date]


def run(spark, settings: Settings, score_date: dt.date, config: QualityGateConfig | None = None) -> list[CheckResult]:
    config = config or QualityGateConfig()
    today_scores, trailing_scores = _score_summaries(spark, settings, score_date, config)
    feature_accounts = (
        catalog.read_partition(spark, settings, "account_features", score_date).count()
        if catalog.exists(settings, "account_features")
        else 0
    )
    results = [check_risk_partition(today_scores, feature_accounts)]
    if results[0].status == PASS:
        results += check_score_distribution(today_scores, trailing_scores, config)
    results.append(check_quarantine(*_ingest_summaries(spark, settings, score_date, config), config))
    for result in results:
        print(
            f"quality gate {score_date.isoformat()} {result.name}: {result.status.upper()} ({result.detail})",
            flush=True,
        )
    enforce(score_date, results)
    return results
