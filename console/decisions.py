"""Analyst decisions: the one write path from people into the label store.

The console's decision form and `distillguard review decide` both call `record_decision`. A decision on an account,
or on a whole cluster or campaign (one label per member), is appended to `enforcement_labels` with `source=analyst` in ONE
delta-rs commit. The commit's metadata carries the decision id, the analyst and the target, so the Delta log
itself says who wrote which rows even if the second step fails. Then one audit row per labelled account goes to
`analyst_decisions`: who, when, what, the account's previous standing, and the score, tier and model version the
analyst saw. The decision id links the audit rows to the label commit. (Not its version number: delta-rs's
`history()` numbers commits from the snapshot it loaded, which is off when other writers commit meanwhile.)

Concurrency: both writes are blind appends (no read of the target in the transaction), which Delta never treats
as conflicting; delta-rs retries the commit on a lost race (`MAX_COMMIT_RETRIES`), so concurrent decisions neither
lose nor duplicate rows (tests/test_decisions.py runs them in separate processes). If the retries run out, nothing
was written and a ConflictError (exit 5) says to retry.

Once both writes are done, an event for the enforcement_labels Asset goes to Airflow's REST API where one is
configured (console/airflow_events.py), so the retrain DAG is queued; the receipt says whether that worked.

Reversals are new rows: the latest decision stands, for the console's queue and for training
(models/training_set.py). `needs_more_info` is recorded like the others but is not a training label.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from console.tables import dataset
from jobs import preconditions
from jobs.query_output import check_account_id
from jobs.risk_query import check_date, latest_score_date
from lake import catalog
from lake.config import Settings
from lake.errors import ConflictError, InputError, MissingInputError
from models.training_set import BENIGN, EXTRACTION, NEEDS_MORE_INFO

LABELS = (EXTRACTION, BENIGN, NEEDS_MORE_INFO)
SOURCE = "analyst"
LABELS_TABLE = "enforcement_labels"
AUDIT_TABLE = "analyst_decisions"
MAX_NOTE_CHARS = 2000
ANALYST_PATTERN = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
MAX_COMMIT_RETRIES = 100


@dataclass(frozen=True)
class DecisionReceipt:
    decision_id: str
    decided_at: dt.datetime
    label: str
    account_ids: tuple[str, ...]
    scheduler: str = ""  # what Airflow was told (console/airflow_events.py)


def _check_label(label: object) -> str:
    if label not in LABELS:
        raise InputError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    return label


def _check_note(note: object) -> str:
    if not isinstance(note, str) or not note.strip():
        raise InputError("a decision needs a note saying why")
    if len(note) > MAX_NOTE_CHARS:
        raise InputError(f"the note has {len(note)} characters; at most {MAX_NOTE_CHARS}")
    return note.strip()


def check_analyst(analyst: object) -> str:
    if not isinstance(analyst, str) or not ANALYST_PATTERN.fullmatch(analyst):
        raise InputError(
            f"analyst must be 1-64 characters of letters, digits, '_', '.', '@', '+' or '-', got {analyst!r}"
        )
    return analyst


def _check_campaign_id(campaign_id: object) -> str | None:
    if campaign_id in (None, ""):
        return None
    try:
        return check_account_id(campaign_id)  # the same id contract as accounts
    except InputError:
        raise InputError(
            f"campaign id must be 1-128 characters of letters, digits, '_', '.', ':' or '-', got {campaign_id!r}"
        ) from None


def _risk_rows(
    settings: Settings, score_date: dt.date, account_ids: list[str] | None = None, cluster_id: str | None = None
) -> pa.Table:
    """account_risk rows of one score date for the given accounts, or for one cluster's members."""
    if not catalog.exists(settings, "account_risk"):
        return pa.table({c: [] for c in ("account_id", "score", "tier", "model_name", "model_version")})
    selected = pc.field("score_date") == pa.scalar(score_date, pa.date32())
    if cluster_id is not None:
        selected = selected & (pc.field("cluster_id") == cluster_id)
    else:
        selected = selected & pc.field("account_id").isin(account_ids)
    return dataset(settings, "account_risk").to_table(
        columns=["account_id", "score", "tier", "model_name", "model_version"], filter=selected
    )


