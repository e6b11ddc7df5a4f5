"""The runner protocol: inputs, outputs, workflow commands, log groups and the job summary.

Matches `@actions/core`. Escaping comes from `actions-toolkit` (it is correct there); what that package
gets wrong or lacks is done here: it prints empty annotation properties (`endLine=,col=`), exits the
process inside `set_failed`, writes outputs one at a time with no delimiter check, and has no summary API.

Import cost matters (`charon-ci tag` must start in about the time of a bare interpreter), so this module
imports only the standard library and the two small toolkit modules.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` itself costs about 2 ms to import; type checkers read this as True
if TYPE_CHECKING:  # typing-only imports: a command's start-up must not pay for collections, typing.io...
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType
    from typing import Any, TextIO

__all__ = [
    "ActionFailure",
    "InputError",
    "Inputs",
    "OutputError",
    "Outputs",
    "annotation",
    "append_summary",
    "debug",
    "error",
    "escape_data",
    "escape_property",
    "group",
    "info",
    "new_delimiter",
    "notice",
    "run_action",
    "run_command",
    "set_secret",
    "warning",
    "workspace_relative",
    "write_outputs",
]

# YAML 1.2 core schema booleans, as @actions/core getBooleanInput accepts them.
_TRUE_WORDS = frozenset({"true", "True", "TRUE"})
_FALSE_WORDS = frozenset({"false", "False", "FALSE"})


class ActionFailure(Exception):
    """A clean, expected failure: reported as one `::error title=...::` line and exit code 1."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


class InputError(ActionFailure):
    """An input that is missing or not one of the accepted values."""

    def __init__(self, name: str, accepted: str, value: str | None = None) -> None:
        if value is None:
            message = f"Input '{name}' is required: {accepted}."
        else:
            shown = value if len(value) <= 80 else value[:77] + "..."
            message = f"Input '{name}' got {shown!r}; accepted: {accepted}."
        super().__init__(f"Invalid input '{name}'", message)
        self.name = name
        self.accepted = accepted
        self.value = value


class OutputError(ActionFailure):
    """An output that cannot be written safely (name or value would break the file-command format)."""

    def __init__(self, message: str) -> None:
        super().__init__("Cannot write output", message)


def escape_data(text: str) -> str:
    """Workflow-command message escaping, by actions-toolkit (imported on first use: start-up cost)."""
    from actions_toolkit.command import escape_data as toolkit_escape_data

    escaped: str = toolkit_escape_data(text)
    return escaped


def escape_property(text: str) -> str:
    """Workflow-command property escaping (also `:` and `,`), by actions-toolkit."""
    from actions_toolkit.command import escape_property as toolkit_escape_property

    escaped: str = toolkit_escape_property(text)
    return escaped


def new_delimiter() -> str:
    """`ghadelimiter_` and a random UUID version 4, as @actions/core makes it (without importing uuid)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    hexed = raw.hex()
    return f"ghadelimiter_{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def _stdout() -> TextIO:
    return sys.stdout


def _issue(command: str, message: str, properties: Mapping[str, object] | None = None) -> None:
    """Print one workflow command; properties that are None or empty are left out."""
    props = [
        f"{key}={escape_property(str(value))}"
        for key, value in (properties or {}).items()
        if value is not None and str(value) != ""
    ]
    line = f"::{command}{' ' + ','.join(props) if props else ''}::{escape_data(message)}"
    out = _stdout()
    out.write(line + "\n")
    out.flush()


def annotation(
    level: str,
    message: str,
    *,
    title: str | None = None,
    file: str | None = None,
    line: int | None = None,
    end_line: int | None = None,
    col: int | None = None,
    end_column: int | None = None,
) -> None:
    """An `error`, `warning` or `notice` annotation, with @actions/core's property names."""
    if level not in {"error", "warning", "notice"}:
        raise ValueError(f"unknown annotation level {level!r}")
    if line is not None and end_line is None:
        end_line = line
    _issue(
        level,
        message,
        {"title": title, "file": file, "line": line, "endLine": end_line, "col": col, "endColumn": end_column},
    )


