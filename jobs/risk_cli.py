"""`distillguard risk top|explore|account|cluster|campaign`: parser set-up only, so building the CLI parser stays cheap; the queries
and their rendering live in jobs/risk_query.py and are imported when a command runs."""

from __future__ import annotations


def add_subcommands(sub, settings_of) -> None:
    """`distillguard risk top|account|cluster`, each with --format table|json|csv. `settings_of(args)` builds the
    Settings from the global flags (jobs/cli.py owns them)."""
    from jobs.query_output import OUTPUT_FORMATS
    from lake.dates import parse_date
    from models.config import TIERS

    def run(function_name: str, **fixed):
        def handler(args):
            from jobs import risk_query

            getattr(risk_query, function_name)(
                settings_of(args),
                output_format=args.format,
                **{key: getattr(args, attr) for key, attr in fixed.items()},
            )

        return handler

    risk = sub.add_parser("risk", help="query the risk tables").add_subparsers(dest="risk_command", required=True)
    p = risk.add_parser("top", help="highest-risk accounts of a day")
    p.add_argument("--date", type=parse_date, help="score date (default: latest)")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--tier", choices=tuple(reversed(TIERS)))
    p.set_defaults(func=run("print_top", score_date="date", limit="limit", tier="tier"))
    p = risk.add_parser(
        "explore",
        help="undecided accounts from the top of the queue whose behaviour is unlike every account decided "
        "extraction, and unlike each other: where campaigns nobody has caught yet are likeliest",
    )
    p.add_argument("--date", type=parse_date, help="score date (default: latest)")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=run("print_explore", score_date="date", limit="limit"))
    p = risk.add_parser("account", help="one account's risk history with reasons")
    p.add_argument("account_id")
    p.add_argument("--date", type=parse_date, help="only this score date")
    p.set_defaults(func=run("print_account", account_id="account_id", score_date="date"))
    p = risk.add_parser("cluster", help="one cluster's members, link evidence and volume")
    p.add_argument("cluster_id")
    p.add_argument("--date", type=parse_date, help="score date (default: latest)")
    p.set_defaults(func=run("print_cluster", cluster_id="cluster_id", score_date="date"))
    p = risk.add_parser("campaign", help="one campaign's history across days, members and their decisions")
    p.add_argument("campaign_id", help="a campaign id, as the console and the campaigns table show it")
    p.add_argument("--date", type=parse_date, help="as of this date (default: latest)")

    def campaign_handler(args):
        from jobs.evidence_query import print_campaign

        print_campaign(settings_of(args), args.campaign_id, as_of=args.date, output_format=args.format)

    p.set_defaults(func=campaign_handler)
    for command in risk.choices.values():
        command.add_argument(
            "--format",
            choices=OUTPUT_FORMATS,
            default="table",
            help="table (default; ids never truncated), json or csv",
        )
