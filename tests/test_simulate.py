"""The simulator writes real Delta tables with the promised populations, campaigns, labels and bad records."""

from __future__ import annotations

import datetime as dt
import ipaddress

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lake.catalog import table
from lake.config import load_settings
from simulator import simulate, world
from simulator.prompts import FAMILY_INDEX, PromptBook, normalized_fingerprint
from simulator.traffic import BAD_KINDS, TrafficGenerator

START = dt.date(2026, 11, 3)
DAYS = 4
ACCOUNTS = 500
SEED = 11
RAW_TABLES = ("api_requests", "accounts", "model_releases", "asn_info", "enforcement_labels")
RAW_HTTP = r"^(python-requests|curl|Go-http-client|httpx|axios|okhttp|aiohttp|node-fetch)/"


def _settings(root):
    return load_settings(
        lake_root=str(root / "lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        spark_remote=None,
    )


def _read(settings, name: str) -> pd.DataFrame:
    return DeltaTable(settings.table_uri(name)).to_pandas()


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("sim"))
    summary = simulate.run(settings, start=START, days=DAYS, accounts=ACCOUNTS, seed=SEED)
    return settings, summary


@pytest.fixture(scope="module")
def requests(lake):
    settings, _ = lake
    truth = simulate.read_ground_truth(settings)
    df = _read(settings, "api_requests").merge(truth, on="account_id", how="left")
    df["fingerprint"] = normalized_fingerprint(pa.array(df["prompt_prefix"])).to_pandas()
    return df


# --- tables and contracts ------------------------------------------------------------------------------


def test_raw_tables_exist_with_catalog_schemas(lake):
    settings, _ = lake
    for name in RAW_TABLES:
        dt_ = DeltaTable(settings.table_uri(name))
        assert dt_.schema().to_arrow() == table(name).schema, name
    requests = DeltaTable(settings.table_uri("api_requests"))
    assert requests.metadata().partition_columns == ["event_date"]
    # one atomic commit per simulated day
    assert requests.version() == DAYS - 1
    assert sorted(p["event_date"] for p in requests.partitions()) == [
        (START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)
    ]


def test_summary_counts_match_the_lake(lake, requests):
    settings, summary = lake
    per_day = requests.groupby("event_date").size()
    assert {d: int(per_day[d]) for d in per_day.index} == summary.records_by_day
    assert summary.records == len(requests) > 10_000
    accounts = _read(settings, "accounts")
    assert len(accounts) == summary.accounts >= ACCOUNTS
    truth = simulate.read_ground_truth(settings)
    assert truth.segment.value_counts().to_dict() == summary.accounts_by_segment
    assert (
        truth[truth.is_campaign & (truth.segment != "reseller")].campaign_id.value_counts().to_dict()
        == summary.campaign_accounts
    )
    assert set(truth.account_id) == set(accounts.account_id)
    assert sum(summary.records_by_group.values()) == len(requests)
    # rows whose account_id was nulled (bad records) lose their segment in the join, nothing else differs
    per_segment = requests[requests.segment != "reseller"].groupby("segment").size()
    nulled = summary.bad_records["null_account_id"]
    for segment, rows in per_segment.items():
        assert rows <= summary.records_by_group[segment] <= rows + nulled, segment