def error(message: str, *, title: str | None = None, file: str | None = None, line: int | None = None) -> None:
    annotation("error", message, title=title, file=file, line=line)


def warning(message: str, *, title: str | None = None, file: str | None = None, line: int | None = None) -> None:
    annotation("warning", message, title=title, file=file, line=line)


def notice(message: str, *, title: str | None = None, file: str | None = None, line: int | None = None) -> None:
    annotation("notice", message, title=title, file=file, line=line)


def info(message: str) -> None:
    """A plain log line. Text that the runner could read as a workflow command is defused.

    The runner treats a line beginning with `::` (after leading spaces) as a command, and still parses the
    old `##[command]` form anywhere in a line; a zero-width space, invisible in the log, breaks both.
    """
    out = _stdout()
    if "::" not in message and "##[" not in message and "\r" not in message:
        out.write(message + "\n")  # nothing to defuse: one write for a batch of lines (prune logs 200,000)
    else:
        for part in message.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            part = part.replace("##[", "##\u200b[")
            if part.lstrip().startswith("::"):
                part = "\u200b" + part
            out.write(part + "\n")
    out.flush()


def debug(message: str) -> None:
    _issue("debug", message)


def set_secret(value: str) -> None:
    """Ask the runner to mask `value` in every later log line; call before anything could print it."""
    if value:
        _issue("add-mask", value)


class group:  # lower-case: used like @actions/core's function, `with gha.group("title"):`
    """A collapsible log group; closed even when the body raises."""

    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self) -> None:
        _issue("group", self.title)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        _issue("endgroup", "")


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def append_summary(markdown: str, env: Mapping[str, str] | None = None) -> bool:
    """Append Markdown to the job summary; returns False (and writes nothing) outside a runner."""
    path = _env(env).get("GITHUB_STEP_SUMMARY", "")
    if not path:
        return False
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return True


class Inputs:
    """Reads action inputs from `INPUT_<NAME>` the way @actions/core does.

    Composite actions get no INPUT_* variables from the runner, so each action.yml maps them in `env:`;
    the runner does not enforce `required: true` either, so `required` is checked here.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = _env(env)

    @staticmethod
    def variable(name: str) -> str:
        return "INPUT_" + name.replace(" ", "_").upper()

    def raw(self, name: str) -> str | None:
        return self._env.get(self.variable(name))

    def text(self, name: str, default: str = "", *, required: bool = False, accepted: str = "a value") -> str:
        value = (self.raw(name) or "").strip()
        if not value:
            if required:
                raise InputError(name, accepted)
            return default
        return value

    def boolean(self, name: str, default: bool | None = None) -> bool:
        accepted = "true | True | TRUE | false | False | FALSE"
        value = (self.raw(name) or "").strip()
        if not value:
            if default is None:
                raise InputError(name, accepted)
            return default
        if value in _TRUE_WORDS:
            return True
        if value in _FALSE_WORDS:
            return False
        raise InputError(name, accepted, value)

    def lines(self, name: str, *, required: bool = False, accepted: str = "one value a line") -> list[str]:
        values = [line.strip() for line in (self.raw(name) or "").splitlines()]
        values = [line for line in values if line]
        if required and not values:
            raise InputError(name, accepted)
        return values


class Outputs:
    """Collects outputs and writes them to `GITHUB_OUTPUT` in one go, so a failure leaves none half-written.

    Each value is framed as `name<<ghadelimiter_<uuid4>` ... delimiter; a value (or name) containing the
    delimiter is refused, since the runner would end the value there (CVE-2022-35954).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = _env(env)
        self._values: dict[str, str] = {}

    def set(self, name: str, value: str) -> None:
        if not name or any(ch in name for ch in "\r\n") or "<<" in name or "=" in name:
            raise OutputError(f"output name {name!r} is not a valid name")
        self._values[name] = value

    @property
    def values(self) -> dict[str, str]:
        return dict(self._values)

    def render(self, delimiter: str | None = None) -> str:
        delimiter = delimiter or new_delimiter()
        chunks = []
        for name, value in self._values.items():
            if delimiter in name or delimiter in value:
                raise OutputError(f"output {name!r} contains the delimiter and cannot be written safely")
            chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        return "".join(chunks)

    def flush(self) -> dict[str, str] | None:
        """Write every output; returns them instead when there is no `GITHUB_OUTPUT` (local use)."""
        path = self._env.get("GITHUB_OUTPUT", "")
        if not path:
            return self.values
        text = self.render()
        with open(path, "a", encoding="utf-8", newline="") as handle:
            handle.write(text)
        self._values.clear()
        return None


