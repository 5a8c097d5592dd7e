"""Point-in-time labelling rules on hand-built rows, the time split, and the Delta-backed training set read."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from features.registry import feature_columns, feature_set_version
from lake import catalog
from lake.errors import MissingInputError
from models import pu
from models.config import TrainingConfig
from models.training_set import (
    NOT_MODEL_INPUTS,
    account_outcomes,
    build_training_set,
    calibration_mask,
    clean_reference,
    point_in_time_labels,
    select_training_snapshots,
    split_by_time,
)

UTC = dt.UTC
AS_OF = dt.date(2026, 2, 20)
HORIZON = 5


def d(day: int) -> dt.date:
    return dt.date(2026, 2, day)


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 2, day, hour, tzinfo=UTC)


# account, label, decided_at, campaign_id, note
LABELS = [
    ("pos", "extraction", at(3), "camp-A", "analyst review"),
    ("late", "extraction", at(10), "camp-A", None),
    ("future", "extraction", at(21), "camp-B", None),  # decided after as_of: must stay invisible
    ("benign", "benign", at(2), None, "eval_harness"),
    ("sameday", "extraction", at(1, 23), "camp-A", None),  # decided on D itself: known at D
    ("reversed", "extraction", at(2), "camp-A", None),
    ("reversed", "benign", at(4), None, "education"),  # cleared on appeal two days later
]

SNAPSHOTS = [
    ("pos", d(1)),
    ("pos", d(5)),
    ("late", d(1)),
    ("late", d(6)),
    ("future", d(18)),
    ("benign", d(1)),
    ("sameday", d(1)),
    ("reversed", d(1)),
    ("reversed", d(3)),
    ("reversed", d(5)),
    ("quiet", d(1)),
    ("quiet", d(19)),
]


def _labels_df(spark):
    rows = [(a, lab, when, camp, "analyst", note) for a, lab, when, camp, note in LABELS]
    return spark.createDataFrame(rows, catalog.spark_ddl("enforcement_labels"))


def _snapshots_df(spark):
    return spark.createDataFrame(SNAPSHOTS, "account_id string, feature_date date")


def _rows(df) -> dict[tuple[str, dt.date], dict]:
    return {(r["account_id"], r["feature_date"]): r.asDict() for r in df.collect()}


def test_point_in_time_labels(spark):
    rows = _rows(point_in_time_labels(_snapshots_df(spark), _labels_df(spark), AS_OF, HORIZON))
    assert len(rows) == len(SNAPSHOTS)
    # decided 2 days after D, inside the horizon
    assert rows[("pos", d(1))]["window_label"] == "extraction"
    # on D=5 the extraction decided on day 3 is already known
    assert rows[("pos", d(5))]["known_extraction"] is True
    # decided 9 days after D=1: outside the 5-day horizon; inside it for D=6
    assert rows[("late", d(1))]["window_label"] is None
    assert rows[("late", d(6))]["window_label"] == "extraction"
    # decided after as_of: invisible, and D+5 runs past as_of
    assert rows[("future", d(18))]["window_label"] is None
    assert rows[("future", d(18))]["horizon_complete"] is False
    assert rows[("benign", d(1))]["window_label"] == "benign"
    # a decision taken late on day D is known to the snapshot at D
    assert rows[("sameday", d(1))]["known_extraction"] is True
    # reversal: latest decision in (1, 6] is benign; on D=3 the standing is extraction; on D=5 it is benign again
    assert rows[("reversed", d(1))]["window_label"] == "benign"
    assert rows[("reversed", d(3))]["known_extraction"] is True
    assert rows[("reversed", d(5))]["known_extraction"] is False
    assert rows[("quiet", d(1))] == {
        "account_id": "quiet",
        "feature_date": d(1),
        "known_extraction": False,
        "window_label": None,
        "horizon_complete": True,
        "observed_label_days": 5,
    }
    assert rows[("quiet", d(19))]["observed_label_days"] == 1  # only day 20 observed


def test_select_training_snapshots_keeps_unresolved_as_negatives_by_default(spark):
    labelled = point_in_time_labels(_snapshots_df(spark), _labels_df(spark), AS_OF, HORIZON)
    rows = _rows(select_training_snapshots(labelled, "negative"))
    labels = {key: row["label"] for key, row in rows.items()}
    assert labels == {
        ("pos", d(1)): 1,
        ("late", d(1)): 0,
        ("late", d(6)): 1,
        ("future", d(18)): 0,
        ("benign", d(1)): 0,
        ("reversed", d(1)): 0,
        ("reversed", d(5)): 0,
        ("quiet", d(1)): 0,
        ("quiet", d(19)): 0,
    }  # pos@5, sameday@1 and reversed@3 are excluded: extraction already known at D
    assert rows[("future", d(18))]["resolved"] is False
    assert rows[("quiet", d(19))]["resolved"] is False
    assert rows[("reversed", d(5))]["resolved"] is True  # 5 + 5 <= 20: the whole horizon has been observed


def test_select_training_snapshots_can_drop_unresolved(spark):
    labelled = point_in_time_labels(_snapshots_df(spark), _labels_df(spark), AS_OF, HORIZON)
    keys = set(_rows(select_training_snapshots(labelled, "drop")))
    assert ("future", d(18)) not in keys and ("quiet", d(19)) not in keys
    assert ("quiet", d(1)) in keys and ("pos", d(1)) in keys
    with pytest.raises(ValueError, match="unresolved_snapshots"):
        select_training_snapshots(labelled, "ignore")


def test_snapshots_without_enough_observed_label_days_are_cut_by_date(spark):
    labelled = point_in_time_labels(_snapshots_df(spark), _labels_df(spark), AS_OF, HORIZON)
    keys = set(_rows(select_training_snapshots(labelled, "negative", min_label_days=3)))
    assert ("future", d(18)) not in keys and ("quiet", d(19)) not in keys  # 2 and 1 observed days
    assert len(keys) == 7
    keys = set(_rows(select_training_snapshots(labelled, "negative", min_label_days=2)))
    assert ("future", d(18)) in keys and ("quiet", d(19)) not in keys


def test_as_of_cutoff_hides_later_labels(spark):
    # as of day 2 the extraction decided on day 3 does not exist yet: pos@1 is an unresolved negative
    rows = _rows(
        select_training_snapshots(
            point_in_time_labels(
                _snapshots_df(spark).filter("feature_date <= DATE'2026-02-02'"), _labels_df(spark), d(2), HORIZON
            ),
            "negative",
        )
    )
    assert rows[("pos", d(1))]["label"] == 0
    assert rows[("pos", d(1))]["resolved"] is False
    # the benign decision on day 2 is within the cutoff and resolves its snapshot
    assert rows[("benign", d(1))]["resolved"] is True


def test_account_outcomes_use_the_standing_at_as_of(spark):
    rows = {r["account_id"]: r.asDict() for r in account_outcomes(_labels_df(spark), AS_OF).collect()}
    assert rows["pos"] == {
        "account_id": "pos",
        "standing": "extraction",
        "campaign_id": "camp-A",
        "benign_segment": None,
    }
    assert rows["reversed"] == {
        "account_id": "reversed",
        "standing": "benign",
        "campaign_id": None,
        "benign_segment": "education",
    }
    assert rows["benign"]["benign_segment"] == "eval_harness"
    assert "future" not in rows  # decided after as_of


def test_split_by_time_uses_whole_dates():
    dates = [d(i) for i in range(1, 9) for _ in range(3)]
    labels = [1, 0, 0] * 8  # a positive on every date
    split = split_by_time(dates, labels, holdout_days=2, validation_days=3)
    assert split.holdout_dates == [d(7), d(8)]
    assert split.validation_dates == [d(4), d(5), d(6)]
    assert split.fit_dates == [d(1), d(2), d(3)]
    assert split.unlabelled_trailing_dates == []


def test_split_by_time_leaves_out_trailing_dates_whose_labels_have_not_arrived():
    """Enforcement labels in bursts: the last four dates hold no positive yet. Training must still split, with
    positives on every side, and say which dates it left out."""
    dates = [d(i) for i in range(1, 13) for _ in range(2)]
    labels = [1 if i <= 8 and i % 2 == 0 and j == 0 else 0 for i in range(1, 13) for j in range(2)]
    split = split_by_time(dates, labels, holdout_days=2, validation_days=2)
    assert split.holdout_dates == [d(7), d(8)]
    assert split.unlabelled_trailing_dates == [d(9), d(10), d(11), d(12)]
    assert split.validation_dates == [d(5), d(6)]  # d(6) has positives
    assert split.fit_dates == [d(1), d(2), d(3), d(4)]
    assert "trailing date(s) without positives left out" in split.describe()


def test_split_by_time_reaches_back_for_a_validation_date_with_positives():
    dates = [d(i) for i in range(1, 11)]
    labels = [0, 1, 0, 1, 0, 0, 0, 0, 1, 1]  # nothing in d(5)..d(8)
    split = split_by_time(dates, labels, holdout_days=2, validation_days=2)
    assert split.holdout_dates == [d(9), d(10)]
    assert split.validation_dates == [d(4), d(5), d(6), d(7), d(8)]
    assert split.fit_dates == [d(1), d(2), d(3)]


def test_split_by_time_fails_only_when_the_whole_history_lacks_positives():
    from lake.errors import MissingInputError

    with pytest.raises(MissingInputError, match="positives on 2 feature date"):
        split_by_time([d(i) for i in range(1, 20)], [1, 1] + [0] * 17, holdout_days=2, validation_days=2)


def _features_table(rows: list[tuple[str, dt.date, str]]) -> pa.Table:
    columns = feature_columns()
    data = {"account_id": [r[0] for r in rows], "feature_date": [r[1] for r in rows]}
    for i, column in enumerate(columns):
        data[column] = [float(i + n) for n in range(len(rows))]
    # no cluster holds a decided account (training leaves unlabelled members of such clusters out)
    data["cluster_labelled_extraction_share"] = [0.0] * len(rows)
    data["feature_set_version"] = [r[2] for r in rows]
    return pa.table(data)


def test_build_training_set_from_delta_tables(spark, settings):
    current = feature_set_version()
    feature_rows = [(a, day, current) for a, day in SNAPSHOTS] + [("stale", d(1), "fs-old"), ("pos", d(21), current)]
    catalog.write_arrow(settings, "account_features", _features_table(feature_rows))
    labels = pa.Table.from_pylist(
        [
            dict(
                zip(
                    ("account_id", "label", "decided_at", "campaign_id", "source", "note"),
                    (a, lab, when, camp, "analyst", note),
                )
            )
            for a, lab, when, camp, note in LABELS
        ]
    )
    catalog.write_arrow(settings, "enforcement_labels", labels)

    training = build_training_set(spark, settings, AS_OF, TrainingConfig(label_horizon_days=HORIZON, min_label_days=1))
    frame = training.frame
    assert training.feature_columns == feature_columns()
    assert training.feature_set_version == current
    assert list(frame.columns[:2]) == ["account_id", "feature_date"]
    assert list(frame.columns[2 : 2 + len(feature_columns())]) == feature_columns()
    keys = set(zip(frame["account_id"], frame["feature_date"]))
    assert ("stale", d(1)) not in keys  # other feature-set version
    assert ("pos", d(21)) not in keys  # after as_of
    assert ("pos", d(5)) not in keys  # already known extraction
    assert len(frame) == 9
    positives = frame[frame["label"] == 1]
    assert set(zip(positives["account_id"], positives["feature_date"])) == {("pos", d(1)), ("late", d(6))}
    assert set(positives["campaign_id"]) == {"camp-A"}
    assert frame.loc[frame["account_id"] == "benign", "benign_segment"].tolist() == ["eval_harness"]
    ref = training.reference
    assert ref["account_features"]["version"] == 0 and ref["enforcement_labels"]["version"] == 0
    assert (ref["feature_date_min"], ref["feature_date_max"]) == ("2026-02-01", "2026-02-19")
    assert ref["snapshots"] == 9 and ref["positives"] == 2
    assert ref["unresolved_snapshots"] == 2  # future@18 and quiet@19
    assert ref["snapshots_other_feature_set_versions"] == 1

    default = build_training_set(spark, settings, AS_OF, TrainingConfig(label_horizon_days=HORIZON))
    assert len(default.frame) == 7 and default.reference["unresolved_snapshots"] == 0  # days 18, 19 cut


def test_the_clean_benign_reference_is_benign_decisions_and_established_unlinked_accounts_one_row_each():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "account_id": ["old", "old", "young", "linked", "cleared", "hydra", "hydra-sibling"],
            "feature_date": [d(1), d(2), d(2), d(2), d(2), d(2), d(2)],
            "label": [0, 0, 0, 0, 0, 1, 0],
            "standing": [None, None, None, None, "benign", "extraction", None],
            "linked_to_decided": [False, False, False, True, True, True, True],
            "account_age_days": [400.0, 401.0, 3.0, 500.0, 2.0, 5.0, 6.0],
        }
    )
    reference = clean_reference(frame, min_age_days=30)
    assert sorted(reference["account_id"]) == ["cleared", "old"]  # young, linked and campaign accounts stay out
    assert sorted(clean_reference(frame, min_age_days=0)["account_id"]) == ["cleared", "old", "young"]
    assert reference.loc[reference["account_id"] == "old", "feature_date"].tolist() == [d(2)]  # its latest row
    assert NOT_MODEL_INPUTS == ("cluster_labelled_extraction_share",)


def test_the_tiers_calibration_leaves_out_unlabelled_reference_accounts_that_resemble_decided_extraction():
    import pandas as pd

    reference = pd.DataFrame(
        {
            "account_id": ["cleared", "lookalike", "ordinary", "never_scored"],
            "standing": ["benign", None, None, None],
            "family_latest_resemblance": [0.9, 0.6, -0.2, np.nan],
        }
    )
    # an account decided benign stays whatever it resembles; one never scored by the family is not left out
    assert calibration_mask(reference, 0.5).tolist() == [True, False, True, True]
    assert calibration_mask(reference, 0.7).tolist() == [True, True, True, True]
    assert calibration_mask(reference, None).tolist() == [True, True, True, True]


def test_positive_unlabelled_weights_count_each_account_once_and_match_ages():
    import pandas as pd

    rng = np.random.default_rng(5)
    # 50 labelled positives, 50 hidden ones among 550 unlabelled: the classifier scores both alike
    labels = np.r_[np.ones(50, dtype=int), np.zeros(550, dtype=int)]
    g = np.r_[rng.uniform(0.5, 0.7, 100), rng.uniform(0.0, 0.05, 500)]
    benign = np.zeros(600, dtype=bool)
    benign[-1] = True
    w, info = pu.elkan_noto(labels, g, benign)
    assert (w[:50] == 1.0).all() and w[-1] == 0.0  # positives, and an account decided benign is only a negative
    assert w[50:100].mean() > 0.5 > 0.05 > w[100:].mean()  # the hidden positives get most of a positive's weight
    assert 0.05 < info.hidden_positive_share < 0.2 and 0.3 < info.label_frequency < 0.7
    labels, w = np.array([1, 1, 0, 0, 0, 0]), np.array([1.0, 1.0, 0.6, 0.0, 0.0, 0.0])
    frame = pd.DataFrame(
        {
            "account_id": ["p", "p", "u1", "u2", "u2", "u2"],
            "label": labels,
            "account_age_days": [5.0, 6.0, 5.0, 500.0, 501.0, 502.0],
        }
    )
    rows, y, weight = pu.training_rows(frame, w)
    assert len(rows) == len(frame) + int(((labels == 0) & (w > 0)).sum())  # a positive copy per weighted unlabelled
    assert weight[y == 1].sum() == pytest.approx(weight[y == 0].sum())  # classes balanced in total weight
    assert pu.account_weights(frame["account_id"]).tolist() == [0.5, 0.5, 1.0, 1 / 3, 1 / 3, 1 / 3]
    # ten young positives; ten young and thirty old negatives: the young negatives weigh more, the old less
    ages = np.r_[np.linspace(1, 20, 10), np.linspace(1, 20, 10), np.linspace(300, 900, 30)]
    factor = pu.age_matching_weights(ages, np.r_[np.ones(10), np.zeros(40)], np.ones(50))
    assert (factor[:10] == 1.0).all() and factor[10:20].min() > 1.0 > factor[20:].max()
    assert set(pu.folds(["a", "a", "b"], 4)[:2]) == {pu.folds(["a"], 4)[0]}  # one account, one fold


def test_build_training_set_refuses_a_features_table_without_registered_columns(spark, settings):
    table = _features_table([("a", d(1), feature_set_version())]).drop(["cot_elicitation_rate_7d"])
    from deltalake import write_deltalake

    write_deltalake(settings.table_uri("account_features"), table, partition_by=["feature_date"])
    catalog.write_arrow(
        settings,
        "enforcement_labels",
        pa.Table.from_pylist(
            [
                {
                    "account_id": "a",
                    "label": "benign",
                    "decided_at": at(2),
                    "campaign_id": None,
                    "source": "analyst",
                    "note": "x",
                }
            ]
        ),
    )
    with pytest.raises(ValueError, match="cot_elicitation_rate_7d"):
        build_training_set(spark, settings, AS_OF, TrainingConfig())


def test_training_refuses_a_lake_family_the_families_job_did_not_score_on_every_date():
    import pandas as pd

    from models.train import check_lake_families
    from models.training_set import TrainingSet

    days = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(4)]
    frame = pd.DataFrame({"account_id": ["a", "b", "a", "b"], "feature_date": days})
    partial = TrainingSet(frame, [], "fs", days[-1], {"family_scores_dates": [d.isoformat() for d in days[:2]]})
    check_lake_families(partial, ("supervised", "harvest yield"))  # no lake family asked for: nothing to check
    with pytest.raises(
        MissingInputError, match=r"propagation has none on 2 \(2026-03-03..2026-03-04\).*--steps families"
    ):
        check_lake_families(partial, ("supervised", "propagation"))
    complete = TrainingSet(frame, [], "fs", days[-1], {"family_scores_dates": [d.isoformat() for d in days]})
    check_lake_families(complete, ("supervised", "propagation"))
    # a families job from before resemblance existed scored propagation every day, resemblance only the last two
    by_family = {"propagation": [d.isoformat() for d in days], "resemblance": [d.isoformat() for d in days[2:]]}
    upgraded = TrainingSet(
        frame,
        [],
        "fs",
        days[-1],
        {"family_scores_dates": [d.isoformat() for d in days], "family_scores_dates_by_family": by_family},
    )
    check_lake_families(upgraded, ("supervised", "propagation"))
    with pytest.raises(MissingInputError, match=r"resemblance has none on 2 \(2026-03-01..2026-03-02\)"):
        check_lake_families(upgraded, ("supervised", "propagation", "resemblance"))
