"""The fused score and its tiers (models/fusion.py): every family calibrated on the clean benign reference, combined
by evidence, and tiers that hold their benign FPR on benign accounts the reference never saw."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lake.errors import MissingInputError, UnsupportedFormatError
from lake.formats import FORMAT_VERSION_KEY
from models import fusion
from models.config import TIER_BENIGN_FPR


def _benign(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"supervised": rng.normal(-4.0, 1.0, rows), "behaviour": rng.gamma(2.0, 0.5, rows)}


def _positives(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"supervised": rng.normal(0.0, 1.5, rows), "behaviour": rng.gamma(2.0, 0.6, rows)}


def test_a_family_p_value_is_the_share_of_the_reference_at_or_above_with_an_exponential_tail():
    reference = np.random.default_rng(1).normal(size=5_000)
    calibration = fusion.Calibration.fit(reference)
    assert calibration.exceedance(np.array([reference.min() - 1]))[0] == 1.0
    assert calibration.exceedance(np.array([np.median(reference)]))[0] == pytest.approx(0.5, abs=0.001)
    beyond = calibration.exceedance(np.array([reference.max(), reference.max() + 1, reference.max() + 2]))
    assert beyond[0] < 1 / 1000 and beyond[1] < beyond[0] and beyond[2] < beyond[1]  # strictly decreasing past the top
    stored = fusion.Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert len(stored.values) <= fusion.MAX_STORED_POINTS
    probe = np.linspace(-4, 6, 101)
    assert stored.exceedance(probe) == pytest.approx(calibration.exceedance(probe), rel=1e-5)


def test_a_family_that_is_zero_for_most_of_the_reference_starts_its_tail_where_the_ties_end():
    """Propagation is 0 for every account far from a decision: the top 1% of the reference is a tie, and a tail
    started on it would call a small positive score as rare as one ten thousand times larger."""
    reference = np.r_[np.zeros(9_950), np.random.default_rng(2).exponential(0.1, 50)]  # 0.5% above the tie
    calibration = fusion.Calibration.fit(reference)
    assert calibration.exceedance(np.array([0.0]))[0] == 1.0
    just_above = calibration.exceedance(np.array([1e-6]))[0]
    assert just_above == pytest.approx(0.005, rel=0.01)  # the share strictly above the tie, not 1% and not 0
    assert calibration.exceedance(np.array([0.2, 0.4]))[1] < calibration.exceedance(np.array([0.2]))[0] < just_above
    all_tied = fusion.Calibration.fit(np.zeros(5_000))  # nothing above the tie: no tail, one account's share
    assert all_tied.exceedance(np.array([0.0, 3.0])).tolist() == [1.0, pytest.approx(1 / 5_001)]


def test_tiers_hold_their_benign_fpr_on_benign_accounts_the_reference_never_saw():
    model = fusion.fit(_benign(20_000, 2), _positives(500, 3))
    assert fusion.tier_bounds(TIER_BENIGN_FPR) == (("critical", 0.9999), ("high", 0.999), ("elevated", 0.99))
    unseen = fusion.score(_benign(200_000, 4), model).score
    for name, bound in fusion.tier_bounds(TIER_BENIGN_FPR):
        rate = dict(TIER_BENIGN_FPR)[name]
        assert np.mean(unseen >= bound) <= 1.5 * rate, name  # 1.5: sampling noise at 20 expected accounts
    positives = fusion.score(_positives(2_000, 5), model).score
    assert np.mean(positives >= 0.99) > 0.5  # and the tiers find the positives


def test_tiers_calibrated_without_the_hidden_campaign_accounts_of_the_reference_flag_their_rate_of_benign():
    """A reference whose unlabelled part hides campaign accounts (3% here) puts each tier's bound among them: the
    tiers then flag far less than their rate of benign accounts. Calibrated on the rows the mask keeps (the hidden
    ones left out), the elevated tier flags about 1% of benign accounts again, and more of the campaign."""
    benign, hidden = _benign(19_400, 11), _positives(600, 12)
    reference = {name: np.r_[benign[name], hidden[name]] for name in benign}
    keep = np.r_[np.ones(19_400, dtype=bool), np.zeros(600, dtype=bool)]
    contaminated = fusion.fit(reference, _positives(500, 3))
    trimmed = fusion.fit(reference, _positives(500, 3), calibrate_on=keep)
    assert trimmed.weights == contaminated.weights  # the stack still sees the whole reference
    assert (contaminated.combined.size, trimmed.combined.size) == (20_000, 19_400)
    unseen_benign, campaign = _benign(100_000, 13), _positives(2_000, 14)
    flagged = {
        name: (np.mean(fusion.score(unseen_benign, m).score >= 0.99), np.mean(fusion.score(campaign, m).score >= 0.99))
        for name, m in (("contaminated", contaminated), ("trimmed", trimmed))
    }
    assert flagged["contaminated"][0] < 0.003  # a third of the budget or less
    assert 0.007 < flagged["trimmed"][0] < 0.013
    assert flagged["trimmed"][1] > flagged["contaminated"][1]
    with pytest.raises(MissingInputError, match="calibration_resemblance_above"):
        fusion.fit(reference, _positives(500, 3), calibrate_on=np.arange(20_000) < 10)


def test_strong_supervised_evidence_is_never_capped_below_weak_novelty():
    model = fusion.fit(_benign(5_000, 6), _positives(300, 7))
    assert all(w >= 0 for w in model.weights)
    assert model.weights[0] > model.weights[1]  # supervised separates the labelled positives far better
    reference = _benign(5_000, 6)
    strong_supervised = {"supervised": np.array([3.0]), "behaviour": np.array([np.median(reference["behaviour"])])}
    only_novel = {"supervised": np.array([np.median(reference["supervised"])]), "behaviour": np.array([40.0])}
    both = {"supervised": np.array([3.0]), "behaviour": np.array([40.0])}
    strong, novel, combined = (fusion.score(x, model).score[0] for x in (strong_supervised, only_novel, both))
    assert strong > 0.9999 and strong > novel
    assert combined >= strong  # evidence only adds
    # the reference's own scores are its ranks: a share of about 1% outranks 99%
    assert np.mean(fusion.score(reference, model).score >= 0.99) == pytest.approx(0.01, abs=0.002)


def test_the_stored_reference_carries_its_format_and_versions_without_one_are_refused():
    model = fusion.fit(_benign(500, 8), _positives(50, 9), extras={"novelty": {}})
    text = model.to_json()
    assert json.loads(text)[FORMAT_VERSION_KEY] == fusion.FORMAT
    assert fusion.FusionModel.from_json(text) == model
    with pytest.raises(UnsupportedFormatError, match=r"format version 2; this build reads version.s. 3: retrain"):
        fusion.FusionModel.from_json(json.dumps({**json.loads(text), FORMAT_VERSION_KEY: 2}))
    with pytest.raises(MissingInputError, match=r"v3 carries no score reference.*retrain"):
        fusion.parse(None, "3")
    with pytest.raises(MissingInputError, match="fitted with score families"):
        fusion.score({"supervised": np.zeros(2)}, model)
    with pytest.raises(MissingInputError, match="fewer than 100"):
        fusion.fit(_benign(50, 8), _positives(50, 9))


def test_tier_bounds_are_raised_to_what_keeps_the_holdouts_unlabelled_accounts_within_the_rate():
    import pandas as pd

    from models.train import guarded_tier_bounds

    # 200 unlabelled accounts (two snapshots each: the higher one counts) and one labelled positive
    accounts = [f"a{i}" for i in range(200)]
    high = np.r_[np.linspace(0.0, 0.98, 197), 0.995, 0.996, 0.997]  # 1.5% of them at or above 0.99
    holdout = pd.DataFrame(
        {
            "account_id": accounts * 2 + ["positive"],
            "label": [0] * 400 + [1],
        }
    )
    scores = np.r_[high, high / 2, 1.0]
    bounds = guarded_tier_bounds((("critical", 0.9999), ("high", 0.999), ("elevated", 0.99)), holdout, scores)
    named = dict(bounds)
    flagged = (high >= named["elevated"]).mean()
    assert named["elevated"] > 0.99 and flagged <= 0.01  # raised: the reference bound flagged 1.5% here
    assert (named["high"], named["critical"]) == (0.999, 0.9999)  # rates 200 accounts cannot resolve keep theirs
    assert [b for _, b in bounds] == sorted((b for _, b in bounds), reverse=True)
    low = guarded_tier_bounds((("critical", 0.9999), ("high", 0.999), ("elevated", 0.99)), holdout, scores / 10)
    assert dict(low)["elevated"] == 0.99  # unlabelled accounts far below: the reference bound stands
