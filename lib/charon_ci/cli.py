"""`charon-ci` command line: one subcommand per action, each reading the runner's INPUT_*/GITHUB_* environment.

Subcommand modules are imported only when chosen, so `charon-ci tag` pays for nothing it does not use.
"""

from __future__ import annotations

import sys

# Typing-only: collections.abc and typing cost milliseconds at start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# subcommand -> (module that defines `run(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tag": ("charon_ci.tag.command", "compute the immutable image tags and OCI labels for this event"),
    "pull-image": ("charon_ci.pull.command", "pull the built image, falling back to its artifact"),
    "prune": ("charon_ci.prune.command", "plan and apply a registry retention policy"),
    "metrics": ("charon_ci.metrics.command", "measure build and test pipeline statistics"),
}

USAGE = "usage: charon-ci {" + ",".join(COMMANDS) + "} [options]\n"


def _help_text() -> str:
    lines = [USAGE, "Every command reads its inputs from INPUT_<NAME> variables, as a GitHub runner sets them.", ""]
    lines += [f"  {name:<12} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        sys.stdout.write(_help_text())
        return 0 if args else 2
    if args[0] == "--version":
        from charon_ci import __version__

        sys.stdout.write(f"charon-ci {__version__}\n")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"charon-ci: unknown command {name!r}\n{USAGE}")
        return 2
    module_name, _ = COMMANDS[name]
    try:
        __import__(module_name)  # not importlib.import_module: the importlib package costs start-up time
    except ModuleNotFoundError as missing:
        if missing.name != module_name:
            raise
        sys.stderr.write(f"charon-ci {name}: not built yet\n")
        return 2
    code: int = sys.modules[module_name].run(rest)
    return code
