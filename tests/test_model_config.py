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
        ("[training]\nholdout_days = 0\n", "holdout_days and validation_days must be at least 1"),
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