def write_outputs(values: Mapping[str, str], env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """Write every output in one go; returns them instead when there is no `GITHUB_OUTPUT` (local use).

    A `GITHUB_OUTPUT` that cannot be written is an ActionFailure (one `::error`), never a traceback."""
    outputs = Outputs(env)
    for name, value in values.items():
        outputs.set(name, value)
    try:
        return outputs.flush()
    except OSError as exc:
        raise ActionFailure("Cannot write outputs", f"GITHUB_OUTPUT cannot be written: {exc.strerror}.") from None


def workspace_relative(target: str, env: Mapping[str, str] | None = None) -> str:
    """`target` relative to `GITHUB_WORKSPACE` when inside it (what a later upload step names), else as given."""
    workspace = _env(env).get("GITHUB_WORKSPACE", "")
    if workspace:
        resolved, root = os.path.realpath(target), os.path.realpath(workspace)
        if resolved == root or resolved.startswith(root + os.sep):
            return os.path.relpath(resolved, root)
    return target


def run_action(main: Callable[[], int | None], env: Mapping[str, str] | None = None) -> int:
    """Run an action body; expected failures become one `::error` line and exit code 1, never a traceback."""
    try:
        code = main()
    except ActionFailure as failure:
        error(failure.message, title=failure.title)
        return 1
    except KeyboardInterrupt:
        error("interrupted", title="charon-ci stopped")
        return 1
    except Exception as unexpected:  # the last line of defence: no traceback in the log, but say what broke
        if _env(env).get("RUNNER_DEBUG") == "1":
            import traceback

            info(traceback.format_exc())
        error(f"{type(unexpected).__name__}: {unexpected}", title="charon-ci internal error")
        return 1
    return 0 if code is None else code


class _StdoutOutlivingItsReader:
    """stdout for `charon-ci ... | head`: once the reader has gone, the rest of the log goes nowhere and the
    run goes on to finish its work (deletions under way, files, outputs) instead of dying with a BrokenPipe
    traceback half-way."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        # The stream's buffer still holds what could not be written; pointing its descriptor at /dev/null
        # lets that (and every later flush, the interpreter's last one included) succeed quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def run_command(
    name: str, help_text: str, argv: Sequence[str], main: Callable[[Mapping[str, str]], int | None]
) -> int:
    """`charon-ci NAME`: every command takes its inputs from INPUT_*/GITHUB_* variables, never arguments.

    `-h`/`--help` prints the help (exit 0); any other argument is a usage error (exit 2). The run itself goes
    through `run_action` with a stdout that survives its reader going away (`charon-ci NAME | head`).
    """
    if any(arg in {"-h", "--help"} for arg in argv):
        sys.stdout.write(help_text)
        return 0
    if argv:
        sys.stderr.write(f"charon-ci {name} takes no arguments: it reads INPUT_* and GITHUB_* variables\n{help_text}")
        return 2
    env = dict(os.environ)
    stdout = sys.stdout
    sys.stdout = _StdoutOutlivingItsReader(stdout)
    try:
        return run_action(lambda: main(env), env)
    finally:
        sys.stdout = stdout
