"""The label-free novelty score and its combination with the supervised score (models/novelty.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models import novelty

COLUMNS = [
    "cot_elicitation_rate_7d",
    "interarrival_cv_7d",
    "output_input_ratio_28d",
    "account_age_days",
    "input_tokens_28d",
    "output_tokens_28d",
]
RATIO, AGE, INPUT, OUTPUT = 2, 3, 4, 5


def _population(rows: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    input_tokens = rng.lognormal(8.0, 1.0, rows)
    ratio = rng.lognormal(0.4, 0.5, rows)
    return np.column_stack(
        [
            rng.beta(1, 20, rows),
            rng.gamma(2.0, 0.5, rows),
            ratio,
            rng.uniform(0, 400, rows),
            input_tokens,
            input_tokens * ratio,
        ]
    )


def _family(scored, name):
    return next(f for f in scored if f.family.name == name)


def test_novelty_is_a_percentile_of_the_reference_and_points_at_the_deviating_signal():
    values = _population(20_000)
    supervised = np.random.default_rng(4).uniform(0, 1, len(values))
    ref = novelty.fit_reference(values, COLUMNS, supervised)
    # only declared signals are used
    assert ref.columns == ("cot_elicitation_rate_7d", "output_input_ratio_28d", "interarrival_cv_7d")
    assert ref.families == tuple(f.name for f in novelty.FAMILIES)
    behaviour = _family(novelty.novelty(values, COLUMNS, ref), "behaviour")
    assert abs(np.mean(behaviour.percentile >= 0.99) - 0.01) < 0.003  # uniform on the reference population
    # all CoT asks; perfectly regular timing; 20 output tokens per input token
    extreme = np.array(
        [[0.95, 1.0, 1.5, 10.0, 3000, 4500], [0.0, 0.0, 1.5, 10.0, 3000, 4500], [0.05, 1.0, 20.0, 10.0, 3000, 60_000]]
    )
    scored = novelty.novelty(extreme, COLUMNS, ref)
    behaviour, harvest = _family(scored, "behaviour"), _family(scored, "harvest yield")
    assert behaviour.percentile[0] > 0.999 and behaviour.percentile[1] > 0.5
    assert [ref.columns[i] for i in behaviour.signal] == [
        "cot_elicitation_rate_7d",
        "interarrival_cv_7d",
        "output_input_ratio_28d",
    ]
    # the harvest-yield family reads only the tokens bought: neither reasoning asks nor timing move it
    assert harvest.percentile[0] < 0.9 and harvest.percentile[1] < 0.9 and harvest.percentile[2] > 0.999
    assert ref.columns[harvest.signal[2]] == "output_input_ratio_28d"


def test_harvest_yield_shrinks_the_ratio_of_an_account_that_bought_little():
    ref = novelty.fit_reference(_population(20_000), COLUMNS, np.random.default_rng(4).uniform(0, 1, 20_000))
    # the same 12x ratio: one short prompt, and 7k prompt tokens a month
    accounts = np.array([[0.0, 1.0, 12.0, 10.0, 60, 720], [0.0, 1.0, 12.0, 10.0, 7_000, 84_000]])
    harvest = _family(novelty.novelty(accounts, COLUMNS, ref), "harvest yield").percentile
    assert harvest[1] > 0.999 and harvest[0] < 0.99


def test_harvest_yield_ranks_a_young_campaign_that_crowds_the_top_of_the_reference_among_established_accounts():
    """The reference is unlabelled: a young campaign making up 6% of it, all at the top of the yield, must still get
    percentiles a tier can reach. Ranked among every snapshot they would cap near 0.97."""
    benign = _population(18_800)
    campaign = _population(1_200, seed=9)
    campaign[:, AGE] = np.random.default_rng(11).uniform(0, 20, len(campaign))  # a hydra's accounts are young
    campaign[:, RATIO] = np.random.default_rng(10).uniform(8.0, 15.0, len(campaign))  # answers far longer
    campaign[:, OUTPUT] = campaign[:, INPUT] * campaign[:, RATIO]
    reference = np.vstack([benign, campaign])
    supervised = np.random.default_rng(4).uniform(0, 1, len(reference))
    in_campaign = np.arange(len(reference)) >= len(benign)

    def harvest(columns):
        picked = [COLUMNS.index(c) for c in columns]
        ref = novelty.fit_reference(reference[:, picked], columns, supervised)
        return _family(novelty.novelty(reference[:, picked], columns, ref), "harvest yield").percentile

    established = harvest(COLUMNS)
    assert np.median(established[in_campaign]) > 0.999
    assert np.mean(established[~in_campaign] > 0.99) < 0.02  # while benign accounts stay mostly below the tiers
    everyone = harvest([c for c in COLUMNS if c != "account_age_days"])  # no age: every snapshot is the reference
    assert np.median(everyone[in_campaign]) < 0.98


def test_novelty_takes_a_bounded_share_of_each_tiers_budget_and_keeps_the_supervised_ranking():
    values = _population(50_000)
    # the supervised model's raw scores are bunched near 0 (positive-unlabelled training), but still rank
    supervised = np.random.default_rng(5).beta(0.5, 200, len(values))
    ref = novelty.fit_reference(values, COLUMNS, supervised)
    final = novelty.final_scores(supervised, values, COLUMNS, ref)
    for rate in (0.01, 0.001):
        flagged = final.score >= 1 - rate
        by_supervised = novelty.supervised_percentile(supervised, ref) >= 1 - rate
        assert by_supervised.mean() <= rate * 1.1
        budget = sum(1 / f.budget_divisor for f in novelty.FAMILIES)
        assert flagged.mean() <= rate * (1 + budget) * 1.15
    order = np.argsort(supervised)
    not_lifted = ~final.lifted[order]
    assert np.all(np.diff(final.score[order][not_lifted]) >= 0)  # monotone in the supervised score
    assert final.lifted.any() and np.all(
        final.score[final.lifted] > novelty.supervised_percentile(supervised[final.lifted], ref)
    )


def test_a_version_without_a_reference_scores_with_the_supervised_model_alone():
    supervised = np.array([0.1, 0.7])
    final = novelty.final_scores(supervised, _population(2), COLUMNS, None)
    assert final.score is supervised and final.lifted is None


def test_the_reference_round_trips_through_its_json_tag():
    values = _population(1_000)
    ref = novelty.fit_reference(values, COLUMNS, np.linspace(0, 1, len(values)))
    assert novelty.parse_reference(ref.to_json()) == ref


def test_the_benign_reference_is_the_established_unlabelled_accounts():
    import pandas as pd

    from models.config import TrainingConfig
    from models.tiers import MIN_REFERENCE_SNAPSHOTS, benign_reference

    ages = [400.0] * MIN_REFERENCE_SNAPSHOTS + [3.0, 500.0]
    frame = pd.DataFrame({"label": [0] * MIN_REFERENCE_SNAPSHOTS + [0, 1], "account_age_days": ages})
    established = TrainingConfig(reference_min_account_age_days=60)
    reference = benign_reference(frame, established)
    assert len(reference) == MIN_REFERENCE_SNAPSHOTS and (reference["account_age_days"] >= 60).all()
    assert len(benign_reference(frame, TrainingConfig())) == len(frame) - 1  # the default: every unlabelled one
    # too few established accounts (a young lake): every unlabelled snapshot, rather than a handful
    assert len(benign_reference(frame.iloc[-3:], established)) == 2


def test_scores_beyond_the_reference_keep_their_order_instead_of_tying_at_one():
    values = _population(5_000)
    supervised = np.random.default_rng(6).beta(0.5, 200, len(values))
    ref = novelty.fit_reference(values, COLUMNS, supervised)
    beyond = supervised.max() * np.array([1.2, 1.5, 2.0, 3.0])
    ranked = novelty.supervised_percentile(beyond, ref)
    assert np.all(np.diff(ranked) > 0) and ranked[0] > 1 - 1 / len(values) and ranked[-1] < 1.0
    assert novelty.supervised_percentile(np.array([np.median(supervised)]), ref)[0] == pytest.approx(0.5, abs=0.02)


def test_a_reference_stored_before_families_scores_with_behaviour_alone():
    import json

    values = _population(2_000)
    supervised = np.random.default_rng(7).uniform(0, 1, len(values))
    ref = novelty.fit_reference(values, COLUMNS, supervised)
    stored = json.loads(ref.to_json())
    stored["percentiles"] = stored["percentiles"][
        0
    ]  # the flat grid of references saved before the novelty families (2026-11)
    del stored["families"], stored["family_populations"]
    old = novelty.parse_reference(json.dumps(stored))
    assert old.families == ("behaviour",)
    final = novelty.final_scores(supervised, values, COLUMNS, old)
    assert set(final.family[final.lifted]) <= {"behaviour"}
    behaviour = _family(novelty.novelty(values, COLUMNS, ref), "behaviour").percentile
    assert np.array_equal(final.novelty, behaviour)


def test_a_reference_of_the_earlier_yield_definition_is_refused_in_one_line():
    import json

    from lake.errors import MissingInputError

    values = _population(2_000)
    stored = json.loads(novelty.fit_reference(values, COLUMNS, np.linspace(0, 1, len(values))).to_json())
    del stored[
        "family_populations"
    ]  # what references saved before 32c255e (2026-11-28) carry: their yield percentiles rank another number
    with pytest.raises(MissingInputError, match="older definition of harvest yield; retrain"):
        novelty.parse_reference(json.dumps(stored))


def test_constructed_tier_bounds_keep_benign_accounts_within_each_tiers_rate():
    values = _population(200_000, seed=12)
    supervised = np.random.default_rng(13).beta(0.5, 200, len(values))
    ref = novelty.fit_reference(values, COLUMNS, supervised)
    benign = _population(200_000, seed=14)  # fresh accounts from the same population
    final = novelty.final_scores(np.random.default_rng(15).beta(0.5, 200, len(benign)), benign, COLUMNS, ref).score
    bounds = dict(novelty.tier_bounds_by_construction(ref, (("high", 0.001), ("elevated", 0.01))))
    for name, rate in (("high", 0.001), ("elevated", 0.01)):
        realised = np.mean(final >= bounds[name])
        assert rate / 3 < realised <= rate * 1.1


def test_a_harvest_yield_lift_is_explained_by_the_ratio_it_bought():
    values = _population(5_000)
    ref = novelty.fit_reference(values, COLUMNS, np.linspace(0, 1, len(values)))
    signal = ref.columns.index("output_input_ratio_28d")
    text = novelty.explanation(ref, signal, 12.0, 0.9995, "harvest yield")
    assert text.startswith("buys far longer answers per prompt than accounts do")
    assert "over 28 days is unusually high" in text and "of accounts 30+ days old" in text
    assert novelty.explanation(ref, signal, 12.0, 0.9995).endswith("more unusual than 99.95% of accounts")
    assert "more unusual than 99.99% of" in novelty.explanation(ref, signal, 90.0, 0.999999, "harvest yield")
