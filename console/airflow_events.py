"""Closing the review loop into the schedule: after a review session records decisions, post an event for the
enforcement_labels Asset through Airflow 3's REST API, so the retrain DAG (scheduled on that Asset as well as
weekly, airflow_dags/distillguard_dags.py) is queued without waiting for Monday.

Where: Settings.airflow_api_url (DG_AIRFLOW_API_URL), signing in with airflow_user / airflow_password
(DG_AIRFLOW_USER, DG_AIRFLOW_PASSWORD) at the api-server's `/auth/token` for a JWT, then
`GET /api/v2/assets?name_pattern=...` for the Asset's id and `POST /api/v2/assets/events`. Credentials never
appear in a message: errors name the URL (redacted) and the HTTP status only. Without a URL nothing is posted and
the console's Model page says that retraining waits for its weekly run.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from jobs.steps import LABELS_ASSET_NAME
from lake.config import Settings
from lake.redact import redact

TIMEOUT_S = 10.0
NOT_CONFIGURED = (
    "No Airflow is configured (DG_AIRFLOW_API_URL is unset): decisions reach the training set, and the retrain DAG "
    "runs on its weekly schedule."
)


class AirflowEventError(RuntimeError):
    pass


@dataclass(frozen=True)
class AssetEvent:
    event_id: int
    asset_id: int
    timestamp: str


def status_line(settings: Settings) -> str:
    """What the Model page says about the loop from decisions to retraining."""
    if not settings.airflow_api_url:
        return NOT_CONFIGURED
    return (
        f"Decisions post an event for the Airflow Asset {LABELS_ASSET_NAME} at {redact(settings.airflow_api_url)}; "
        "the retrain DAG runs on it as well as weekly."
    )


def _call(method: str, url: str, token: str | None = None, body: dict | None = None) -> dict:
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    path = urllib.parse.urlsplit(url).path
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise AirflowEventError(f"Airflow {method} {path} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AirflowEventError(f"Airflow at {redact(url)} unreachable ({type(reason).__name__})") from None


def post_labels_event(settings: Settings, extra: dict) -> AssetEvent:
    """Post one event for the labels Asset; raises AirflowEventError (message without credentials) on failure."""
    base = (settings.airflow_api_url or "").rstrip("/")
    if not base:
        raise AirflowEventError(NOT_CONFIGURED)
    token = None
    if settings.airflow_user:
        password = settings.airflow_password.get_secret_value() if settings.airflow_password else ""
        token = _call("POST", f"{base}/auth/token", body={"username": settings.airflow_user, "password": password})[
            "access_token"
        ]
    query = urllib.parse.urlencode({"name_pattern": LABELS_ASSET_NAME, "limit": 100})
    assets = _call("GET", f"{base}/api/v2/assets?{query}", token)["assets"]
    matching = [a for a in assets if a["name"] == LABELS_ASSET_NAME]
    if not matching:
        raise AirflowEventError(
            f"Airflow knows no asset {LABELS_ASSET_NAME!r}: deploy airflow_dags/ so the retrain DAG registers it"
        )
    event = _call("POST", f"{base}/api/v2/assets/events", token, {"asset_id": matching[0]["id"], "extra": extra})
    return AssetEvent(event_id=event["id"], asset_id=event["asset_id"], timestamp=event["timestamp"])


def notify_decision(settings: Settings, decision_id: str, label: str, accounts: int) -> str:
    """Post the event for a recorded decision and say what happened, in one line for the analyst. A failure does not
    undo the decision (it is in the label table already): it is reported, and the weekly retrain still sees it."""
    if not settings.airflow_api_url:
        return "Airflow not configured: retraining waits for its weekly run."
    try:
        event = post_labels_event(settings, {"decision_id": decision_id, "label": label, "accounts": accounts})
    except AirflowEventError as exc:
        return f"Airflow NOT notified ({exc}); the weekly retrain will still use this decision."
    return f"Airflow notified: asset event {event.event_id} queues the retrain DAG."