def test_ground_truth_lives_outside_the_lake(lake, tmp_path):
    settings, _ = lake
    assert not simulate.ground_truth_path(settings).startswith(settings.lake_root)
    inside = load_settings(
        lake_root=str(tmp_path / "lake"),
        ground_truth_root=str(tmp_path / "lake" / "truth"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db",
        spark_remote=None,
    )
    with pytest.raises(ValueError, match="outside the lake"):
        simulate.run(inside, start=START, days=1, accounts=100, seed=1)


def test_same_seed_same_data_and_rerun_is_idempotent(tmp_path):
    first, second = _settings(tmp_path / "a"), _settings(tmp_path / "b")
    simulate.run(first, start=START, days=2, accounts=150, seed=3)
    simulate.run(second, start=START, days=2, accounts=150, seed=3)
    for name in RAW_TABLES:
        a = DeltaTable(first.table_uri(name)).to_pyarrow_table()
        b = DeltaTable(second.table_uri(name)).to_pyarrow_table()
        keys = [(c, "ascending") for c in a.column_names if not pa.types.is_list(a.schema.field(c).type)]
        assert a.sort_by(keys).equals(b.sort_by(keys)), name
    truth_a, truth_b = simulate.read_ground_truth(first), simulate.read_ground_truth(second)
    pd.testing.assert_frame_equal(truth_a, truth_b)

    rows_before = DeltaTable(first.table_uri("api_requests")).to_pyarrow_table().num_rows
    simulate.run(first, start=START, days=2, accounts=150, seed=3)
    rerun = DeltaTable(first.table_uri("api_requests"))
    assert rerun.version() == 3  # two more day commits, each replacing its partition
    assert rerun.to_pyarrow_table().num_rows == rows_before

    other = _settings(tmp_path / "c")
    simulate.run(other, start=START, days=2, accounts=150, seed=4)
    assert (
        not DeltaTable(other.table_uri("api_requests"))
        .to_pyarrow_table()["request_id"]
        .equals(DeltaTable(first.table_uri("api_requests")).to_pyarrow_table()["request_id"])
    )


def test_refuses_to_mix_with_days_of_another_simulation(tmp_path):
    settings = _settings(tmp_path)
    simulate.run(settings, start=START, days=1, accounts=100, seed=1)
    with pytest.raises(ValueError, match="outside"):
        simulate.run(settings, start=START + dt.timedelta(days=10), days=1, accounts=100, seed=1)


# --- benign population -----------------------------------------------------------------------------------


def test_benign_population_has_hard_negative_segments(lake, requests):
    benign = requests[~requests.is_campaign.astype(bool)]
    segments = set(benign.segment)
    assert {
        "chat_user",
        "small_developer",
        "coding_assistant",
        "eval_harness",
        "batch_pipeline",
        "education",
        "enterprise_agent",
        "research_lab",
        "startup_app",
    } <= segments
    batch_share = benign.groupby("segment").endpoint.apply(lambda s: (s == "batch").mean())
    assert batch_share["batch_pipeline"] > 0.7 and batch_share["chat_user"] == 0
    models_per_eval = benign[benign.segment == "eval_harness"].groupby("account_id").model.nunique()
    assert models_per_eval.median() >= 4  # evaluation harnesses sweep many models
    agents = benign[benign.segment == "enterprise_agent"]
    assert (agents.tool_count >= 3).mean() > 0.5
    # students also ask for step-by-step explanations: the content signal alone is not proof
    edu_cot = benign[benign.segment == "education"].prompt_prefix.str.contains(r"(?i)step by step|show your work")
    assert edu_cot.mean() > 0.05
    chat = benign[benign.segment == "chat_user"].merge(_read(lake[0], "accounts"), on="account_id")
    assert (chat.country == chat.signup_country).mean() > 0.9
    assert chat.user_agent.str.match(RAW_HTTP).mean() < 0.15


def test_human_prompts_rarely_repeat_while_templated_traffic_does(requests):
    reuse = (
        requests.assign(dup=requests.duplicated(["account_id", "event_date", "fingerprint"]))
        .groupby("segment")
        .dup.mean()
    )
    assert reuse["chat_user"] < 0.05
    assert reuse["batch_pipeline"] > 0.5
    for campaign in ("campaign_a", "campaign_b", "campaign_c"):
        assert reuse[campaign] > 3 * reuse["chat_user"], campaign
    assert requests.prompt_prefix.str.len().max() <= 1024


# --- campaigns -------------------------------------------------------------------------------------------------


def test_hydra_clusters_share_payment_infrastructure_and_timing(lake, requests):
    settings, _ = lake
    truth = simulate.read_ground_truth(settings)
    accounts = _read(settings, "accounts").merge(truth, on="account_id")
    camp = accounts[accounts.is_campaign & (accounts.segment != "reseller")]
    per_card = camp.groupby("payment_fingerprint").account_id.count()
    assert per_card.max() >= 3 and camp.payment_fingerprint.nunique() < 0.6 * len(camp)
    assert camp.program.isin(["education", "research", "startup"]).mean() > 0.3
    assert camp.verification.isin(["none", "email"]).mean() > 0.5

    asn = _read(settings, "asn_info")
    rows = requests.merge(asn, on="asn", how="left")
    campaign_rows = rows[rows.campaign_id.notna() & (rows.segment != "reseller")]
    assert campaign_rows.category.isin(["hosting", "proxy"]).mean() > 0.95
    assert rows[rows.segment == "chat_user"].category.isin(["hosting", "proxy"]).mean() < 0.05

    prefix = campaign_rows.client_ip.str.rsplit(".", n=1).str[0]
    accounts_per_prefix = campaign_rows.assign(prefix=prefix).groupby(["hydra_id", "prefix"]).account_id.nunique()
    shared = campaign_rows.assign(prefix=prefix).merge(
        accounts_per_prefix.rename("sharing").reset_index(), on=["hydra_id", "prefix"]
    )
    assert (shared.sharing >= 2).mean() > 0.9

    # synchronized waves: most campaign requests fall in 10-minute buckets that other hydra members also hit
    bucket = campaign_rows.event_ts.dt.floor("10min")
    co_active = campaign_rows.assign(bucket=bucket).groupby(["hydra_id", "bucket"]).account_id.transform("nunique")
    assert (co_active >= 2).mean() > 0.7

    raw = campaign_rows.user_agent.str.match(RAW_HTTP).mean()
    assert 0.2 < raw < 0.8  # raw HTTP clients mixed with SDKs
    non_latin = campaign_rows.prompt_prefix.str.contains("[\u0400-\u04ff\u4e00-\u9fff]").mean()
    assert non_latin > 0.05


def test_campaign_content_matches_design(requests):
    a = requests[requests.segment == "campaign_a"].prompt_prefix
    cot = (
        r"(?i)step[- ]by[- ]step|reasoning behind|chain of thought|show your work|walk me through your reasoning"
        r"|reasoning process"
    )
    assert a.str.contains(cot).mean() > 0.2
    assert a.str.contains(r"(?i)rubric|score this response|scale of 1-10").mean() > 0.1
    b = requests[requests.segment == "campaign_b"]
    assert b.has_image.mean() > 0.05 and (b.tool_count >= 3).mean() > 0.2
    c = requests[requests.segment == "campaign_c"]
    assert (c.tool_count >= 3).mean() > 0.5
    campaigns = requests.segment.isin(["campaign_a", "campaign_b", "campaign_c"])
    harvest = requests[campaigns & (requests.status_code == 200)]
    chat = requests[(requests.segment == "chat_user") & (requests.status_code == 200)]
    assert (harvest.stop_reason == "max_tokens").mean() > 2 * (chat.stop_reason == "max_tokens").mean()
    a_ok = requests[(requests.segment == "campaign_a") & (requests.status_code == 200)]
    assert (a_ok.output_tokens.sum() / a_ok.input_tokens.sum()) > 5


def test_campaign_accounts_are_modest_per_account_but_large_as_a_cluster(requests):
    account_days = requests.groupby(["segment", "account_id", "event_date"]).size().rename("n").reset_index()
    automated = account_days[
        account_days.segment.isin(
            ["coding_assistant", "eval_harness", "batch_pipeline", "enterprise_agent", "startup_app"]
        )
    ].n.median()
    for campaign in ("campaign_a", "campaign_b", "campaign_c"):
        assert account_days[account_days.segment == campaign].n.median() < automated, campaign
    campaigns = requests[requests.segment.isin(["campaign_a", "campaign_b", "campaign_c"])]
    hydra_days = campaigns.groupby(["hydra_id", "event_date"]).size()
    assert hydra_days.median() > 2 * automated


def test_campaign_c_pivots_to_the_new_model_within_a_day(lake, requests):
    settings, summary = lake
    releases = _read(settings, "model_releases")
    released = releases.set_index("model").released_at
    start_ts = pd.Timestamp(START, tz="UTC")
    assert (released.drop(world.NEW_MODEL) < start_ts).all() and len(released) >= 4
    release = released[world.NEW_MODEL]
    assert start_ts < release < start_ts + pd.Timedelta(days=DAYS)
    assert release == pd.Timestamp(summary.new_model_released_at)

    on_new = requests.model == world.NEW_MODEL
    clock_ok = requests.event_ts.dt.date == requests.event_date  # bad records carry shifted clocks
    assert not (on_new & clock_ok & (requests.event_ts < release)).any()
    c = requests[requests.segment == "campaign_c"]
    existing = c.groupby("account_id").event_ts.min() < release
    first_use = c[c.model == world.NEW_MODEL].groupby("account_id").event_ts.min()
    hours_to_first_use = first_use[existing[existing].index.intersection(first_use.index)] - release
    assert hours_to_first_use.median() < pd.Timedelta(hours=24)
    first_day = c[(c.event_ts >= release) & (c.event_ts < release + pd.Timedelta(hours=24))]
    assert (first_day.model == world.NEW_MODEL).mean() > 0.15
    settled = c[c.event_ts >= release + pd.Timedelta(hours=12)]  # every C account has pivoted by then
    assert 0.35 < (settled.model == world.NEW_MODEL).mean() < 0.75
    chat = requests[(requests.segment == "chat_user") & (requests.event_ts >= release)]
    assert (chat.model == world.NEW_MODEL).mean() < 0.3


def test_reseller_mixes_campaign_and_benign_traffic(requests):
    reseller = requests[requests.segment == "reseller"]
    assert len(reseller) > 0 and (reseller.campaign_id == "B").all()
    campaign_b = set(requests[requests.segment == "campaign_b"].fingerprint)
    shared = reseller.fingerprint.isin(campaign_b).mean()
    assert 0.1 < shared < 0.9  # part of its traffic is campaign B's templates, the rest its own customers'
    assert reseller.prompt_prefix.str.contains(r"(?i)itinerary|recommend|rewrite|proofread|summari[sz]e").mean() > 0.05


def test_banned_campaign_accounts_are_replaced_mid_period(lake, requests):
    settings, _ = lake
    truth = simulate.read_ground_truth(settings)
    camp = truth[truth.is_campaign & (truth.segment != "reseller")]
    start_ts = pd.Timestamp(START, tz="UTC")
    new_accounts = camp[camp.created_at >= start_ts]
    assert len(new_accounts) > 0
    assert new_accounts.account_id.isin(requests.account_id).any()
    assert camp.banned_at.notna().any()


# --- labels ----------------------------------------------------------------------------------------------------


def test_labels_cover_part_of_campaigns_and_follow_account_creation(lake, requests):
    settings, _ = lake
    labels = _read(settings, "enforcement_labels")
    truth = simulate.read_ground_truth(settings)
    accounts = _read(settings, "accounts")
    labelled = labels.merge(truth, on="account_id").merge(
        accounts[["account_id", "created_at"]], on="account_id", suffixes=("", "_acct")
    )
    extraction = labelled[labelled.label == "extraction"]
    campaign_accounts = truth[truth.is_campaign & (truth.segment != "reseller")]
    assert len(extraction) > 0
    assert extraction.is_campaign.all() and (extraction.campaign_id_x == extraction.campaign_id_y).all()
    assert len(extraction) < 0.7 * len(campaign_accounts)
    assert (labelled.decided_at > labelled.created_at_acct).all()
    start_ts = pd.Timestamp(START, tz="UTC")
    assert labelled.decided_at.between(start_ts, start_ts + pd.Timedelta(days=DAYS)).all()
    assert set(labelled.source) <= {"analyst", "rule"}
    # a banned account sends nothing after its ban
    after = requests.merge(extraction[["account_id", "decided_at"]], on="account_id")
    assert not (after.event_ts >= after.decided_at).any()

    benign = labelled[labelled.label == "benign"]
    assert len(benign) > 0 and not benign.is_campaign.any()
    assert (benign.note == benign.segment).all()
    hard = {
        "coding_assistant",
        "eval_harness",
        "batch_pipeline",
        "education",
        "enterprise_agent",
        "research_lab",
        "startup_app",
    }
    assert benign.segment.isin(hard).mean() > 0.5


# --- bad records -------------------------------------------------------------------------------------------------


def _valid_ip(text) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except (ValueError, TypeError):
        return False


def test_bad_records_are_injected_at_the_reported_counts(lake):
    settings, summary = lake
    raw = _read(settings, "api_requests")
    found = {
        "null_account_id": int(raw.account_id.isna().sum()),
        "negative_tokens": int(((raw.input_tokens < 0) | (raw.output_tokens < 0)).sum()),
        "event_ts_outside_day": int((raw.event_ts.dt.date != raw.event_date).sum()),
        "malformed_client_ip": int((~raw.client_ip.map(_valid_ip)).sum()),
        "duplicate_request_id": int(len(raw) - raw.request_id.nunique()),
    }
    assert found == summary.bad_records
    assert all(count >= DAYS for count in found.values())  # every kind on every day
    assert sum(found.values()) < 0.005 * len(raw)


# --- pure helpers ------------------------------------------------------------------------------------------------


def test_templated_prompts_repeat_their_fingerprint_and_free_prompts_do_not():
    book = PromptBook()
    rng = np.random.default_rng(0)
    n = 400
    family = np.full(n, FAMILY_INDEX["cot_elicit"])
    order, templated = book.build(family, np.full(n, 5), np.full(n, 1234), rng)
    assert sorted(order) == list(range(n))
    assert len(set(normalized_fingerprint(templated).to_pylist())) == 1

    keys = np.arange(n) % 20
    _, salt_a = book.build(family, keys, np.full(n, 1234), rng)
    _, salt_b = book.build(family, keys, np.full(n, 999), rng)
    set_a, set_b = set(normalized_fingerprint(salt_a).to_pylist()), set(normalized_fingerprint(salt_b).to_pylist())
    assert len(set_a) <= 20 and set_a != set_b  # another campaign's salt gives other templates

    chat = np.full(n, FAMILY_INDEX["chat"])
    _, free = book.build(chat, np.full(n, -1), np.zeros(n, np.int64), rng)
    assert len(set(normalized_fingerprint(free).to_pylist())) > 0.8 * n


def test_normalized_fingerprint_lowercases_masks_digits_and_collapses_space():
    text = pa.array(["Solve  3x + 12 = 7\n\nNOW", None])
    assert normalized_fingerprint(text).to_pylist() == ["solve #x + ## = # now", None]


def test_bad_row_sets_are_disjoint_and_cover_every_kind():
    rows = TrafficGenerator._bad_rows(1000, np.random.default_rng(1), ensure_every_kind=True)
    assert set(rows) == set(BAD_KINDS)
    flat = np.concatenate(list(rows.values()))
    assert len(flat) == len(set(flat.tolist())) and all(len(r) >= 1 for r in rows.values())
    assert (flat < 1000).all()


def test_hex_tokens_are_lowercase_hex_of_the_requested_width():
    tokens = world.hex_tokens(np.random.default_rng(2), 50, 6)
    assert all(len(t) == 12 and set(t.decode()) <= set("0123456789abcdef") for t in tokens)


# --- extended scenario: campaigns nobody labels, benign look-alikes -------------------------------------------

EXT_DAYS = 8
EXT_ACCOUNTS = 1500
EXT_SEED = 21
UNLABELLED = {"D": "low_slow_hydra", "E": "reseller_mixed", "F": "paraphrase_multilingual", "G": "late_hydra"}
LOOKALIKES = ("judge_harness", "education_cohort", "mobile_nat", "early_adopter", "batch_pipeline")


SOFT_ASKS = (
    r"(?i)one piece at a time|each stage|every inference|each deduction|each move|each transition|"
    r"how you worked it out|talk me through|follows from the last|leaving nothing implicit|justify each|"
    r"teaching a new tutor"
)
EXTRACTION_MARKERS = SOFT_ASKS + r"|(?i:step by step|reasoning|rubric|scale of|\bagent|chain of thought)"


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("sim_ext"))
    summary = simulate.run(
        settings, start=START, days=EXT_DAYS, accounts=EXT_ACCOUNTS, seed=EXT_SEED, scenario="extended"
    )
    truth = simulate.read_ground_truth(settings)
    raw = _read(settings, "api_requests").merge(truth, on="account_id", how="left")
    raw = raw.merge(_read(settings, "asn_info"), on="asn", how="left")
    v6 = raw.client_ip.str.contains(":", regex=False).fillna(False)
    raw["prefix"] = (
        raw.client_ip.str.rsplit(".", n=1).str[0].where(~v6, raw.client_ip.str.split(":").str[:3].str.join(":"))
    )
    return settings, summary, truth, raw