def _ever_seen(settings: Settings, account_id: str) -> bool:
    """The account has a row in account_risk or account_daily on any day."""
    for name in ("account_risk", "account_daily"):
        if catalog.exists(settings, name):
            found = dataset(settings, name).head(1, columns=["account_id"], filter=pc.field("account_id") == account_id)
            if found.num_rows:
                return True
    return False


def latest_decisions(settings: Settings, account_ids=None) -> dict[str, dict]:
    """Each account's standing: its latest enforcement_labels row (any source); at equal decided_at, extraction
    wins, as in training. `account_ids=None` reads them all."""
    if not catalog.exists(settings, LABELS_TABLE):
        return {}
    selected = None if account_ids is None else pc.field("account_id").isin(list(account_ids))
    rows = dataset(settings, LABELS_TABLE).to_table(
        columns=["account_id", "label", "decided_at", "source"], filter=selected
    )
    if rows.num_rows == 0:
        return {}
    # sort so that the standing row comes last per account, then keep the last
    rows = rows.append_column("is_extraction", pc.equal(rows["label"], EXTRACTION))
    rows = rows.sort_by([("account_id", "ascending"), ("decided_at", "ascending"), ("is_extraction", "ascending")])
    standing: dict[str, dict] = {}
    for row in rows.select(["account_id", "label", "decided_at", "source"]).to_pylist():
        standing[row["account_id"]] = row
    return standing


def _append(settings: Settings, name: str, rows: pa.Table, metadata: dict[str, str]) -> None:
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    try:
        catalog.ensure_table(settings, name)
    except Exception:
        # two first decisions racing to create the table: the loser's create fails, the winner's table is there
        if not catalog.exists(settings, name):
            raise
    decl = catalog.table(name)
    try:
        write_deltalake(
            settings.table_uri(name),
            rows.select(decl.schema.names).cast(decl.schema),
            mode="append",
            commit_properties=CommitProperties(custom_metadata=metadata, max_commit_retries=MAX_COMMIT_RETRIES),
        )
    except CommitFailedError as exc:
        raise ConflictError(
            f"{name}: the commit lost {MAX_COMMIT_RETRIES} races with other writers, nothing was "
            f"written; record the decision again ({exc})"
        ) from exc


