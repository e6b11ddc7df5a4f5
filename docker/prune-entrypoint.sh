#!/bin/bash
# Entrypoint of the charon-ci prune container action: checks that this container's non-root user can write
# the runner's file-command files, then hands over to `charon-ci prune`.
#
# The runner creates GITHUB_OUTPUT and GITHUB_STEP_SUMMARY as its own user with mode 0644 and mounts them
# into the container, so only a container user with the runner's uid can append to them. The image runs
# as uid 1001, the uid of GitHub-hosted runners and of the runner's own container image. On a runner with
# another uid, stop here, before anything is deleted, rather than prune and then fail to report it.
# No path or other runner-supplied text is printed: only numbers and fixed words reach the log.
# bash, not sh: Debian's sh (dash) drops environment variables whose names hold a hyphen, and the runner
# passes inputs as INPUT_DRY-RUN, INPUT_MIN-AGE...; bash hands them on to charon-ci.
set -eu

require_writable() { # $1: variable name, $2: its value
  if [ -n "$2" ] && [ -e "$2" ] && [ ! -w "$2" ]; then
    owner=$(stat -c %u -- "$2" || echo unknown)
    case "$owner" in '' | *[!0-9]*) owner=unknown ;; esac
    printf '::error title=charon-ci prune container::%s is not writable by this container (uid %s); the runner created it as uid %s. This action runs as uid 1001, the user of GitHub-hosted runners: run the self-hosted runner as uid 1001, or call charon-ci prune from a run step instead.\n' \
      "$1" "$(id -u)" "$owner"
    exit 1
  fi
}

require_writable GITHUB_OUTPUT "${GITHUB_OUTPUT:-}"
require_writable GITHUB_STEP_SUMMARY "${GITHUB_STEP_SUMMARY:-}"

exec charon-ci prune "$@"
