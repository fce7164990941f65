"""Errors that reach the user as one clear line (the stage scripts print them and exit non-zero)."""


class HiveError(Exception):
    """A problem the user can fix: the message says what, where and how.

    `exit_code` lets a stage choose its status (validate_dataset.py uses 2 for "file missing").
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(HiveError):
    """Every problem found in the configuration at once, one per line."""

    def __init__(self, problems: list[str], source: str = "configuration"):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {source}:\n{lines}")


def missing_input(path, stage: str, what: str = "input") -> HiveError:
    """The error for an absent input: it names the stage that produces it."""
    return HiveError(f"{what} not found: {path} (it is written by {stage}; run that first, or pass the path)")
