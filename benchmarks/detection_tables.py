"""The detection benchmark's markdown (benchmarks/detection.py): the headline per seed set, then per seed."""

from __future__ import annotations

TIERS = ("critical", "high", "elevated")
ORACLE = ("at_0.1%", "at_1%")
# the detection targets (docs/detection-benchmark.md): recall at least this, at a realised benign FPR of at most this (oracle rows: recall only)
TARGETS = {
    "critical": (0.5, 0.0001),
    "high": (0.8, 0.001),
    "elevated": (0.95, 0.01),
    "at_0.1%": (0.85, None),
    "at_1%": (0.95, None),
}
SET_TITLES = {
    "dev": "Development seeds (tune on these)",
    "report": "Report seeds (never tuned on)",
    "adhoc": "Other seeds (neither declared set)",
}


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{100 * value:.{digits}f}%"


def _ci(rate: dict | None, digits: int = 1) -> str:
    """value [low-high]"""
    if not rate:
        return "-"
    if rate.get("groups", 2) < 2:  # one cluster or campaign: resampling it says nothing about the spread
        return f"{_pct(rate['value'], digits)} (1 group)"
    return f"{_pct(rate['value'], digits)} [{_pct(rate['low'], digits)}-{_pct(rate['high'], digits)}]"


def _operating_cells(point: dict) -> str:
    """An operating point's recall, benign FPR and benign accounts flagged, as table cells."""
    return f"{_ci(point['recall'])} | {_ci(point['benign_fpr'], 3)} | {point['benign_fpr']['flagged']:,}"


