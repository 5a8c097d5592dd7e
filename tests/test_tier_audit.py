"""models/tier_audit.py: a random draw of each tier's band, decided by analysts, relaxes the tier bounds by the benign
share it shows, and the score job tiers the next day with them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from models import tier_audit
from models.scoring import assign_tiers

BOUNDS = (("critical", 0.9999), ("high", 0.999), ("elevated", 0.99))
NONE_BENIGN_OF_10 = 1 - 0.1 ** (1 / 10)  # Clopper-Pearson 90% upper bound of the benign share, 0 benign of 10


def _day(scores) -> pd.DataFrame:
    return pd.DataFrame({"account_id": [f"a{i:06d}" for i in range(len(scores))], "score": scores})


def _decided(labels_per_stratum: dict[int, list[str]]) -> pd.DataFrame:
    rows = [(stratum, label) for stratum, labels in labels_per_stratum.items() for label in labels]
    return pd.DataFrame(rows, columns=["stratum", "label"])


def test_the_draw_is_random_within_each_tier_band_and_reproducible():
    rng = np.random.default_rng(0)
    day = _day(np.r_[rng.uniform(0, 0.97, 5000), rng.uniform(0.97, 0.99, 60), rng.uniform(0.99, 0.999, 30), [0.9995]])
    drawn = tier_audit.draw(day, BOUNDS, 8, seed=1)
    assert drawn["stratum"].value_counts().to_dict() == {0: 8, 1: 8, 2: 1}  # no account at or above critical
    assert (drawn["score"] >= tier_audit.band_floor(BOUNDS)).all()  # floor: 1 - 3 x 1%
    assert tier_audit.band_floor(BOUNDS) == pytest.approx(0.97)
    again = tier_audit.draw(day.sample(frac=1, random_state=3), BOUNDS, 8, seed=1)  # row order does not matter
    assert again["account_id"].tolist() == drawn["account_id"].tolist()
    assert tier_audit.draw(day, BOUNDS, 8, seed=2)["account_id"].tolist() != drawn["account_id"].tolist()
    with pytest.raises(ValueError, match="per_stratum must be at least 1"):
        tier_audit.draw(day, BOUNDS, 0, seed=1)


def test_the_benign_share_bounds_bracket_it_and_an_unaudited_stratum_says_nothing():
    decided = _decided({1: ["extraction"] * 10, 2: ["benign"] * 4, 3: ["benign", "extraction"]})
    upper, lower = tier_audit.benign_shares(decided), tier_audit.benign_shares(decided, upper=False)
    assert (upper[0], lower[0]) == (1.0, 0.0)  # nothing decided: anything from none to all benign
    assert upper[1] == pytest.approx(NONE_BENIGN_OF_10) and lower[1] == 0.0
    assert upper[2] == 1.0 and lower[2] == pytest.approx(0.1 ** (1 / 4))  # all benign
    assert 0.05 < lower[3] < 0.5 < upper[3] < 1.0


# 100,000 undecided accounts: budgets of 10, 100 and 1,000 expected benign accounts at critical, high and elevated
POPULATION = [(30, 0.99995), (60, 0.9995), (300, 0.998), (700, 0.992), (500, 0.985), (1500, 0.975), (96_910, 0.5)]


def _population() -> np.ndarray:
    return np.concatenate([np.full(n, score) for n, score in POPULATION])


def test_bounds_fall_while_the_expected_benign_accounts_above_them_fit_the_tier_budget():
    # the top three strata audited all extraction (each account counts as 0.206 benign), the lowest all benign
    draws = _decided({3: ["extraction"] * 10, 2: ["extraction"] * 10, 1: ["extraction"] * 10, 0: ["benign"] * 10})
    relaxed = dict(tier_audit.audited_bounds(_population(), draws, BOUNDS))
    q = NONE_BENIGN_OF_10
    # critical: 30 q = 6.2 fit in 10 at 0.99995, but that is above the model's own bound, which stands
    assert relaxed["critical"] == 0.9999
    # high: 390 q = 80 fit in 100 at 0.998; 1,090 q = 224 at 0.992 do not
    assert 390 * q <= 100 < 1090 * q and relaxed["high"] == 0.998
    # elevated: 1,090 q + 500 = 724 fit in 1,000 at 0.985; 2,224 at 0.975 do not
    assert relaxed["elevated"] == 0.985


def test_audits_that_cannot_tell_or_find_nothing_leave_the_bounds_alone():
    # the band below elevated is all benign, which says nothing about the tiers above it
    below_benign = _decided({0: ["benign"] * 10, 1: ["extraction"] * 2, 2: ["benign", "extraction"]})
    assert tier_audit.audited_bounds(_population(), below_benign, BOUNDS) == BOUNDS
    assert tier_audit.audited_bounds(_population(), _decided({}), BOUNDS) == BOUNDS
    assert tier_audit.audited_bounds(np.array([]), below_benign, BOUNDS) == BOUNDS


def test_a_tier_whose_band_is_mostly_benign_is_tightened_until_its_benign_accounts_fit():
    # 100,000 undecided accounts (budgets 10 / 100 / 1,000); the critical band audited all extraction, the high
    # band all benign: at its 90% lower bound (0.794) 360 of its accounts are 286 benign, over high's 100
    scores = np.r_[np.full(30, 0.99995), np.full(60, 0.9997), np.full(300, 0.9992), np.full(99_610, 0.5)]
    draws = _decided({3: ["extraction"] * 10, 2: ["benign"] * 10})
    low = 0.1 ** (1 / 10)
    assert 360 * low > 100 >= 60 * low
    moved = dict(tier_audit.audited_bounds(scores, draws, BOUNDS))
    assert moved["high"] == 0.9997  # raised to the lowest score whose benign accounts fit
    assert moved["critical"] == 0.9999  # nothing benign found at or above it: left alone
    assert moved["elevated"] == 0.99  # 286 fit in 1,000, and nothing found below high to relax it by
    # the same band with a single benign draw of ten: 0.0105 x 360 = 4 at least, within budget, so no rise
    one_benign = _decided({3: ["extraction"] * 10, 2: ["benign"] + ["extraction"] * 9})
    assert dict(tier_audit.audited_bounds(scores, one_benign, BOUNDS))["high"] <= 0.999
    # the top tie alone over every budget (1,000 accounts: budgets 0.1 / 1 / 10, and 30 x 0.794 benign at the top):
    # every tier is raised past the highest score and flags nothing
    top_benign = _decided({3: ["benign"] * 10})
    few = np.r_[np.full(30, 0.99995), np.full(970, 0.5)]
    assert all(bound > 0.99995 for _, bound in tier_audit.audited_bounds(few, top_benign, BOUNDS))
    # a tightened lower tier lifts the tiers above it with it
    elevated_over = _decided({1: ["benign"] * 10, 2: ["benign"] * 10})
    band = np.r_[np.full(30, 0.99995), np.full(2000, 0.995), np.full(97_970, 0.5)]
    lifted = dict(tier_audit.audited_bounds(band, elevated_over, BOUNDS))
    assert lifted["elevated"] == 0.99995 and lifted["high"] == lifted["critical"] == 0.99995


def test_a_relaxed_bound_never_passes_the_floor_nor_a_lower_tier():
    # few accounts, all audited extraction: every tier would fall to the lowest score; the floor holds them
    scores = np.r_[np.full(50, 0.9999), np.full(50, 0.995), np.full(50, 0.98), np.full(50, 0.2)]
    draws = _decided({s: ["extraction"] * 10 for s in range(4)})
    relaxed = tier_audit.audited_bounds(scores, draws, BOUNDS)
    values = [bound for _, bound in relaxed]
    assert values == sorted(values, reverse=True)
    assert min(values) >= tier_audit.band_floor(BOUNDS)
    assert all(r <= b for r, (_, b) in zip(values, BOUNDS, strict=True))


def test_ties_are_flagged_together_or_not_at_all():
    scores = np.r_[np.full(5, 0.9995), np.full(200, 0.995), np.full(99_795, 0.1)]
    draws = _decided({1: ["benign"] * 10, 2: ["extraction"] * 10})
    # 5 q + 200 = 201 expected benign at 0.995 exceed high's 100: the tie is not split, the bound stays above it
    assert dict(tier_audit.audited_bounds(scores, draws, BOUNDS))["high"] == 0.999


def test_the_score_job_tiers_the_next_day_with_the_audited_bounds(spark, scoring_chain, tmp_path, capsys):
    """On the scoring chain's lake: `review audit` draws from the scored day, every drawn account is decided
    extraction, and the next day is scored with the bounds the audit gives."""
    from console.decisions import record_decision
    from jobs import cli
    from tests.helpers.job_chain import SCORE_DAY, copy_lake, lake_settings, run_job

    _, after = scoring_chain
    lake = copy_lake(after["score"], tmp_path / "audited")
    settings = lake_settings(lake)
    argv = ["--lake", str(lake), "--mlflow-uri", settings.mlflow_tracking_uri, "review", "audit"]
    assert cli.main([*argv, "--date", SCORE_DAY.isoformat(), "--per-stratum", "5"]) == 0
    printed = capsys.readouterr().out
    drawn = DeltaTable(settings.table_uri(tier_audit.TABLE)).to_pandas()
    assert 0 < len(drawn) <= 5 * len(tier_audit.STRATA) and set(drawn["score_date"]) == {SCORE_DAY}
    assert all(account in printed for account in drawn["account_id"])
    assert cli.main([*argv, "--date", SCORE_DAY.isoformat(), "--per-stratum", "9"]) == 0  # a rerun keeps the draw
    assert DeltaTable(settings.table_uri(tier_audit.TABLE)).to_pandas()["account_id"].tolist() == (
        drawn["account_id"].tolist()
    )
    with pytest.raises(SystemExit) as refused:  # argparse's one-line usage error
        cli.main([*argv, "--per-stratum", "0"])
    assert refused.value.code == 2
    assert "--per-stratum: expected a positive integer, got '0'" in capsys.readouterr().err

    decided_at = dt.datetime.combine(SCORE_DAY, dt.time(23), dt.UTC)
    for account in drawn["account_id"]:
        record_decision(
            settings, analyst="auditor", label="extraction", note="audit", account_id=account, now=decided_at
        )
    model = DeltaTable(settings.table_uri("account_risk")).to_pandas()
    model_version = model["model_version"].iloc[0]
    from models import registry

    model_bounds = registry.version_info(registry.configure(settings), settings.model_name, model_version).tier_bounds
    next_day = SCORE_DAY + dt.timedelta(days=1)
    decided = tier_audit.decided_as_of(settings, next_day)
    expected = tier_audit.audited_bounds(
        model.loc[~model["account_id"].isin(list(decided)), "score"].to_numpy(),
        drawn[["stratum"]].assign(label="extraction"),
        model_bounds,
    )
    assert expected != model_bounds  # the fixture's audit does relax a tier
    assert tier_audit.day_bounds(settings, model_version, model_bounds, SCORE_DAY) == model_bounds  # not its own day

    run_job("score", spark, lake, next_day)
    from console.model_info import champion_summary

    shown = champion_summary(settings, "http://mlflow.invalid")["audit"]  # the Model page, the newest day scored
    assert shown["score_date"] == next_day and shown["bounds"] == expected
    assert sum(row["decided"] for row in shown["strata"]) == len(drawn)
    assert all(row["benign"] == 0 for row in shown["strata"])
    from console.app import ConsoleConfig, create_app
    from console.auth import AuthConfig, issue_token
    from tests.helpers.console_client import signed_in

    token = issue_token(tmp_path / "tokens", "alice")
    app = create_app(settings, ConsoleConfig(auth=AuthConfig(tokens_file=tmp_path / "tokens")))
    client = signed_in(app, token)
    page = client.get("/model").text
    assert f"Score from on {next_day}, audited" in page and "Tier audits" in page
    assert f"{dict(expected)['elevated']:.6f}" in page
    # the console's audit page: the CLI's draw with each account's standing, and a draw for a day that has none
    page = client.get(f"/audit?date={SCORE_DAY}").text
    assert all(account in page for account in drawn["account_id"]) and "not yet" not in page
    # a day with no draw yet (a fresh copy of the scored lake): the page offers the draw, and the button makes it
    fresh = copy_lake(after["score"], tmp_path / "fresh")
    fresh_app = create_app(lake_settings(fresh), ConsoleConfig(auth=AuthConfig(tokens_file=tmp_path / "tokens")))
    client = signed_in(fresh_app, token)
    page = client.get(f"/audit?date={SCORE_DAY}").text
    assert "No audit was drawn from this day." in page
    from tests.helpers.console_client import form_csrf

    forged = client.post("/audit/draw", data={"csrf_token": "forged", "date": SCORE_DAY.isoformat()})
    assert forged.status_code == 403 and tier_audit.day_draw(lake_settings(fresh), SCORE_DAY).empty
    sent = client.post("/audit/draw", data={"csrf_token": form_csrf(page), "date": SCORE_DAY.isoformat()})
    assert sent.status_code == 200 and "decide every one" in sent.text
    made = tier_audit.day_draw(lake_settings(fresh), SCORE_DAY)
    assert made["account_id"].tolist() == drawn["account_id"].tolist()  # same day, same seed, same draw
    assert all(account in sent.text for account in made["account_id"])
    # an undecided draw can be decided from the audit page, which it returns to with the account's standing (every
    # account the fixture drew is labelled by the simulator on a later day, so one never labelled joins the draw)
    from lake import catalog

    standing = tier_audit.decided_as_of(lake_settings(fresh), dt.date.today())
    day_risk = DeltaTable(lake_settings(fresh).table_uri("account_risk")).to_pandas()
    first = sorted(set(day_risk.loc[day_risk["score_date"] == SCORE_DAY, "account_id"]) - set(standing))[0]
    extra = made.iloc[:1].assign(account_id=first, stratum=0)
    catalog.write_arrow(
        lake_settings(fresh),
        tier_audit.TABLE,
        pa.Table.from_pandas(pd.concat([made, extra]), preserve_index=False),
        SCORE_DAY,
    )
    page = client.get(f"/audit?date={SCORE_DAY}").text
    assert f'name="target_id" value="{first}"' in page
    assert page.count('class="audit-decide"') == page.count("not yet") == 1
    decided = client.post(
        "/decide",
        data={
            "csrf_token": form_csrf(page),
            "target_kind": "account",
            "target_id": first,
            "score_date": SCORE_DAY.isoformat(),
            "next": f"/audit?date={SCORE_DAY}",
            "label": "benign",
            "note": "audit: a company's test harness",
        },
    )
    assert decided.status_code == 200 and decided.url.path == "/audit"
    assert tier_audit.decided_as_of(lake_settings(fresh), dt.date.today())[first] == "benign"
    assert decided.text.count('class="audit-decide"') == 0 and "not yet" not in decided.text
    assert "tier bounds moved by the model version's audits" in capsys.readouterr().out
    scored = DeltaTable(settings.table_uri("account_risk")).to_pandas()
    scored = scored[scored["score_date"] == next_day]
    assert scored["tier"].tolist() == assign_tiers(scored["score"].to_numpy(), expected).tolist()
