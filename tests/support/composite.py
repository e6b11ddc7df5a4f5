"""Runs an action.yml the way the GitHub runner does, so every action is tested through its real wiring.

Composite actions: input defaults, `env:` mapping, `${{ inputs.* }}`, `${{ github.* }}`, `${{ runner.* }}`,
`${{ env.* }}`, `${{ steps.<id>.outputs.* }}` (and `.outcome`/`.conclusion`), the operators `== != && || !` with
the runner's loose, case-insensitive comparison, a step's `if:`, the `outputs:` mapping, and each `run:` step in
`bash --noprofile --norc -eo pipefail` with fresh GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH files and a shared
GITHUB_STEP_SUMMARY. A nested `uses:` step (another action) cannot run here: a test that reaches one passes a
stand-in for it (`nested=`), which receives the step's evaluated `with:` and returns its outputs; one it has
not named fails the run. A step skipped by its `if:` needs no stand-in.

Docker actions: the runner gives the container `INPUT_<NAME>` for every input (hyphens kept, defaults applied)
and the GITHUB_* files; here the image's entrypoint is replaced by a command the test
names (the same `charon-ci` the image runs). Any expression or key this harness does not know fails the run
rather than being passed through, so an action cannot silently depend on something untested.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION_RE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
TOKEN_RE = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?(?![\w.]))"
    r"|(?P<op>==|!=|&&|\|\||!|\(|\))|(?P<path>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*))"
)
COMMAND_RE = re.compile(r"^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$")

KNOWN_STEP_KEYS = {"id", "name", "shell", "run", "env", "working-directory", "if", "uses", "with"}
KNOWN_ACTION_KEYS = {"name", "description", "author", "inputs", "outputs", "runs", "branding"}


class HarnessError(AssertionError):
    """The action uses something this harness (and so the test suite) does not model."""


@dataclass(frozen=True)
class WorkflowCommand:
    name: str
    properties: dict[str, str]
    message: str


@dataclass(frozen=True)
class NestedCall:
    """What a composite gave a nested `uses:` step: the action reference (owner/repo@ref) and its `with:`."""

    uses: str
    with_inputs: dict[str, str]
    env: dict[str, str]


# A stand-in for a nested action, keyed by owner/repo in `run(nested=...)`: takes the call, returns outputs.
NestedAction = Callable[[NestedCall], Mapping[str, str]]


@dataclass
class StepResult:
    id: str
    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    skipped: bool = False
    call: NestedCall | None = None


@dataclass
class ActionResult:
    outputs: dict[str, str]
    steps: list[StepResult]
    summary: str
    exit_code: int
    env_written: dict[str, str] = field(default_factory=dict)
    path_added: list[str] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return "".join(step.stdout for step in self.steps)

    @property
    def stderr(self) -> str:
        return "".join(step.stderr for step in self.steps)

    @property
    def commands(self) -> list[WorkflowCommand]:
        return parse_commands(self.stdout)

    @property
    def errors(self) -> list[WorkflowCommand]:
        return [command for command in self.commands if command.name == "error"]

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    return unescape_data(text.replace("%3A", ":").replace("%2C", ","))


def parse_commands(stdout: str) -> list[WorkflowCommand]:
    """Workflow commands as the runner reads them: lines starting with `::` after leading blanks."""
    commands = []
    for line in stdout.splitlines():
        match = COMMAND_RE.match(line.lstrip())
        if not match:
            continue
        properties: dict[str, str] = {}
        for pair in (match.group(2) or "").split(","):
            if "=" in pair:
                key, value = pair.split("=", 1)
                properties[key] = unescape_property(value)
        commands.append(WorkflowCommand(match.group(1), properties, unescape_data(match.group(3))))
    return commands


def parse_file_command(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV as the runner parses them (`name=value` or `name<<DELIM` heredocs)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index].rstrip("\r")
        index += 1
        if not line:
            continue
        equals = line.find("=")
        heredoc = line.find("<<")
        if heredoc > 0 and (equals < 0 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not delimiter:
                raise HarnessError(f"invalid file command line {line!r}")
            body: list[str] = []
            while True:
                if index >= len(lines):
                    raise HarnessError(f"no closing delimiter {delimiter!r} for {name!r}")
                current = lines[index].rstrip("\r")
                index += 1
                if current == delimiter:
                    break
                body.append(current)
            values[name] = "\n".join(body)
        elif equals > 0:
            values[line[:equals]] = line[equals + 1 :]
        else:
            raise HarnessError(f"invalid file command line {line!r}")
    return values


class ActionRunner:
    """Runs one action the way the runner would, inside one simulated job.

    `runner_temp` is shared by every action run through this object, as RUNNER_TEMP is shared by the
    steps of one job (charon-ci's bootstrap reuses its environment there).
    """

    def __init__(self, runner_temp: Path, base_env: Mapping[str, str] | None = None) -> None:
        self.runner_temp = runner_temp
        self.base_env = dict(base_env or {})

    def run(
        self,
        action_dir: Path,
        with_inputs: Mapping[str, str] | None = None,
        *,
        env: Mapping[str, str | None] | None = None,
        github: Mapping[str, str] | None = None,
        docker_entrypoint: Sequence[str] | None = None,
        nested: Mapping[str, NestedAction] | None = None,
        timeout: float = 300,
    ) -> ActionResult:
        """`env` overrides the job's environment; a value of None removes that variable."""
        action_dir = action_dir.resolve()
        definition = yaml.safe_load((action_dir / "action.yml").read_text())
        unknown = set(definition) - KNOWN_ACTION_KEYS
        if unknown:
            raise HarnessError(f"action.yml has keys the harness does not know: {sorted(unknown)}")
        work = Path(tempfile.mkdtemp(prefix="job-", dir=self.runner_temp))
        job_env = {**self._runner_env(work), **self.base_env}
        for name, value in (env or {}).items():
            if value is None:
                job_env.pop(name, None)
            else:
                job_env[name] = value
        github_context = {
            "action_path": str(action_dir),
            "token": job_env.get("GITHUB_TOKEN", ""),
            "workspace": job_env.get("GITHUB_WORKSPACE", str(work)),
            "repository": job_env.get("GITHUB_REPOSITORY", ""),
            "event_name": job_env.get("GITHUB_EVENT_NAME", ""),
            "sha": job_env.get("GITHUB_SHA", ""),
            "ref": job_env.get("GITHUB_REF", ""),
            "api_url": job_env.get("GITHUB_API_URL", ""),
            "server_url": job_env.get("GITHUB_SERVER_URL", ""),
            **(github or {}),
        }
        context: dict[str, Any] = {
            "github": github_context,
            "runner": {"temp": str(self.runner_temp), "os": "Linux", "arch": "X64"},
            "env": job_env,
        }
        context["inputs"] = self._inputs(definition, with_inputs or {}, context)
        summary_file = work / "step_summary.md"
        summary_file.write_text("")
        job_env["GITHUB_STEP_SUMMARY"] = str(summary_file)
        runs = definition.get("runs") or {}
        using = runs.get("using")
        if using == "composite":
            return self._run_composite(definition, action_dir, context, job_env, work, nested or {}, timeout)
        if using == "docker":
            if docker_entrypoint is None:
                raise HarnessError("a docker action needs docker_entrypoint: the command its image runs")
            return self._run_docker(definition, context, job_env, work, docker_entrypoint, timeout)
        raise HarnessError(f"runs.using {using!r} is not modelled")

    # -- pieces ----------------------------------------------------------------------------------------

    def _runner_env(self, work: Path) -> dict[str, str]:
        workspace = work / "workspace"
        workspace.mkdir()
        home = work / "home"
        home.mkdir()
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "RUNNER_TEMP": str(self.runner_temp),
            "RUNNER_OS": "Linux",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
            # The bootstrap must find an interpreter that can build a venv; the test's own one can.
            "CHARON_CI_PYTHON_CANDIDATES": sys.executable,
        }

    @staticmethod
    def _inputs(definition: Mapping[str, Any], given: Mapping[str, str], context: dict[str, Any]) -> dict[str, str]:
        declared: Mapping[str, Any] = definition.get("inputs") or {}
        for name in given:
            if name not in declared:
                # The runner only warns; a test passing an undeclared input is a test bug.
                raise HarnessError(f"input {name!r} is not declared in action.yml")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            spec = spec or {}
            if name in given:
                values[name] = str(given[name])
            elif "default" in spec:
                values[name] = evaluate(scalar(spec["default"]), context)
            else:
                values[name] = ""
        return values

    def _run_composite(
        self,
        definition: Mapping[str, Any],
        action_dir: Path,
        context: dict[str, Any],
        job_env: dict[str, str],
        work: Path,
        nested: Mapping[str, NestedAction],
        timeout: float,
    ) -> ActionResult:
        steps_context: dict[str, Any] = {}
        context["steps"] = steps_context
        results: list[StepResult] = []
        env_written: dict[str, str] = {}
        path_added: list[str] = []
        exit_code = 0
        for index, step in enumerate(definition["runs"].get("steps") or []):
            unknown = set(step) - KNOWN_STEP_KEYS
            if unknown:
                raise HarnessError(f"step {index} uses keys the harness does not model: {sorted(unknown)}")
            if ("run" in step) == ("uses" in step):
                raise HarnessError(f"step {index} must have exactly one of run: and uses:")
            step_id = str(step.get("id") or f"__step{index}")
            context["env"] = {**job_env, **env_written}
            # Every step reached here follows successful ones (the run stops at the first failure), so the
            # implicit `success() &&` of an `if:` holds and only the written condition decides.
            if "if" in step and not truthy(evaluate_condition(step["if"], context)):
                steps_context[step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                results.append(StepResult(step_id, 0, "", "", {}, skipped=True))
                continue
            step_env = {key: evaluate(scalar(value), context) for key, value in (step.get("env") or {}).items()}
            if "uses" in step:
                result = self._run_nested(index, step_id, step, context, {**job_env, **env_written, **step_env},
                                          nested)  # fmt: skip
            else:
                result = self._run_step(index, step_id, step, context, job_env, env_written, step_env, action_dir,
                                        work, path_added, timeout)  # fmt: skip
            outcome = "success" if result.exit_code == 0 else "failure"
            steps_context[step_id] = {"outputs": result.outputs, "outcome": outcome, "conclusion": outcome}
            results.append(result)
            if result.exit_code != 0:
                exit_code = result.exit_code
                break
        outputs = {}
        if exit_code == 0:
            for name, spec in (definition.get("outputs") or {}).items():
                outputs[name] = evaluate(scalar((spec or {}).get("value", "")), context)
        summary = Path(job_env["GITHUB_STEP_SUMMARY"]).read_text()
        return ActionResult(outputs, results, summary, exit_code, env_written, path_added)

    @staticmethod
    def _run_nested(
        index: int,
        step_id: str,
        step: Mapping[str, Any],
        context: dict[str, Any],
        env: dict[str, str],
        nested: Mapping[str, NestedAction],
    ) -> StepResult:
        uses = str(step["uses"])
        name = uses.split("@", 1)[0]
        if name not in nested:
            raise HarnessError(
                f"step {index} uses {uses}: this harness cannot run another action; the test must pass a stand-in "
                f"for {name!r} (nested=) that checks its inputs and plays its outputs"
            )
        if "shell" in step or "working-directory" in step:
            raise HarnessError(f"step {index}: a uses: step takes no shell: or working-directory:")
        with_inputs = {key: evaluate(scalar(value), context) for key, value in (step.get("with") or {}).items()}
        call = NestedCall(uses, with_inputs, env)
        outputs = {key: str(value) for key, value in nested[name](call).items()}
        return StepResult(step_id, 0, "", "", outputs, call=call)

    @staticmethod
    def _run_step(
        index: int,
        step_id: str,
        step: Mapping[str, Any],
        context: dict[str, Any],
        job_env: dict[str, str],
        env_written: dict[str, str],
        step_env: dict[str, str],
        action_dir: Path,
        work: Path,
        path_added: list[str],
        timeout: float,
    ) -> StepResult:
        if step.get("shell") != "bash":
            raise HarnessError(f"step {index}: composite run steps must say `shell: bash`")
        if "with" in step:
            raise HarnessError(f"step {index}: a run: step takes no with:")
        step_dir = work / f"step{index}"
        step_dir.mkdir()
        files = {name: step_dir / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")}
        for path in files.values():
            path.write_text("")
        run_env = {
            **job_env,
            **env_written,
            **step_env,
            **{name: str(path) for name, path in files.items()},
            "GITHUB_ACTION_PATH": str(action_dir),
        }
        script = evaluate(str(step["run"]), context)
        script_file = step_dir / "script.sh"
        script_file.write_text(script)
        cwd = evaluate(str(step.get("working-directory", run_env["GITHUB_WORKSPACE"])), context)
        completed = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
            env=run_env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
        )
        outputs = parse_file_command(files["GITHUB_OUTPUT"].read_text())
        env_written.update(parse_file_command(files["GITHUB_ENV"].read_text()))
        path_added.extend(line for line in files["GITHUB_PATH"].read_text().splitlines() if line)
        return StepResult(step_id, completed.returncode, completed.stdout, completed.stderr, outputs)

    def _run_docker(
        self,
        definition: Mapping[str, Any],
        context: dict[str, Any],
        job_env: dict[str, str],
        work: Path,
        entrypoint: Sequence[str],
        timeout: float,
    ) -> ActionResult:
        runs = definition["runs"]
        for key in set(runs) - {"using", "image", "env", "args", "entrypoint"}:
            raise HarnessError(f"runs.{key} is not modelled for docker actions")
        files = {name: work / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")}
        for path in files.values():
            path.write_text("")
        # The runner gives a container action every input as INPUT_<NAME>, upper-cased, hyphens kept.
        input_env = {f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in context["inputs"].items()}
        action_env = {key: evaluate(scalar(value), context) for key, value in (runs.get("env") or {}).items()}
        args = [evaluate(scalar(arg), context) for arg in runs.get("args") or []]
        run_env = {**job_env, **input_env, **action_env, **{name: str(path) for name, path in files.items()}}
        completed = subprocess.run(
            [*entrypoint, *args], env=run_env, cwd=run_env["GITHUB_WORKSPACE"], capture_output=True, text=True,
            timeout=timeout, check=False,
        )
        outputs_written = parse_file_command(files["GITHUB_OUTPUT"].read_text())
        step = StepResult("docker", completed.returncode, completed.stdout, completed.stderr, outputs_written)
        declared = definition.get("outputs") or {}
        outputs = {name: outputs_written.get(name, "") for name in declared} if completed.returncode == 0 else {}
        summary = Path(job_env["GITHUB_STEP_SUMMARY"]).read_text()
        return ActionResult(outputs, [step], summary, completed.returncode)


Value = str | bool | float | None


def scalar(value: Any) -> str:
    """A YAML scalar as the runner reads it into a string (`false` is "false", not Python's "False")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def as_text(value: Value) -> str:
    """An expression's value interpolated into a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return value


def truthy(value: Value) -> bool:
    if isinstance(value, float):
        return not math.isnan(value) and value != 0
    return bool(value)


def as_number(value: Value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    text = value.strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return float("nan")


def loosely_equal(left: Value, right: Value) -> bool:
    """The runner's `==`: strings compare case-insensitively; values of different types compare as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right):
        return left == right
    return as_number(left) == as_number(right)


class _Parser:
    """expression := or; or := and ('||' and)*; and := equality ('&&' equality)*;
    equality := unary (('==' | '!=') unary)?; unary := '!' unary | '(' or ')' | literal | path"""

    def __init__(self, source: str, context: Mapping[str, Any]) -> None:
        self.source = source
        self.context = context
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(source):
            match = TOKEN_RE.match(source, position)
            if not match or match.end() == position:
                if source[position:].strip():
                    raise HarnessError(f"expression not modelled: ${{{{ {source.strip()} }}}}")
                break
            kind = match.lastgroup or ""
            text = match.group(kind)
            if kind == "path" and source[match.end() :].lstrip().startswith("("):
                raise HarnessError(f"function not modelled in ${{{{ {source.strip()} }}}}: {text}()")
            if kind == "path" and source[match.end() :].startswith("["):
                raise HarnessError(f"index syntax not modelled in ${{{{ {source.strip()} }}}}")
            self.tokens.append((kind, text))
            position = match.end()
        self.index = 0

    def parse(self) -> Value:
        if not self.tokens:
            raise HarnessError("empty expression")
        value = self._or()
        if self.index != len(self.tokens):
            raise HarnessError(f"expression not modelled: ${{{{ {self.source.strip()} }}}}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def _or(self) -> Value:
        value = self._and()
        while self._peek() == "||":
            self.index += 1
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Value:
        value = self._equality()
        while self._peek() == "&&":
            self.index += 1
            right = self._equality()
            value = right if truthy(value) else value
        return value

    def _equality(self) -> Value:
        value = self._unary()
        operator = self._peek()
        if operator in {"==", "!="}:
            self.index += 1
            equal = loosely_equal(value, self._unary())
            return equal if operator == "==" else not equal
        return value

    def _unary(self) -> Value:
        if self.index >= len(self.tokens):
            raise HarnessError(f"expression ends early: ${{{{ {self.source.strip()} }}}}")
        kind, text = self.tokens[self.index]
        self.index += 1
        if text == "!" and kind == "op":
            return not truthy(self._unary())
        if text == "(" and kind == "op":
            value = self._or()
            if self._peek() != ")":
                raise HarnessError(f"unbalanced parentheses: ${{{{ {self.source.strip()} }}}}")
            self.index += 1
            return value
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text)
        if kind == "path":
            return self._lookup(text)
        raise HarnessError(f"expression not modelled: ${{{{ {self.source.strip()} }}}}")

    def _lookup(self, expression: str) -> Value:
        if expression in {"true", "false"}:
            return expression == "true"
        if expression == "null":
            return None
        parts = expression.split(".")
        if parts[0] not in self.context:
            raise HarnessError(f"unknown context in ${{{{ {expression} }}}}")
        value: Any = self.context
        for depth, part in enumerate(parts):
            if not isinstance(value, Mapping):
                raise HarnessError(f"${{{{ {expression} }}}}: {'.'.join(parts[:depth])} is not an object")
            if part not in value:
                # On the runner an unset env variable or step output reads as null (empty); a step id that no
                # step has, an undeclared input or an unmodelled github/runner property is a mistake here.
                missing_output = parts[0] == "steps" and depth == 3 and parts[2] == "outputs"
                if parts[0] == "env" or missing_output:
                    return None
                raise HarnessError(f"${{{{ {expression} }}}}: {part!r} is not known")
            value = value[part]
        if isinstance(value, Mapping):
            raise HarnessError(f"${{{{ {expression} }}}} is an object, not a value")
        return str(value)


def evaluate_expression(expression: str, context: Mapping[str, Any]) -> Value:
    return _Parser(expression, context).parse()


def evaluate_condition(condition: Any, context: Mapping[str, Any]) -> Value:
    """A step's `if:`: an expression with or without its `${{ }}`."""
    if isinstance(condition, bool):
        return condition
    text = str(condition).strip()
    whole = EXPRESSION_RE.fullmatch(text)
    return evaluate_expression(whole.group(1) if whole else text, context)


def evaluate(text: str, context: Mapping[str, Any]) -> str:
    """Substitutes every `${{ expression }}` in text with its value as a string."""
    return EXPRESSION_RE.sub(lambda match: as_text(evaluate_expression(match.group(1), context)), text)
