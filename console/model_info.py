"""The champion model as the console's Model page shows it: version, operating points, and a link to its run.
`ChampionCache` keeps the console from ever waiting on MLflow for long."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from lake.config import Settings
from lake.redact import redact
from models import registry
from models.config import LOWEST_TIER, TIER_BENIGN_FPR

log = logging.getLogger(__name__)


def champion_summary(settings: Settings, mlflow_ui_url: str) -> dict | None:
    """None when no version holds the champion alias."""
    client = registry.configure(settings)
    info = registry.alias_version(client, settings.model_name, registry.CHAMPION)
    if info is None:
        return None
    run = client.get_run(info.run_id) if info.run_id else None
    metrics = run.data.metrics if run else {}
    bounds = dict(info.tier_bounds)
    operating_points = []
    for tier, benign_fpr in TIER_BENIGN_FPR:
        # what the tier delivers: the share of the holdout's labelled positive accounts at or above its bound
        operating_points.append(
            {
                "tier": tier,
                "score_from": bounds.get(tier),
                "benign_fpr": benign_fpr,
                "recall": metrics.get(f"tier_recall/{tier}"),
            }
        )
    operating_points.append({"tier": LOWEST_TIER, "score_from": 0.0, "benign_fpr": None, "recall": None})
    audit = _audit(settings, info)
    if audit is not None:
        audited = dict(audit["bounds"])
        for point in operating_points[:-1]:
            point["audited_from"] = audited.get(point["tier"])
    base = mlflow_ui_url.rstrip("/")
    experiment_id = run.info.experiment_id if run else None
    return {
        "name": info.name,
        "version": info.version,
        "run_id": info.run_id,
        "feature_set_version": info.feature_set_version,
        "features": len(info.feature_columns),
        "operating_points": operating_points,
        "audit": audit,
        "headline": {
            key: metrics.get(key) for key in ("pr_auc", "precision_at_k", "campaign_recall", "flagged_benign_fpr")
        },
        "run_url": f"{base}/#/experiments/{experiment_id}/runs/{info.run_id}" if run else None,
        "experiment_url": f"{base}/#/experiments/{experiment_id}/runs" if run else None,
        "experiment_kind": (
            client.get_experiment(experiment_id).tags.get(registry.TAG_EXPERIMENT_KIND) if run else None
        ),
    }


def _audit(settings: Settings, info) -> dict | None:
    """The champion's tier audits as they stand for the latest scored day (models/tier_audit.py), if any."""
    from jobs.risk_query import latest_score_date
    from lake import catalog
    from models import tier_audit

    if not catalog.exists(settings, "account_risk") or not catalog.exists(settings, tier_audit.TABLE):
        return None
    return tier_audit.audit_summary(settings, info.version, info.tier_bounds, latest_score_date(settings))


@dataclass(frozen=True)
class ModelStatus:
    summary: dict | None  # the champion as last read (None: none yet, or MLflow never answered)
    read_at: dt.datetime | None  # when `summary` was read
    unreachable_since: dt.datetime | None  # set while MLflow does not answer


class ChampionCache:
    """The Model page's champion, read from MLflow off the request path: a page waits at most `wait_s` for a
    fresh read, then shows the last one it has and since when MLflow has not answered. One read at a time, in a
    daemon thread, so a hung MLflow holds one thread, never the console (MLflow's own request timeout,
    DG_MLFLOW_TIMEOUT_S, ends that read)."""

    def __init__(self, settings: Settings, mlflow_ui_url: str, wait_s: float = 3.0) -> None:
        self._settings, self._ui_url, self._wait_s = settings, mlflow_ui_url, wait_s
        self._lock = threading.Lock()
        self._reading: threading.Event | None = None
        self._summary: dict | None = None
        self._read_at: dt.datetime | None = None
        self._unreachable_since: dt.datetime | None = None

    def _read(self, done: threading.Event) -> None:
        try:
            summary = champion_summary(self._settings, self._ui_url)
        except Exception:
            log.warning("MLflow at %s did not answer", redact(self._settings.mlflow_tracking_uri), exc_info=True)
            with self._lock:
                self._unreachable_since = self._unreachable_since or dt.datetime.now(dt.UTC)
        else:
            with self._lock:
                self._summary, self._read_at, self._unreachable_since = summary, dt.datetime.now(dt.UTC), None
        finally:
            done.set()

    def status(self) -> ModelStatus:
        with self._lock:
            if self._reading is None or self._reading.is_set():
                self._reading = threading.Event()
                threading.Thread(target=self._read, args=(self._reading,), name="mlflow-champion", daemon=True).start()
            reading = self._reading
        if not reading.wait(self._wait_s):
            with self._lock:
                self._unreachable_since = self._unreachable_since or dt.datetime.now(dt.UTC)
        with self._lock:
            return ModelStatus(self._summary, self._read_at, self._unreachable_since)