def test_default_scenario_is_classic_and_records_archetypes(lake):
    settings, summary = lake
    assert summary.scenario == "classic"
    truth = simulate.read_ground_truth(settings)
    campaign = truth[truth.is_campaign]
    assert set(campaign.campaign_id) == {"A", "B", "C"}
    assert (campaign[campaign.segment == "reseller"].archetype == "reseller_mixed").all()
    assert (campaign[campaign.segment != "reseller"].archetype == "labelled_hydra").all()
    assert truth[~truth.is_campaign].benign_segment.equals(truth[~truth.is_campaign].segment)
    assert campaign.benign_segment.isna().all()


def test_unknown_scenario_is_a_one_line_input_error(tmp_path):
    from lake.errors import InputError

    with pytest.raises(InputError, match="unknown simulator scenario"):
        simulate.run(_settings(tmp_path), start=START, days=1, accounts=400, seed=1, scenario="nope")


@pytest.mark.slow
def test_extended_ground_truth_names_campaign_archetype_and_benign_segment(extended):
    _, summary, truth, raw = extended
    assert summary.scenario == "extended"
    campaign = truth[truth.is_campaign]
    assert campaign.groupby("campaign_id").archetype.first().to_dict() == {
        "A": "labelled_hydra",
        "B": "labelled_hydra",
        "C": "labelled_hydra",
        **UNLABELLED,
    }
    assert campaign.archetype.notna().all() and campaign.benign_segment.isna().all()
    benign = truth[~truth.is_campaign]
    assert benign.archetype.isna().all() and (benign.benign_segment == benign.segment).all()
    assert set(LOOKALIKES) <= set(benign.segment)
    # every account of every new archetype sends traffic in the window
    for campaign_id in UNLABELLED:
        assert raw[raw.campaign_id == campaign_id].account_id.nunique() > 0, campaign_id