def headline_markdown(name: str, block: dict, hold_out: str | None) -> str:
    tiers, oracle = block["tiers"], block["oracle"]
    lines = [
        f"### {SET_TITLES[name]}: seeds {', '.join(map(str, block['seeds']))}\n",
        f"{block['unlabelled_campaign_accounts']:,} unlabelled campaign accounts, "
        f"{block['unlabelled_benign_accounts']:,} unlabelled benign accounts (one row per account: its highest tier "
        "over the scored days). "
        "95% intervals from a bootstrap over clusters (a campaign; a benign link cluster or shared org; a lone "
        "account).\n",
        "| flag at | recall | benign FPR | benign flagged | target |",
        "|---|---:|---:|---:|---|",
    ]
    rows = [(f">= {t}", t, tiers[t]) for t in TIERS]
    rows += [(f"oracle {o.removeprefix('at_')} FPR (secondary)", o, oracle[o]) for o in ORACLE]
    for label, key, row in rows:
        recall, fpr = TARGETS[key]
        target = f"recall >= {recall:.0%}" + (f" at FPR <= {fpr:.2%}" if fpr else "")
        lines.append(f"| {label} | {_operating_cells(row)} | {target} |")
    if "campaigns_with_labels" in block:
        lines += [
            "\nCampaign accounts by whether their campaign has any labelled account (siblings) or none:\n",
            "| campaigns | accounts | >= critical | >= high | >= elevated |",
            "|---|---:|---:|---:|---:|",
        ]
        for key, label in (("campaigns_with_labels", "with labels"), ("campaigns_without_labels", "without labels")):
            part = block[key]
            cells = [_ci(part[t]["recall"]) for t in TIERS]
            lines.append(f"| {label} | {part['elevated']['recall']['accounts']:,} | " + " | ".join(cells) + " |")
    if "with_review_round" in block:
        part = block["with_review_round"]
        lines += [
            "\nThe reviewed accounts counted in: every account undecided before the reviews, a reviewed "
            "campaign account found, a reviewed benign account cleared:\n",
            "| flag at | recall | benign FPR | benign flagged |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| >= {t} | {_operating_cells(part[t])} |" for t in TIERS]
    if "with_model_bounds" in block:
        part = block["with_model_bounds"]
        lines += [
            "\nThe same scores and decisions, tiered with the model version's own bounds (without the tier audits' "
            "relaxation), on the accounts undecided on the last day:\n",
            "| flag at | recall | benign FPR | benign flagged |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| >= {t} | {_operating_cells(part[t])} |" for t in TIERS]
    archetypes = sorted(tiers["elevated"]["per_archetype"])
    lines += [
        "\nPer archetype (pooled over the set's campaigns of that archetype, which are resampled; * = held out of "
        "every labelled campaign):\n",
        "| archetype | accounts | >= critical | >= high | >= elevated | oracle @0.1% | oracle @1% |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for archetype in archetypes:
        cells = [_ci(tiers[t]["per_archetype"].get(archetype)) for t in TIERS]
        cells += [_ci(oracle[o]["per_archetype"].get(archetype)) for o in ORACLE]
        mark = "*" if archetype == hold_out else ""
        accounts = tiers["elevated"]["per_archetype"][archetype]["accounts"]
        lines.append(f"| {archetype}{mark} | {accounts:,} | " + " | ".join(cells) + " |")
    segments = sorted(tiers["elevated"]["per_segment_fpr"])
    lines += [
        "\nBenign FPR per segment:\n",
        "| segment | accounts | >= critical | >= high | >= elevated |",
        "|---|---:|---:|---:|---:|",
    ]
    for segment in segments:
        cells = [_ci(tiers[t]["per_segment_fpr"].get(segment), 2) for t in TIERS]
        accounts = tiers["elevated"]["per_segment_fpr"][segment]["accounts"]
        lines.append(f"| {segment} | {accounts:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def campaigns_markdown(report: dict) -> str:
    """Every campaign of every seed: its archetype, how much of it was labelled, and what was found of the rest."""
    lines = [
        "\nPer campaign (unlabelled accounts; interval from resampling the campaign's accounts):\n",
        "| seed | campaign | archetype | accounts | labelled | unlabelled scored | >= critical | >= high | "
        ">= elevated | oracle @0.1% | oracle @1% |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, block in report.get("headline", {}).items():
        for seed in block["seeds"]:
            info = next(r for r in report["seeds"] if r["seed"] == seed)
            for campaign, c in info["campaigns"].items():
                key = f"{seed}:{campaign}"
                cells = [_ci(block["tiers"][t]["per_campaign"].get(key)) for t in TIERS]
                cells += [_ci(block["oracle"][o]["per_campaign"].get(key)) for o in ORACLE]
                lines.append(
                    f"| {seed} ({name}) | {campaign} | {c['archetype']} | {c['accounts']:,} | "
                    f"{c['labelled_accounts']:,} | {c['unlabelled_scored']:,} | " + " | ".join(cells) + " |"
                )
    return "\n".join(lines) + "\n"


def review_markdown(seeds: list[dict]) -> str:
    """What each seed's review rounds decided (benchmarks/review_round.py): the round on the train day, or one per
    scored day; empty without any."""
    rows = [(r["seed"], r["review"]) for r in seeds if r.get("review")]
    rows += [
        (r["seed"], day)
        for r in seeds
        if r.get("daily_review")
        for day in r["daily_review"]["days"]
        if day["reviewed"] or r["daily_review"].get("retrain")
    ]
    if not rows:
        return ""
    first = next(r.get("review") or r["daily_review"] for r in seeds if r.get("review") or r.get("daily_review"))
    when = "the train day" if any(r.get("review") for r in seeds) else "each scored day, once scored"
    audited = any("tier_bounds" in x for _, x in rows)
    lines = [
        f"\nReview rounds per seed ({first['policy']} queue of {when}, decided with the ground truth"
        + ("; the day's tier bounds, critical / high / elevated, as the audits left them, and the model's" * audited)
        + "):\n",
        "| seed | day | reviewed | extraction | benign | campaign accounts reviewed | campaigns first labelled |"
        + " tier bounds used (model's) |" * audited,
        "|---:|---|---:|---:|---:|---|---|" + "---|" * audited,
    ]
    for seed, x in rows:
        per_campaign = ", ".join(f"{c} {n}" for c, n in sorted(x["campaign_accounts"].items())) or "-"
        scored_by = f" (model v{x['model_version']})" if x.get("model_version") else ""
        bounds = f" {_bounds_cell(x['tier_bounds'])} |" if "tier_bounds" in x else " - |"
        lines.append(
            f"| {seed} | {x['day']}{scored_by} | {x['reviewed']} | {x['extraction']} | {x['benign']} | {per_campaign} | "
            f"{', '.join(x['campaigns_first_labelled']) or '-'} |" + bounds * audited
        )
    return "\n".join(lines) + "\n"


def _bounds_cell(bounds: dict[str, dict[str, float]]) -> str:
    """`used` bounds, critical / high / elevated, then the model's own in parentheses."""

    def listed(values: dict[str, float]) -> str:
        return " / ".join(f"{v:.6f}" for v in values.values())

    return f"{listed(bounds['used'])} ({listed(bounds['model'])})"


def per_day_markdown(seeds: list[dict]) -> str:
    """Each scored day's benign accounts at or above each tier, among those undecided on the last day: the tiers'
    budgets are shares of one day's accounts, the headline counts an account's highest tier over the days."""
    rows = [(r["seed"], day, tiers) for r in seeds for day, tiers in r.get("benign_flagged_per_day", {}).items()]
    if not rows:
        return ""
    names = list(rows[0][2])
    lines = [
        "\nBenign accounts flagged on each scored day (undecided on the last day; the tiers' budgets are per day, the "
        "headline counts each account's highest tier over the days):\n",
        "| seed | day | benign | " + " | ".join(f">= {name}" for name in names) + " |",
        "|---:|---|---:|" + "---:|" * len(names),
    ]
    for seed, day, tiers in rows:
        cells = " | ".join(f"{t['benign_flagged']} ({_pct(t['benign_fpr'], 3)})" for t in tiers.values())
        lines.append(f"| {seed} | {day} | {next(iter(tiers.values()))['benign']:,} | {cells} |")
    return "\n".join(lines) + "\n"


def latency_markdown(seeds: list[dict]) -> str:
    """Detection latency of the campaigns whose first request comes after the train day: scoring starts on that
    day, so for a campaign already active the latency only says when it started."""
    rows = [
        (r["seed"], c, x)
        for r in seeds
        for c, x in sorted(r["latency"].items())
        if x["first_request"] > r["train_as_of"]
    ]
    if not rows:
        return "\nDetection latency: every campaign was active before the train day, so none can be measured.\n"
    lines = [
        "\nDetection latency of the campaigns that start after the train day (days from the campaign's first "
        "request to its first unlabelled account at >= high; `never` = not within the scored days):\n",
        "| seed | campaign | accounts | first request | latency |",
        "|---:|---|---:|---|---:|",
    ]
    for seed, campaign, x in rows:
        days = "never" if x["latency_days"] is None else f"{x['latency_days']} d"
        lines.append(f"| {seed} | {campaign} | {x['accounts']} | {x['first_request']} | {days} |")
    return "\n".join(lines) + "\n"


def markdown(report: dict) -> str:
    cfg = report["config"]
    seeds = [r for r in report["seeds"] if "error" not in r]
    benign = sorted({r.get("benign_accounts", 0) for r in seeds})
    lines = [
        f"Scenario `{cfg['scenario']}`"
        + (f", **leave-one-tactic-out: `{cfg['hold_out']}`** is in no labelled campaign" if cfg.get("hold_out") else "")
        + f"; {cfg['accounts']:,} accounts x {cfg['days']} days per seed"
        + (f" ({benign[0]:,}-{benign[-1]:,} benign)" if benign else "")
        + (
            f", **review round**: {cfg['review']['budget']} accounts of the `{cfg['review']['queue']}` queue decided "
            "on the train day"
            if cfg.get("review")
            else ""
        )
        + (
            f", **daily review**: {cfg['daily_review']['budget']} accounts of the `{cfg['daily_review']['queue']}` "
            "queue decided on every scored day"
            if cfg.get("daily_review")
            else ""
        )
        + (", **retrained as of every scored day**" if cfg.get("retrain_daily") else "")
        + f", trained as of day {cfg['train_day']}, scored from that day to the last, evaluated on accounts "
        "UNLABELLED on the last day. "
        f"Commit `{report.get('commit', '?')}`, {report['machine'].get('cpu_count')} CPUs, "
        f"wall {report.get('wall_s', 0) / 60:.0f} min.\n"
    ]
    if not report.get("complete", True):
        lines.append(f"**Partial**: {len(report['seeds'])} of {len(cfg['seeds'])} seeds finished.\n")
    for failed in (r for r in report["seeds"] if "error" in r):
        lines.append(f"- seed {failed['seed']}: **failed**: {failed['error'].splitlines()[0]}\n")
    for name, block in report.get("headline", {}).items():
        lines.append(headline_markdown(name, block, cfg.get("hold_out")))
    if seeds:
        lines.append(campaigns_markdown(report))
        lines.append(review_markdown(seeds))
        lines.append(per_day_markdown(seeds))
        lines.append(latency_markdown(seeds))
        lines.append("\nPer seed: timings (s) and the last day's clusters:\n")
        lines.append(
            "| seed | set | timings | largest cluster | size-weighted purity | clusters "
            "| campaign id continuity | campaign id purity |"
        )
        lines.append("|---:|---|---|---:|---:|---:|---:|---:|")
        for r in seeds:
            cl = r["clusters"]
            # campaign ids across days (models/campaign_metrics.py); absent from results written before 2026-12-07
            tracking = r.get("campaign_tracking") or {}
            timings = ", ".join(f"{k} {v:.0f}" for k, v in r["timings_s"].items())
            lines.append(
                f"| {r['seed']} | {r['set']} | {timings} | {cl['largest_cluster_size']:,} | "
                f"{_pct(cl['size_weighted_purity'])} | {cl['clusters']:,} | "
                f"{_pct(tracking.get('continuity'))} | {_pct(tracking.get('purity'))} |"
            )
    return "\n".join(lines) + "\n"
