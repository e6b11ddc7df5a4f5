#!/usr/bin/env bash
# Prepares the Python environment every charon-ci composite action runs in, or reuses the one an earlier
# charon-ci step of this job prepared. Writes `python=<interpreter>` and `command=<charon-ci launcher>` to
# GITHUB_OUTPUT (or prints them).
#
# The environment lives under RUNNER_TEMP (cleaned by the runner after each job) in a folder named by a
# hash of the lock file, the interpreter and this checkout, so two refs of charon-ci never share one.
# It holds the hash-locked runtime requirements and a .pth file that puts this checkout's lib/ on the
# path: the package is used straight from the action's own checkout, nothing is built.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lock="$root/requirements/runtime.txt"
base="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/charon-ci"

fail() {
  printf '::error title=charon-ci bootstrap::%s\n' "$1"
  exit 1
}

candidates=${CHARON_CI_PYTHON_CANDIDATES:-python3.13 python3.12 python3.11 python3}
# The key names the interpreters on PATH without running them, so reuse costs no interpreter start.
found=$(for candidate in $candidates; do command -v "$candidate" || true; done)
key=$({ cat "$lock"; printf '%s\n%s\n' "$found" "$root"; } | sha256sum | cut -c1-16)
venv="$base/venv-$key"

if [ ! -f "$venv/.charon-ci-ready" ]; then
  # Steps of one job run one at a time, so no lock is needed; the marker is written last, so a half-made
  # environment (a cancelled step) is made again rather than used.
  python_bin=""
  for candidate in $found; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python_bin=$candidate
      break
    fi
  done
  [ -n "$python_bin" ] || fail "charon-ci needs Python 3.11 or newer on PATH (add actions/setup-python before this step)"
  rm -rf "$venv"
  mkdir -p "$base"
  "$python_bin" -m venv --without-pip "$venv"
  # pip runs from the host interpreter and installs into the new venv (pip >= 22.3); a venv without pip
  # is ten times faster to create. Hosts with no pip get one inside the venv instead.
  if "$python_bin" -m pip --version >/dev/null 2>&1; then
    pip=("$python_bin" -m pip --python "$venv/bin/python")
  else
    "$venv/bin/python" -m ensurepip --upgrade >/dev/null
    pip=("$venv/bin/python" -m pip)
  fi
  "${pip[@]}" install --quiet --disable-pip-version-check --no-input --require-hashes --no-deps \
    --only-binary=:all: -r "$lock" || fail "installing the locked requirements from $lock failed"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n' "$root/lib" >"$site/charon_ci_checkout.pth"
  "$venv/bin/python" -c 'import charon_ci.cli' || fail "charon_ci does not import from $root/lib"
  # A launcher like pip's console scripts: it starts faster than `python -m charon_ci` (no runpy).
  printf '#!%s\nimport sys\n\nfrom charon_ci.cli import main\n\nsys.exit(main())\n' "$venv/bin/python" >"$venv/bin/charon-ci"
  chmod 0755 "$venv/bin/charon-ci"
  touch "$venv/.charon-ci-ready"
fi

outputs=$(printf 'python=%s\ncommand=%s\n' "$venv/bin/python" "$venv/bin/charon-ci")
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  printf '%s\n' "$outputs" >>"$GITHUB_OUTPUT"
else
  printf '%s\n' "$outputs"
fi