@pytest.mark.slow
def test_extended_campaigns_are_never_labelled_while_classic_ones_still_are(extended):
    settings, _, truth, _ = extended
    labels = _read(settings, "enforcement_labels").merge(truth, on="account_id")
    assert not labels.campaign_id_y.isin(list(UNLABELLED)).any()
    assert truth[truth.campaign_id.isin(list(UNLABELLED))].banned_at.isna().all()
    extraction = labels[labels.label == "extraction"]
    assert set(extraction.campaign_id_x) == {"A", "B", "C"}
    benign_noted = labels[labels.label == "benign"]
    assert (benign_noted.note == benign_noted.segment).all()


@pytest.mark.slow
def test_low_and_slow_hydra_hides_among_ordinary_users(extended):
    from features.signals import COT_ELICITATION_PATTERN

    settings, _, truth, raw = extended
    accounts = _read(settings, "accounts").merge(truth.drop(columns="created_at"), on="account_id")
    hydra = accounts[accounts.campaign_id == "D"]
    assert len(hydra) >= 20 and hydra.payment_fingerprint.nunique() == len(hydra)  # a card of its own each
    d = raw[raw.campaign_id == "D"]
    first_request = d.groupby("account_id").event_ts.min()
    age_days = (first_request - hydra.set_index("account_id").created_at).dt.total_seconds() / 86_400
    assert age_days.median() < 3 and age_days.max() < 8  # young accounts, used soon after they exist
    per_day = d.groupby(["account_id", "event_date"]).size()
    assert per_day.median() <= 12  # low volume per account-day
    assert (d.category == "residential").mean() > 0.95
    benign_prefixes = set(raw[~raw.is_campaign.astype(bool)].prefix)
    assert d.prefix.isin(benign_prefixes).mean() > 0.3  # proxy exits on prefixes ordinary users also use
    english = d[~d.prompt_prefix.str.contains("[\u00c0-\u024f\u4e00-\u9fff\u3040-\u30ff]")]
    a = raw[raw.campaign_id == "A"].prompt_prefix
    # softened asks mostly slip past the elicitation patterns (the paraphrases the patterns gained this session
    # catch some of them), while campaign A's plain asks are caught
    assert english.prompt_prefix.str.lower().str.contains(COT_ELICITATION_PATTERN).mean() < 0.25
    assert a.str.lower().str.contains(COT_ELICITATION_PATTERN).mean() > 0.2
    assert english.prompt_prefix.str.contains(SOFT_ASKS).mean() > 0.2


