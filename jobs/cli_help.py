"""`--help` for every subcommand: a description, help for each flag, and its default.

`document(parser)` runs once at the end of jobs/cli.py:build_parser, so subcommands added anywhere get the
same treatment, and a flag added without help gets the shared wording for its name instead of nothing.
"""

from __future__ import annotations

import argparse

# one wording per flag name that several subcommands share
SHARED_FLAG_HELP = {
    "date": "the day to process (YYYY-MM-DD, UTC)",
    "as_of": "the training cut-off day (YYYY-MM-DD): features and labels known by then",
    "start": "first simulated day (YYYY-MM-DD)",
    "days": "number of days",
    "accounts": "number of simulated accounts",
    "seed": "random seed (same seed, same lake)",
    "limit": "most rows to show",
    "tier": "only accounts at this tier",
    "account_id": "the account to look up",
    "cluster_id": "the cluster to look up (cluster_id from account_risk or cluster_risk)",
    "format": "output format; json and csv never truncate ids",
    "verbose": "log at INFO and show full tracebacks",
}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless there is none to show (required, unset, an on/off switch) or its help
    already says what the default is."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:  # already laid out (the exit-code table): keep its lines
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required or action.default in (None, False) or "default" in text:
            return text
        return super()._get_help_string(action) or ""


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse has no public accessor for its subcommands
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield name, helps.get(name), child


def document(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:
        if action.help is None and not isinstance(action, argparse._SubParsersAction):
            action.help = SHARED_FLAG_HELP.get(action.dest)
            if action.help is None:
                raise AssertionError(f"flag {action.option_strings or action.dest} of {parser.prog} has no help")
    for _, help_text, child in _subparsers(parser):
        if not child.description:
            child.description = help_text
        document(child)
    return parser