def record_decision(
    settings: Settings,
    *,
    analyst: str,
    label: str,
    note: str,
    account_id: str | None = None,
    cluster_id: str | None = None,
    campaign: str | None = None,
    campaign_id: str | None = None,
    score_date: dt.date | None = None,
    now: dt.datetime | None = None,
    allow_unknown: bool = False,
) -> DecisionReceipt:
    """Label one account, every member of one cluster (as scored on `score_date`, default the latest day) or every
    latest member of one campaign (the campaigns table; its id becomes the labels' campaign_id).

    Only what exists is decided: an account the lake has never seen is refused unless `allow_unknown` (an account
    known from outside, e.g. an abuse report), and a `score_date` that was never scored is refused.
    Raises InputError for invalid input and MissingInputError for a day never scored or a cluster with no members
    on that day."""
    analyst, label, note = check_analyst(analyst), _check_label(label), _check_note(note)
    campaign_id = _check_campaign_id(campaign_id)
    if sum(target is not None for target in (account_id, cluster_id, campaign)) != 1:
        raise InputError("decide on exactly one account, one cluster or one campaign")
    score_date = check_date(score_date)
    if score_date is not None and not preconditions.partition_rows(settings, "account_risk", score_date):
        raise MissingInputError(f"{score_date} was never scored (no account_risk rows); pick a scored --date")
    if score_date is None and catalog.exists(settings, "account_risk"):
        score_date = latest_score_date(settings)
    if cluster_id is not None:
        target_kind, target_id = "cluster", check_account_id(cluster_id)
        if score_date is None:
            raise MissingInputError("no account_risk table: a cluster decision needs the scored cluster members")
        seen = _risk_rows(settings, score_date, cluster_id=target_id)
        if seen.num_rows == 0:
            raise MissingInputError(f"cluster {target_id!r} has no members in account_risk on {score_date}")
        account_ids = sorted(seen["account_id"].to_pylist())
    elif campaign is not None:
        from jobs.evidence_query import campaign as read_campaign

        target_kind, target_id = "campaign", _check_campaign_id(campaign)
        account_ids = sorted(m["account_id"] for m in read_campaign(settings, target_id)["members"])
        if not account_ids:
            raise MissingInputError(f"campaign {target_id!r} has no members")
        campaign_id = campaign_id or target_id
        seen = _risk_rows(settings, score_date, account_ids=account_ids) if score_date else None
    else:
        target_kind, target_id = "account", check_account_id(account_id)
        account_ids = [target_id]
        seen = _risk_rows(settings, score_date, account_ids=account_ids) if score_date else None
        if not allow_unknown and (seen is None or seen.num_rows == 0) and not _ever_seen(settings, target_id):
            raise InputError(
                f"account {target_id!r} has never appeared in the lake; check the id, or pass --allow-unknown "
                "for an account known from outside"
            )
    seen_by_account = {row["account_id"]: row for row in seen.to_pylist()} if seen is not None else {}
    previous = latest_decisions(settings, account_ids)

    decided_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    decision_id = uuid.uuid4().hex
    n = len(account_ids)
    metadata = {
        "decision_id": decision_id,
        "analyst": analyst,
        "target": f"{target_kind}:{target_id}",
        "label": label,
        "accounts": str(n),
    }
    _append(
        settings,
        LABELS_TABLE,
        pa.table(
            {
                "account_id": account_ids,
                "label": [label] * n,
                "decided_at": [decided_at] * n,
                "campaign_id": [campaign_id] * n,
                "source": [SOURCE] * n,
                "note": [note] * n,
            }
        ),
        metadata,
    )

    audit = []
    for account in account_ids:
        before, risk = previous.get(account) or {}, seen_by_account.get(account) or {}
        audit.append(
            {
                "decision_id": decision_id,
                "decided_at": decided_at,
                "analyst": analyst,
                "target_kind": target_kind,
                "target_id": target_id,
                "account_id": account,
                "label": label,
                "note": note,
                "campaign_id": campaign_id,
                "previous_label": before.get("label"),
                "previous_decided_at": before.get("decided_at"),
                "score_date": score_date,
                "score": risk.get("score"),
                "tier": risk.get("tier"),
                "model_name": risk.get("model_name"),
                "model_version": risk.get("model_version"),
            }
        )
    _append(settings, AUDIT_TABLE, pa.Table.from_pylist(audit, schema=catalog.table(AUDIT_TABLE).schema), metadata)
    from console.airflow_events import notify_decision

    return DecisionReceipt(
        decision_id=decision_id,
        decided_at=decided_at,
        label=label,
        account_ids=tuple(account_ids),
        scheduler=notify_decision(settings, decision_id, label, n),
    )


def decision_log(settings: Settings, account_id: str) -> list[dict]:
    """The audit rows of one account, newest first."""
    if not catalog.exists(settings, AUDIT_TABLE):
        return []
    rows = dataset(settings, AUDIT_TABLE).to_table(filter=pc.field("account_id") == check_account_id(account_id))
    return rows.sort_by([("decided_at", "descending")]).to_pylist()


def receipt_json(receipt: DecisionReceipt) -> str:
    return json.dumps(
        {
            "decision_id": receipt.decision_id,
            "decided_at": receipt.decided_at.isoformat(),
            "label": receipt.label,
            "accounts": list(receipt.account_ids),
            "scheduler": receipt.scheduler,
        }
    )