@pytest.mark.slow
def test_late_hydra_starts_in_the_last_quarter_of_the_window(extended):
    from simulator.extended import LATE_START

    settings, _, truth, raw = extended
    g = raw[raw.campaign_id == "G"]
    assert g.account_id.nunique() >= 20  # large enough for the latency target (campaigns of 20+ accounts)
    first_day = (g.event_date.min() - START).days
    assert first_day >= int(LATE_START[0] * EXT_DAYS - 1)  # nothing before its start: latency is measurable
    assert (raw[raw.campaign_id.isin(["D", "F"])].event_date.min() - START).days < first_day
    accounts = _read(settings, "accounts").merge(truth.drop(columns="created_at"), on="account_id")
    assert (accounts[accounts.campaign_id == "G"].created_at > pd.Timestamp(START, tz="UTC")).mean() > 0.5


@pytest.mark.slow
def test_reseller_mixes_extraction_into_established_accounts(extended):
    settings, _, truth, raw = extended
    accounts = _read(settings, "accounts").merge(truth.drop(columns="created_at"), on="account_id")
    resellers = accounts[accounts.campaign_id == "E"]
    assert len(resellers) >= 2
    assert (resellers.created_at < pd.Timestamp(START, tz="UTC") - pd.Timedelta(days=30)).all()
    assert resellers.campaign_traffic_share.between(0.01, 0.5).all()
    e = raw[raw.campaign_id == "E"]
    extraction = e.prompt_prefix.str.contains(EXTRACTION_MARKERS)
    assert 0.02 < extraction.mean() < 0.6  # mostly its customers' traffic, and not only that
    assert e.groupby("account_id").client_ip.nunique().max() <= 3 * 12  # its own servers, not a proxy pool


