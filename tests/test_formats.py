"""Stored formats carry a version (lake/formats.py), and each reader refuses one it does not read in one line that
names the version found and the versions it reads: novelty references, model version tags, training sets, model
config files. Records written before versions existed read as version 0."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from jobs import train
from lake.errors import InputError, UnsupportedFormatError
from lake.formats import FORMAT_VERSION_KEY
from models import fusion, registry
from models.config import load_model_config
from models.training_set import FAMILY_COLUMNS, FAMILY_LATEST_COLUMNS, REFERENCE_FORMAT, TrainingSet


def test_a_score_reference_is_written_with_its_format_and_read_back():
    model = _fusion_model()
    stored = json.loads(model.to_json())
    assert stored[FORMAT_VERSION_KEY] == fusion.FORMAT
    assert fusion.FusionModel.from_json(model.to_json()) == model


def test_a_score_reference_of_another_format_is_refused_in_one_line():
    for version in (None, 99):  # None: written before formats had versions
        stored = json.loads(_fusion_model().to_json())
        if version is None:
            del stored[FORMAT_VERSION_KEY]
        else:
            stored[FORMAT_VERSION_KEY] = version
        with pytest.raises(UnsupportedFormatError) as refused:
            fusion.FusionModel.from_json(json.dumps(stored))
        message = str(refused.value)
        assert (
            "\n" not in message and f"reads version(s) {fusion.FORMAT}" in message and "distillguard train" in message
        )


def _fusion_model() -> fusion.FusionModel:
    rng = np.random.default_rng(5)
    calibration = fusion.Calibration.fit(rng.uniform(0, 1, 500))
    return fusion.FusionModel(
        families=("supervised",),
        calibrations=(calibration,),
        weights=(1.0,),
        intercept=0.0,
        combined=calibration,
        extras={},
    )


def _training_set(reference: dict) -> TrainingSet:
    frame = pd.DataFrame(
        {
            "account_id": ["a", "b"],
            "feature_date": [dt.date(2026, 2, 1), dt.date(2026, 2, 2)],
            "f1": [0.5, 2.0],
            "label": pd.array([1, 0], dtype="int32"),
            "resolved": [True, True],
            "campaign_id": ["camp-A", None],
            "benign_segment": [None, None],
            "standing": [None, None],
            "linked_to_decided": [False, False],
            **{column: [0.1, None] for column in (*FAMILY_COLUMNS, *FAMILY_LATEST_COLUMNS)},
        }
    )
    return TrainingSet(frame, ["f1"], "fs-x", dt.date(2026, 2, 5), reference)


def test_a_stored_training_set_of_an_unknown_format_is_refused_in_one_line():
    current = _training_set({FORMAT_VERSION_KEY: REFERENCE_FORMAT, "snapshots": 2})
    back = train.training_set_from_arrow(train.training_set_to_arrow(current), ["f1"], current.as_of)
    assert back.reference == current.reference
    newer = _training_set({FORMAT_VERSION_KEY: REFERENCE_FORMAT + 1, "snapshots": 2})
    with pytest.raises(UnsupportedFormatError, match=r"training set as of 2026-02-05 is in format version 2; .*"):
        train.training_set_from_arrow(train.training_set_to_arrow(newer), ["f1"], newer.as_of)


def test_a_model_config_file_names_its_format_or_is_read_as_the_first(tmp_path):
    path = tmp_path / "model.toml"
    path.write_text("format_version = 1\n[training]\nmax_depth = 3\n")
    assert load_model_config(str(path))[0].max_depth == 3
    path.write_text("[training]\nmax_depth = 4\n")
    assert load_model_config(str(path))[0].max_depth == 4
    path.write_text("format_version = 2\n[training]\nmax_depth = 3\n")
    with pytest.raises(InputError, match=r"model config .* is in format version 2; this build reads version\(s\) 0"):
        load_model_config(str(path))


@pytest.mark.slow  # a fresh MLflow SQLite store migrates its schema first
def test_model_version_tags_of_an_unknown_format_are_refused(tmp_path):
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", registry_uri=f"sqlite:///{tmp_path}/mlflow.db"
    )
    client.create_registered_model("dg-format")
    version = client.create_model_version("dg-format", source=str(tmp_path / "model")).version
    assert registry.version_info(client, "dg-format", version).feature_columns == []  # unversioned: read
    client.set_model_version_tag("dg-format", version, FORMAT_VERSION_KEY, str(registry.VERSION_TAGS_FORMAT))
    registry.version_info(client, "dg-format", version)
    client.set_model_version_tag("dg-format", version, FORMAT_VERSION_KEY, "7")
    with pytest.raises(
        UnsupportedFormatError, match=f"tags of model dg-format version {version} is in format version 7"
    ):
        registry.version_info(client, "dg-format", version)
