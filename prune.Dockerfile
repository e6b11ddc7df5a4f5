# The charon-ci prune container action (action-prune/action.yml: `image: ../prune.Dockerfile`).
# It lives at the repository root because the runner builds with the Dockerfile's own folder as the build
# context, and the image needs lib/ and requirements/ (evidence: action-prune/PACKAGING.md).
#
# BASE_IMAGE is the official python:3.11-slim-bookworm image pinned by its multi-platform index digest.
# CI builds the same file against a local Debian bookworm image (.ci/build-prune-image), which it passes
# here; any base with python3 and the venv module works.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
FROM ${BASE_IMAGE}

# Only the hash-locked runtime requirements come from the package index; wheels only, so nothing is built.
COPY requirements/runtime.txt /opt/charon-ci/requirements.txt
RUN python3 -m venv /opt/charon-ci/venv \
 && /opt/charon-ci/venv/bin/python -m pip install --no-input --no-cache-dir --disable-pip-version-check \
      --require-hashes --no-deps --only-binary=:all: -r /opt/charon-ci/requirements.txt

# charon_ci is used straight from lib/, as the composite actions' bootstrap does (lib/bootstrap.sh): a .pth
# file puts it on the venv's path and a small launcher is the `charon-ci` command. Building a wheel would
# need a build backend that the lock does not pin. Everything is root-owned and compiled ahead, so the
# non-root user can neither change the code nor needs to write bytecode.
COPY lib/charon_ci /opt/charon-ci/lib/charon_ci
COPY docker/prune-entrypoint.sh /opt/charon-ci/bin/prune-entrypoint
RUN site=$(/opt/charon-ci/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && echo /opt/charon-ci/lib > "$site/charon_ci_lib.pth" \
 && printf '%s\n' '#!/opt/charon-ci/venv/bin/python' 'import sys' '' 'from charon_ci.cli import main' '' \
      'sys.exit(main())' > /opt/charon-ci/venv/bin/charon-ci \
 && chmod 0755 /opt/charon-ci/venv/bin/charon-ci /opt/charon-ci/bin/prune-entrypoint \
 && /opt/charon-ci/venv/bin/python -m compileall -q /opt/charon-ci/lib \
 && /opt/charon-ci/venv/bin/python -c 'import charon_ci.cli' \
 && groupadd --gid 1001 charon \
 && useradd --uid 1001 --gid 1001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin charon

ENV PATH=/opt/charon-ci/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# uid 1001 is the runner's user on GitHub-hosted runners, so the step can append to the GITHUB_OUTPUT
# file the runner mounts in (it is created mode 0644). The entrypoint stops early where that is not so.
USER 1001:1001
ENTRYPOINT ["/opt/charon-ci/bin/prune-entrypoint"]
