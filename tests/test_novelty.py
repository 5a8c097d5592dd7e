"""The label-free novelty families (models/novelty.py): what each measures and how it explains itself."""

from __future__ import annotations

import numpy as np

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


def _share_at_or_above(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.array([np.mean(reference >= v) for v in values])


def test_novelty_points_at_the_deviating_signal_in_extractions_direction():
    values = _population(20_000)
    ref = novelty.fit_reference(values, COLUMNS)
    # only declared signals are used
    assert ref.columns == ("cot_elicitation_rate_7d", "output_input_ratio_28d", "interarrival_cv_7d")
    assert ref.families == tuple(f.name for f in novelty.FAMILIES)
    population = {f.family.name: f.raw for f in novelty.novelty(values, COLUMNS, ref)}
    # all CoT asks; perfectly regular timing; 20 output tokens per input token
    extreme = np.array(
        [[0.95, 1.0, 1.5, 10.0, 3000, 4500], [0.0, 0.0, 1.5, 10.0, 3000, 4500], [0.05, 1.0, 20.0, 10.0, 3000, 60_000]]
    )
    scored = novelty.novelty(extreme, COLUMNS, ref)
    behaviour, harvest = _family(scored, "behaviour"), _family(scored, "harvest yield")
    behaviour_share = _share_at_or_above(population["behaviour"], behaviour.raw)
    assert behaviour_share[0] < 0.001 and behaviour_share[1] < 0.5
    assert [ref.columns[i] for i in behaviour.signal] == [
        "cot_elicitation_rate_7d",
        "interarrival_cv_7d",
        "output_input_ratio_28d",
    ]
    # the harvest-yield family reads only the tokens bought: neither reasoning asks nor timing move it
    harvest_share = _share_at_or_above(population["harvest yield"], harvest.raw)
    assert harvest_share[0] > 0.1 and harvest_share[1] > 0.1 and harvest_share[2] < 0.001
    assert ref.columns[harvest.signal[2]] == "output_input_ratio_28d"


def test_harvest_yield_shrinks_the_ratio_of_an_account_that_bought_little():
    values = _population(20_000)
    ref = novelty.fit_reference(values, COLUMNS)
    population = _family(novelty.novelty(values, COLUMNS, ref), "harvest yield").raw
    # the same 12x ratio: one short prompt, and 7k prompt tokens a month
    accounts = np.array([[0.0, 1.0, 12.0, 10.0, 60, 720], [0.0, 1.0, 12.0, 10.0, 7_000, 84_000]])
    shares = _share_at_or_above(population, _family(novelty.novelty(accounts, COLUMNS, ref), "harvest yield").raw)
    assert shares[1] < 0.001 and shares[0] > 0.01


def test_a_model_without_the_token_columns_has_no_harvest_family_and_the_reference_round_trips():
    columns = [c for c in COLUMNS if c != "output_tokens_28d"]
    ref = novelty.fit_reference(_population(1_000)[:, [COLUMNS.index(c) for c in columns]], columns)
    assert ref.families == ("behaviour",)
    assert novelty.NoveltyReference.from_dict(ref.to_dict()) == ref


def test_explanations_name_the_family_the_signal_and_the_benign_reference():
    values = _population(2_000)
    ref = novelty.fit_reference(values, COLUMNS)
    signal = ref.columns.index("output_input_ratio_28d")
    text = novelty.explanation(ref, signal, 12.0, 0.9995, "harvest yield")
    assert text.startswith("buys far longer answers per prompt than accounts do")
    assert text.endswith("more unusual than 99.95% of the benign reference accounts")
    assert "more unusual than 99.99% of" in novelty.explanation(ref, signal, 90.0, 0.999999, "harvest yield")