@pytest.mark.slow
def test_paraphrased_multilingual_elicitation(extended):
    from features.signals import COT_ELICITATION_PATTERN, NON_LATIN_SCRIPT_PATTERN

    _, _, _, raw = extended
    f = raw[raw.campaign_id == "F"].prompt_prefix
    latin_foreign = f.str.contains(
        "[\u00c0-\u024f]|"
        r"(?i:\b(resuelve|löse|résous|resolva|demuestra|beweise|"
        r"démontre|prove que|calcula)\b)"
    )
    other = f.str.contains(NON_LATIN_SCRIPT_PATTERN)
    assert (latin_foreign | other).mean() > 0.1
    assert f.str.lower().str.contains(COT_ELICITATION_PATTERN).mean() < 0.15


@pytest.mark.slow
def test_benign_lookalikes(extended):
    from features.signals import RUBRIC_GRADING_PATTERN

    settings, summary, truth, raw = extended
    judge = raw[raw.segment == "judge_harness"]
    chat = raw[raw.segment == "chat_user"]
    assert judge.prompt_prefix.str.lower().str.contains(RUBRIC_GRADING_PATTERN).mean() > 0.3
    assert (
        judge.groupby(["account_id", "event_date"]).size().median()
        > 5 * chat.groupby(["account_id", "event_date"]).size().median()
    )

    accounts = _read(settings, "accounts").merge(truth.drop(columns="created_at"), on="account_id")
    cohort = accounts[accounts.segment == "education_cohort"]
    per_card = cohort.groupby("payment_fingerprint").size()
    assert per_card.max() >= 15 and (cohort.program == "education").all()
    students = raw[raw.segment == "education_cohort"]
    # the campus NAT: one address carries many students of one institution
    assert students.groupby("client_ip").account_id.nunique().max() >= 10
    assert (students.category == "education").mean() > 0.5

    mobile = raw[raw.segment == "mobile_nat"]
    assert (mobile.category == "mobile").all()
    sharing = mobile.groupby("prefix").account_id.transform("nunique")
    assert sharing.max() >= 10 and (sharing >= 3).mean() > 0.5  # a few carrier prefixes carry many users

    release = pd.Timestamp(summary.new_model_released_at)
    early = raw[(raw.segment == "early_adopter") & (raw.event_ts >= release + pd.Timedelta(hours=12))]
    assert (early.model == world.NEW_MODEL).mean() > 0.5
    assert (chat[chat.event_ts >= release].model == world.NEW_MODEL).mean() < 0.3
    assert (raw[raw.segment == "batch_pipeline"].endpoint == "batch").mean() > 0.7


