"""Training and scoring settings from a TOML file: applied, validated, refused in one line when wrong."""

from __future__ import annotations

import pytest

from lake.errors import InputError
from models.config import ScoringConfig, TrainingConfig, load_model_config


def test_no_file_means_the_defaults():
    assert load_model_config(None) == (TrainingConfig(), ScoringConfig())


def test_values_from_the_file_override_the_defaults(tmp_path):
    path = tmp_path / "model.toml"
    path.write_text("[training]\nholdout_days = 2\nmax_depth = 3\n[scoring]\nreasons_per_account = 5\n")
    training, scoring = load_model_config(str(path))
    assert (training.holdout_days, training.max_depth, training.validation_days) == (2, 3, 2)
    assert scoring.reasons_per_account == 5


@pytest.mark.parametrize(
    "text,message",
    [
        ("[training]\nholdout_dayz = 2\n", "unknown \\[training\\] key"),
        ("[trianing]\nholdout_days = 2\n", "unknown section"),
        ("[training]\nholdout_days = 0\n", "holdout_days = 0: .* \\(allowed: integer >= 1 <= 365\\)"),
        # booleans and strings are never numbers, and every value names its key and the range
        ("[training]\nnum_boost_round = true\n", "num_boost_round = True: .*valid integer \\(allowed: integer >= 1"),
        ("[training]\nlearning_rate = \"0.1\"\n", "learning_rate = '0.1': .*valid number"),
        ("[training]\nlearning_rate = -0.1\n", "learning_rate = -0.1: .*greater than 0 \\(allowed: number > 0 <= 1\\)"),
        ("[training]\nsubsample = 7\n", "subsample = 7: .*less than or equal to 1"),
        ("[training]\nmax_depth = 1.5\n", "max_depth = 1.5: .*valid integer"),
        ("[training]\nseed = \"abc\"\n", "seed = 'abc'"),
        ("[training]\nlabel_horizon_days = \"ten\"\n", "label_horizon_days = 'ten': .*valid integer"),
        ("[training]\nmin_label_days = 20\n", "min_label_days = 20: must be between 0 and label_horizon_days \\(14\\)"),
        ("[scoring]\ncluster_top_members = 0\n", "cluster_top_members = 0"),
        ("[training\n", "model config"),
    ],
)
def test_bad_files_are_refused_with_one_line(tmp_path, text, message):
    path = tmp_path / "model.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_model_config(str(path))


def test_the_cli_passes_the_file_to_the_jobs(tmp_path, capsys):
    from jobs.cli import main

    path = tmp_path / "model.toml"
    path.write_text("[training]\nholdout_dayz = 2\n")
    # the file is read (and refused) before any table is touched: exit 2, one line naming the key
    assert main(["--lake", str(tmp_path / "lake"), "--model-config", str(path), "fit", "--as-of", "2026-03-01"]) == 2
    assert "holdout_dayz" in capsys.readouterr().err


def test_a_bad_value_is_refused_before_anything_is_written(tmp_path, capsys):
    """`train` with an out-of-range XGBoost value: one line naming the key, exit 2, and no training set written
    (the whole file is checked when the settings are built, before the job runs)."""
    from jobs.cli import main

    path = tmp_path / "model.toml"
    path.write_text("[training]\nlearning_rate = -0.1\n")
    lake = tmp_path / "lake"
    assert main(["--lake", str(lake), "--model-config", str(path), "train", "--as-of", "2026-03-01"]) == 2
    err = capsys.readouterr().err
    assert "learning_rate = -0.1" in err and len(err.strip().splitlines()) == 1
    assert not (lake / "training_sets").exists()


def test_settings_are_strict_and_name_the_variable(tmp_path, monkeypatch):
    from lake.config import load_settings

    monkeypatch.setenv("DG_SHUFFLE_PARTITIONS", "true")
    with pytest.raises(
        InputError, match=r"DG_SHUFFLE_PARTITIONS \(shuffle_partitions\) = .true.: expected a whole number"
    ):
        load_settings(lake_root=str(tmp_path))
    monkeypatch.setenv("DG_SHUFFLE_PARTITIONS", "0")
    with pytest.raises(InputError, match=r"shuffle_partitions = 0: .*greater than or equal to 1"):
        load_settings(lake_root=str(tmp_path))
    monkeypatch.delenv("DG_SHUFFLE_PARTITIONS")
    with pytest.raises(InputError, match="connect_timeout_s = True"):
        load_settings(lake_root=str(tmp_path), connect_timeout_s=True)


def test_too_few_positives_to_fit_says_how_many_and_where_they_went():
    import pandas as pd

    from lake.errors import MissingInputError
    from models.train import fit_booster

    empty = pd.DataFrame({"f": pd.Series([], dtype=float), "label": pd.Series([], dtype=int)})
    with pytest.raises(MissingInputError, match=r"the fit dates hold 0 snapshots \(0 positives, 0 negatives\)"):
        fit_booster(empty, empty, ["f"], TrainingConfig(), "cpu")
