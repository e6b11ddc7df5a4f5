#!/usr/bin/env bash
# Prepares the Python environment every charon-ci composite action runs in, or reuses the one an earlier
# charon-ci step of this job prepared. Writes `python=<interpreter>` and `command=<charon-ci launcher>` to
# GITHUB_OUTPUT (or prints them).
#
# The environment lives under RUNNER_TEMP (cleaned by the runner after each job) in a folder named by a
# hash of the lock file, the interpreter and this checkout, so two refs of charon-ci never share one.
# It holds the hash-locked runtime requirements and a .pth file that puts this checkout's lib/ on the
# path: the package is used straight from the action's own checkout, nothing is built.
#
# The interpreter is the first Python >= 3.11 among python3.13, python3.12, python3.11 and python3 on PATH.
# Where there is none (ubuntu-22.04 ships 3.10; self-hosted runners and container jobs may have no Python),
# every composite action falls back on the three steps of lib/bootstrap-steps.yml:
#   1. `bootstrap.sh --or-ask-for-python` writes `needs-python=true` instead of failing;
#   2. actions/setup-python with `update-environment: false` installs a Python into the runner's tool
#      cache and changes nothing in the job's environment;
#   3. `bootstrap.sh` with CHARON_CI_PYTHON set to that interpreter makes the environment from it, and
#      links it under step 1's name so that later charon-ci steps of the job reuse it without steps 2-3.
# This script never writes GITHUB_ENV or GITHUB_PATH: the job's own `python` is never changed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lock="$root/requirements/runtime.txt"
base="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/charon-ci"

fail() {
  printf '::error title=charon-ci bootstrap::%s\n' "$1"
  exit 1
}

emit() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf '%s\n' "$1" >>"$GITHUB_OUTPUT"
  else
    printf '%s\n' "$1"
  fi
}

ask_for_python=false
case "${1:-}" in
  "") ;;
  --or-ask-for-python) ask_for_python=true ;;
  *) fail "unknown argument (accepted: --or-ask-for-python)" ;;
esac

# The key names the interpreters on PATH without running them, so reuse costs no interpreter start.
candidates=${CHARON_CI_PYTHON_CANDIDATES:-python3.13 python3.12 python3.11 python3}
on_path=$(for candidate in $candidates; do command -v "$candidate" || true; done)
path_key=$({ cat "$lock"; printf '%s\n%s\n' "$on_path" "$root"; } | sha256sum | cut -c1-16)
if [ -n "${CHARON_CI_PYTHON:-}" ]; then
  found=$CHARON_CI_PYTHON
  key=$({ cat "$lock"; printf 'setup-python\n%s\n%s\n' "$found" "$root"; } | sha256sum | cut -c1-16)
else
  found=$on_path
  key=$path_key
fi
venv="$base/venv-$key"

# The ready marker holds the outputs, written last: a half-made environment (a cancelled step) has none
# and is made again rather than used.
outputs=""
if [ -f "$venv/.charon-ci-ready" ]; then
  IFS= read -r -d '' outputs <"$venv/.charon-ci-ready" || true
fi