def test_extended_knobs_are_randomised_per_seed():
    from simulator.extended import draw_plan

    plans = [draw_plan(seed, accounts=6000, days=21) for seed in (1, 2, 3)]
    for key in ("initial", "start_day", "lag_s", "non_english_prob"):
        assert len({round(p.low_slow[key], 6) for p in plans}) == 3, key
    assert len({p.low_slow["behaviour"].rate for p in plans}) == 3
    assert len({tuple(sorted(p.paraphrase["languages"])) for p in plans} | {1}) >= 2
    assert len({p.reseller["n"] for p in plans} | {p.reseller["extraction_share"][1] for p in plans}) >= 3
    assert len({tuple(n for _, n in p.lookalikes) for p in plans}) == 3
    assert draw_plan(1, accounts=6000, days=21).low_slow == plans[0].low_slow  # deterministic per seed


# --- randomised scenario: every tactic drawn per campaign, overlapping benign behaviour ---------------------

RND_DAYS = 6
RND_ACCOUNTS = 2500
RND_SEED = 31


@pytest.fixture(scope="module")
def randomised(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("sim_rnd"))
    summary = simulate.run(
        settings, start=START, days=RND_DAYS, accounts=RND_ACCOUNTS, seed=RND_SEED, scenario="randomised"
    )
    truth = simulate.read_ground_truth(settings)
    raw = _read(settings, "api_requests").merge(truth, on="account_id", how="left")
    raw = raw.merge(_read(settings, "asn_info"), on="asn", how="left")
    return settings, summary, truth, raw


def test_randomised_tactics_vary_between_campaigns_and_seeds():
    from simulator.randomised import draw_plan

    campaigns = [c for seed in (1, 2, 3) for c in draw_plan(seed, accounts=20_000, days=10).campaigns]
    out_scale = [c.behaviour.out_scale for c in campaigns]
    assert min(out_scale) < 0.6 and max(out_scale) > 1.3  # some buy short answers, some long
    aged = [c.aged_share for c in campaigns]
    assert min(aged) < 0.2 and max(aged) > 0.6
    proxy = [c.behaviour.network.get("proxy", 0) for c in campaigns]
    assert min(proxy) < 0.15 and max(proxy) > 0.4
    assert {c.payment for c in campaigns} == {"unique", "pool", "one"}
    assert {c.behaviour.timing for c in campaigns} == {"waves", "sessions", "runs"}
    assert len({round(c.behaviour.templated_prob, 3) for c in campaigns}) == len(campaigns)
    assert draw_plan(1, 20_000, 10).campaigns[0] == campaigns[0]  # deterministic per seed


def test_randomised_campaign_and_benign_ages_overlap(randomised):
    _, _, truth, _ = randomised
    start = pd.Timestamp(START, tz="UTC")
    age_days = (start - truth.created_at).dt.total_seconds() / 86_400
    campaign, benign = truth.is_campaign, ~truth.is_campaign
    assert (age_days[campaign] > 60).sum() >= 20  # aged campaign accounts
    assert (age_days[campaign] < 7).sum() >= 50  # and young ones
    assert (age_days[benign] < 0).mean() > 0.03  # benign signups during the window
    assert ((age_days[benign] >= 0) & (age_days[benign] < 30)).mean() > 0.02  # young benign accounts


def test_randomised_benign_accounts_use_proxy_networks_and_some_campaigns_do_not(randomised):
    _, _, _, raw = randomised
    on_proxy = raw[raw.category == "proxy"]
    assert on_proxy[on_proxy.is_campaign.eq(False)].account_id.nunique() >= 30
    proxy_share = raw[raw.is_campaign.eq(True)].groupby("campaign_id").category.apply(lambda c: (c == "proxy").mean())
    assert proxy_share.min() < 0.15 and proxy_share.max() > 0.3


def test_randomised_answer_sizes_overlap(randomised):
    _, _, _, raw = randomised
    ok = raw[(raw.status_code == 200) & (raw.output_tokens > 0)]
    per_campaign = ok[ok.is_campaign.eq(True)].groupby("campaign_id").output_tokens.median()
    benign = ok[ok.is_campaign.eq(False)]
    chat = benign[benign.segment == "chat_user"].output_tokens.median()
    vendor = benign[benign.segment == "synthetic_data_vendor"].output_tokens.median()
    assert per_campaign.min() < chat  # a campaign buying shorter answers than ordinary chat
    assert vendor > per_campaign.median()  # a benign customer buying longer answers than most campaigns


