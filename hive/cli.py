"""What every stage script shares: the argument parser (--config, --set, flags that map onto config keys),
printing the resolved settings and the summary, and turning a HiveError into one line and an exit code."""

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from hive.config import Config, format_settings, load_config, parse_override
from hive.errors import HiveError


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose help shows the script's docstring; with --config FILE and repeatable --set KEY=VALUE."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: training_config.yaml)")
    parser.add_argument(
        "--set", metavar="SECTION.KEY=VALUE", action="append", default=[], dest="set_overrides",
        help="override any config key, e.g. --set training.learning_rate=1e-4 (repeatable)",
    )
    return parser


def config_flag(parser: argparse.ArgumentParser, *names: str, key: str, **kwargs) -> None:
    """A flag that overrides config key `key` ("section.key") when given."""
    parser.add_argument(*names, dest=key, default=None, **kwargs)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> tuple[argparse.Namespace, Config]:
    """Parse the command line and load the config: defaults < YAML < --set < per-script flags."""
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = dict(parse_override(s) for s in args.set_overrides)
    overrides.update({k: v for k, v in vars(args).items() if "." in k and v is not None})
    return args, load_config(args.config, overrides)


def print_settings(stage: str, cfg: Config, sections: Sequence[str]) -> None:
    print(f"{stage}: settings")
    print(format_settings(cfg, sections), flush=True)


def print_summary(stage: str, rows: dict[str, Any], next_command: str | None = None,
                  started: float | None = None) -> None:
    """The closing block: aligned `label: value` rows, elapsed time, and the command to run next."""
    if started is not None:
        rows = {**rows, "time": f"{time.time() - started:.1f} s"}
    width = max((len(k) for k in rows), default=0)
    print(f"\n{stage}: done")
    for key, value in rows.items():
        value = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        print(f"  {key.ljust(width)}  {value}")
    if next_command:
        print(f"\nnext: {next_command}")


def print_list(title: str, rows: Sequence[str], limit: int = 20) -> None:
    """A titled list of at most `limit` rows (the title says when more were left out)."""
    if rows:
        more = f", first {limit}" if len(rows) > limit else ""
        print(f"\n{title} ({len(rows):,}{more}):")
        print("\n".join(f"  {row}" for row in rows[:limit]))


def run(main: Callable[[], int]) -> int:
    """Call a stage's main(); user errors become `error: ...` on stderr and their exit code."""
    try:
        return main()
    except HiveError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