if [ -z "$outputs" ]; then
  # Steps of one job run one at a time, so no lock is needed.
  runs_3_11() { "$@" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
  python_bin=""
  library_path=""
  while IFS= read -r candidate; do
    if [ -n "$candidate" ] && runs_3_11 "$candidate"; then
      python_bin=$candidate
      break
    fi
  done <<<"$found"

  if [ -n "${CHARON_CI_PYTHON:-}" ] && [ -z "$python_bin" ]; then
    # A tool-cache Python is linked against its own lib/libpython3.X.so through an absolute rpath into the
    # hosted runners' /opt/hostedtoolcache. Anywhere else (a self-hosted runner's _work/_tool, /__t in a
    # container job) it starts only with that lib/ on LD_LIBRARY_PATH, which actions/setup-python exports
    # only when it may change the job's environment: add it for charon-ci's own processes.
    lib_dir=$(dirname "$(dirname "$CHARON_CI_PYTHON")")/lib
    if [ -d "$lib_dir" ] && LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" runs_3_11 "$CHARON_CI_PYTHON"; then
      python_bin=$CHARON_CI_PYTHON
      library_path=$lib_dir
      export LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    else
      # The loader's or Python's first complaint, made safe for a workflow command (one line, % escaped).
      reason=$("$CHARON_CI_PYTHON" -c 'import sys; print(sys.version.split()[0])' 2>&1 | head -n 1 || true)
      reason=${reason//%/%25}
      fail "the Python actions/setup-python provided does not run here or is older than 3.11 (${reason:-no output}). In a container job, use an image with python3 3.11 or newer on PATH."
    fi
  fi

  if [ -z "$python_bin" ]; then
    if [ "$ask_for_python" = true ]; then
      # Not an error: the action's next step (actions/setup-python, update-environment: false) provides one.
      printf '%s\n' "charon-ci: no Python 3.11 or newer on PATH; actions/setup-python will install one for charon-ci only (the job's python is not changed)."
      emit "needs-python=true"
      exit 0
    fi
    fail "charon-ci needs Python 3.11 or newer on PATH (python3.13, python3.12, python3.11 or python3)"
  fi

  rm -rf "$venv"
  mkdir -p "$base"
  "$python_bin" -m venv --without-pip "$venv"
  # pip runs from the host interpreter and installs into the new venv (pip >= 22.3 has --python); a venv
  # without pip is ten times faster to create. Hosts with no or an older pip get one inside the venv instead.
  pip_version=$("$python_bin" -m pip --version 2>/dev/null || true) # "pip 23.0.1 from ... (python 3.11)"
  if [[ "$pip_version" =~ ^pip\ ([0-9]+)\.([0-9]+) ]] &&
    { [ "${BASH_REMATCH[1]}" -gt 22 ] || { [ "${BASH_REMATCH[1]}" -eq 22 ] && [ "${BASH_REMATCH[2]}" -ge 3 ]; }; }; then
    pip=("$python_bin" -m pip --python "$venv/bin/python")
  else
    "$venv/bin/python" -m ensurepip --upgrade >/dev/null ||
      fail "$python_bin has neither pip 22.3 or newer nor the ensurepip module (Debian and Ubuntu: apt-get install python3-venv)"
    pip=("$venv/bin/python" -m pip)
  fi
  "${pip[@]}" install --quiet --disable-pip-version-check --no-input --require-hashes --no-deps \
    --only-binary=:all: -r "$lock" || fail "installing the locked requirements from $lock failed"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n' "$root/lib" >"$site/charon_ci_checkout.pth"
  "$venv/bin/python" -c 'import charon_ci.cli' || fail "charon_ci does not import from $root/lib"
  # A launcher like pip's console scripts: it starts faster than `python -m charon_ci` (no runpy).
  launcher='import sys\n\nfrom charon_ci.cli import main\n\nsys.exit(main())\n'
  if [ -z "$library_path" ]; then
    printf "#!%s\n$launcher" "$venv/bin/python" >"$venv/bin/charon-ci"
    python_out="$venv/bin/python"
  else
    # bash, not sh: dash drops environment variables with a hyphen in the name (INPUT_MAIN-BRANCH...).
    bash_bin=$(command -v bash)
    printf "$launcher" >"$venv/bin/charon-ci.py"
    for wrapper in python-charon-ci charon-ci; do
      target=("$venv/bin/python")
      [ "$wrapper" = charon-ci ] && target+=("$venv/bin/charon-ci.py")
      printf '#!%s\nexport LD_LIBRARY_PATH=%q"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\nexec %s "$@"\n' \
        "$bash_bin" "$library_path" "$(printf '%q ' "${target[@]}")" >"$venv/bin/$wrapper"
      chmod 0755 "$venv/bin/$wrapper"
    done
    python_out="$venv/bin/python-charon-ci"
  fi
  chmod 0755 "$venv/bin/charon-ci"
  outputs=$(printf 'python=%s\ncommand=%s' "$python_out" "$venv/bin/charon-ci")
  printf '%s\n' "$outputs" >"$venv/.charon-ci-ready"
  if [ -n "${CHARON_CI_PYTHON:-}" ] && [ "$key" != "$path_key" ]; then
    # Later charon-ci steps of this job see the same PATH: step 1 finds this environment under its own
    # name and needs neither actions/setup-python nor this step again.
    rm -rf "$base/venv-$path_key"
    ln -s "venv-$key" "$base/venv-$path_key"
  fi
fi

while IFS= read -r line; do
  [ -z "$line" ] || emit "$line"
done <<<"$outputs"