def test_randomised_benign_accounts_share_cards_and_look_alikes_are_cleared(randomised):
    settings, _, truth, _ = randomised
    accounts = _read(settings, "accounts").merge(truth[["account_id", "segment", "is_campaign"]], on="account_id")
    own = accounts[accounts.segment.isin(["small_developer", "chat_user", "startup_app", "coding_assistant"])]
    assert own.payment_fingerprint.value_counts().max() >= 3  # a company's accounts on one card
    labels = _read(settings, "enforcement_labels").merge(truth, on="account_id")
    assert (labels[labels.segment == "synthetic_data_vendor"].label == "benign").sum() >= 2


def test_randomised_labels_catch_the_loudest_accounts_first(randomised):
    settings, _, _, raw = randomised
    labels = _read(settings, "enforcement_labels")
    caught = set(labels[labels.label == "extraction"].account_id)
    daily = raw[raw.is_campaign.eq(True)].groupby(["campaign_id", "account_id", "event_date"]).size()
    # an account's first and last days are partial (it goes live, is banned or abandoned during them): whole days only
    days = daily.reset_index(name="requests")
    by_account = days.groupby("account_id")["event_date"]
    whole = days[(days.event_date > by_account.transform("min")) & (days.event_date < by_account.transform("max"))]
    loudness = whole.groupby(["campaign_id", "account_id"])["requests"].median().rename("per_day").reset_index()
    loudness["caught"] = loudness.account_id.isin(caught)
    labelled = loudness[loudness.groupby("campaign_id").caught.transform("any")]
    assert labelled.campaign_id.nunique() >= 2
    louder = labelled.groupby("campaign_id").apply(
        lambda c: c[c.caught].per_day.median() > c[~c.caught].per_day.median(), include_groups=False
    )
    assert louder.all()
    assert 0.1 < loudness.caught.mean() < 0.7  # labelled campaigns keep unlabelled accounts, others none


def test_randomised_aged_campaign_accounts_can_carry_an_ordinary_past():
    from simulator.randomised import HISTORY_SEGMENTS
    from simulator.scenarios import build_population

    population = build_population(5, 3000, START, 6, "randomised")
    truth = population.ground_truth.to_pandas()
    profiles = population.profiles
    campaign_rows = np.flatnonzero(truth.is_campaign.to_numpy())
    names = np.array([population.groups[g].name for g in profiles.group])
    past = np.isin(profiles.account, campaign_rows) & (profiles.hydra == -1) & np.isin(names, HISTORY_SEGMENTS)
    assert past.sum() >= 10
    # the ordinary past ends where the campaign's use of the account begins
    for row in np.flatnonzero(past)[:20]:
        campaign = np.flatnonzero((profiles.account == profiles.account[row]) & (profiles.hydra >= 0))
        assert profiles.active_until_us[row] == profiles.active_from_us[campaign[0]]


def test_randomised_hold_out_archetype_exists_only_unlabelled():
    from lake.errors import InputError
    from simulator.scenarios import build_population

    population = build_population(5, 3000, START, 6, "randomised", hold_out="label_harvest")
    truth = population.ground_truth.to_pandas()
    labels = population.labels.to_pandas().merge(truth, on="account_id")
    held = truth[truth.archetype == "label_harvest"]
    assert len(held) >= 15
    assert not labels.account_id.isin(held.account_id).any()
    assert labels[labels.label == "extraction"].archetype.nunique() >= 2
    with pytest.raises(InputError, match="only the randomised scenario"):
        build_population(5, 3000, START, 6, "extended", hold_out="label_harvest")
    with pytest.raises(InputError, match="hold-out"):
        build_population(5, 3000, START, 6, "randomised", hold_out="nope")


def test_a_late_randomised_campaign_goes_live_after_its_start():
    """A campaign that starts late (after the detection benchmark's train day) sends nothing before it starts,
    though its first accounts were made ready days ahead: its detection latency is measured from there."""
    from simulator.population import DAY_US
    from simulator.randomised import LATE_START, draw_plan
    from simulator.scenarios import build_population

    days, accounts = 12, 3000
    seed, late = next(
        (s, c)
        for s in range(1, 60)
        for c in draw_plan(s, accounts, days).campaigns
        if c.start_day >= LATE_START[0] * days
    )
    population = build_population(seed, accounts, START, days, "randomised")
    truth = population.ground_truth.to_pandas()
    members = np.flatnonzero((truth.campaign_id == late.campaign_id).to_numpy() & truth.is_campaign.to_numpy())
    profiles = population.profiles
    campaign_profiles = np.isin(profiles.account, members) & (profiles.hydra >= 0)
    start_us = int(dt.datetime(START.year, START.month, START.day, tzinfo=dt.UTC).timestamp() * 1e6)
    assert campaign_profiles.sum() >= 10
    assert profiles.active_from_us[campaign_profiles].min() >= start_us + late.start_day * DAY_US
