"""Runners without a suitable Python, for the composite actions' setup-python fallback (lib/bootstrap-steps.yml).

- `runner_path(tmp, python="3.10" | None)`: a PATH that holds the shell tools a composite step uses and either
  no Python at all or only a `python3` that plays Ubuntu 22.04's 3.10. Debian (this project's CI) packages no
  Python 3.10 and the package indexes offer no interpreters, so the 3.10 is played: a script run by the real
  interpreter that reports itself as 3.10.12 to `--version` and to `-c` code, and logs every call.
- `SetupPythonStandIn`: plays actions/setup-python, which the harness cannot run (a node24 action that
  downloads Python from github.com). It checks the `with:` it is given, accepts only
  `update-environment: false` (so it has no environment changes to play), "installs" a real interpreter of
  the requested minor version into a tool-cache layout under RUNNER_TEMP and returns setup-python's outputs.
  With `needs_library_path=True` that interpreter starts only with its tool-cache `lib/` on LD_LIBRARY_PATH,
  as a tool-cache Python does outside /opt/hostedtoolcache (self-hosted runners, container jobs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.composite import HarnessError, NestedCall

# What the composite steps and lib/bootstrap.sh run by name.
SHELL_TOOLS = ("bash", "cat", "cut", "sha256sum", "dirname", "mkdir", "rm", "ln", "chmod", "head", "env")
PINNED_RE = re.compile(r"^actions/setup-python@[0-9a-f]{40}$")

FAKE_PYTHON_3_10 = '''#!{real} -I
"""Plays Ubuntu 22.04's /usr/bin/python3 (3.10.12): answers --version and runs -c code as 3.10 would report
itself; anything else is refused. Every call is logged (JSON argv, one a line)."""
import sys

with open({log!r}, "a", encoding="utf-8") as log:
    log.write(__import__("json").dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args in (["--version"], ["-V"]):
    print("Python 3.10.12")
    raise SystemExit(0)
if len(args) >= 2 and args[0] == "-c":
    sys.version_info = (3, 10, 12, "final", 0)
    sys.version = "3.10.12 (main, Nov  6 2024, 20:22:13) [GCC 11.4.0]"
    sys.argv = ["-c", *args[2:]]
    exec(compile(args[1], "<string>", "exec"), {{"__name__": "__main__"}})
    raise SystemExit(0)
sys.stderr.write("fake python3 3.10: only --version and -c are played\\n")
raise SystemExit(2)
'''

NEEDS_LIBRARY_PATH = """#!{bash}
# Plays a tool-cache Python outside /opt/hostedtoolcache: its rpath misses, so it starts only with its lib/
# on LD_LIBRARY_PATH.
case ":${{LD_LIBRARY_PATH:-}}:" in
  *:{lib}:*) exec {real} "$@" ;;
esac
echo "{real_name}: error while loading shared libraries: libpython{minor}.so.1.0: cannot open shared object \
file: No such file or directory" >&2
exit 127
"""


@dataclass
class FakePath:
    path: str
    log: Path | None  # the fake python3's call log, when there is one

    def calls(self) -> list[list[str]]:
        if self.log is None or not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def runner_path(folder: Path, python: str | None) -> FakePath:
    """A PATH of one folder: the shell tools and, with python="3.10", a python3 that reports 3.10.12."""
    folder.mkdir(parents=True)
    for tool in SHELL_TOOLS:
        found = shutil.which(tool)
        if found is None:
            raise HarnessError(f"{tool} is not on this machine's PATH")
        (folder / tool).symlink_to(found)
    log = None
    if python is not None:
        if python != "3.10":
            raise HarnessError("only a Python 3.10 is played")
        log = folder.parent / "python3-calls.jsonl"
        fake = folder / "python3"
        fake.write_text(FAKE_PYTHON_3_10.format(real=sys.executable, log=str(log)))
        fake.chmod(0o755)
    return FakePath(str(folder), log)


def real_python(minor: str) -> str:
    """A real interpreter of this minor version on this machine (the tests' own one when it matches)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == minor:
        return sys.executable
    for folder in ("/usr/bin", "/usr/local/bin"):
        candidate = Path(folder) / f"python{minor}"
        if candidate.exists():
            return str(candidate)
    raise HarnessError(f"no Python {minor} on this machine to play actions/setup-python's install with")


@dataclass
class SetupPythonStandIn:
    needs_library_path: bool = False
    calls: list[NestedCall] = field(default_factory=list)

    def __call__(self, call: NestedCall) -> dict[str, str]:
        self.calls.append(call)
        if not PINNED_RE.match(call.uses):
            raise HarnessError(f"{call.uses}: actions/setup-python must be pinned by a 40-hex commit sha")
        if set(call.with_inputs) - {"python-version", "update-environment"}:
            raise HarnessError(f"inputs the stand-in does not play: {sorted(call.with_inputs)}")
        if call.with_inputs.get("update-environment") != "false":
            raise HarnessError("update-environment must be false: the job's PATH and variables stay untouched")
        minor = call.with_inputs.get("python-version", "")
        if not re.fullmatch(r"3\.\d+", minor):
            raise HarnessError(f"python-version {minor!r}: the stand-in plays an X.Y version only")
        real = real_python(minor)
        version = subprocess.run([real, "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        tool_cache = Path(call.env.get("RUNNER_TOOL_CACHE") or Path(call.env["RUNNER_TEMP"]) / "toolcache")
        prefix = tool_cache / "Python" / version / "x64"
        python = prefix / "bin" / "python"
        if not python.exists():
            python.parent.mkdir(parents=True)
            (prefix / "lib").mkdir()
            if self.needs_library_path:
                script = NEEDS_LIBRARY_PATH.format(bash=shutil.which("bash"), lib=prefix / "lib", real=real,
                                                   real_name=python, minor=minor)  # fmt: skip
                python.write_text(script)
                python.chmod(0o755)
            else:
                python.symlink_to(real)
        return {"python-version": version, "python-path": str(python)}


def job_env(path: FakePath) -> dict[str, str | None]:
    """ActionRunner.run's env for such a runner: this PATH, and bootstrap.sh's own interpreter search (the
    harness otherwise points it at the tests' interpreter)."""
    return {"PATH": path.path, "CHARON_CI_PYTHON_CANDIDATES": None}
