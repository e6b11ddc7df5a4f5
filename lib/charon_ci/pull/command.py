"""`charon-ci pull-image`: the exact image the build made, from the registry or its artifact, proven by its
revision label and tagged `local-tag` (action-pull-image).

Reads the inputs once into `PullSettings`, works out the target from the event with action-tag's code
(`charon_ci.pull.target`), gets and proves the image (`charon_ci.pull.sources`) and writes every output in one
go, plus a job summary line saying where the image came from and why.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from charon_ci import gha, oci
from charon_ci.pull import settings as parse
from charon_ci.pull.settings import PullSettings

__all__ = ["HELP", "main", "parse_inputs", "run"]

HELP = """usage: charon-ci pull-image

Pulls the image the build made (input image, or image-name with the tag action-tag computes for this event),
falling back to the build's artifact, proves its org.opencontainers.image.revision label and tags it local-tag.
Reads INPUT_IMAGE, INPUT_IMAGE-NAME, INPUT_EXPECTED-DIGEST, INPUT_EXPECTED-REVISION, INPUT_ON-MISMATCH,
INPUT_LOCAL-TAG, INPUT_REGISTRY-TIMEOUT, INPUT_REGISTRY-USERNAME, INPUT_REGISTRY-PASSWORD, INPUT_GITHUB-TOKEN,
INPUT_RUN-ID, INPUT_ARTIFACT-NAME, INPUT_ARTIFACT-FILE, INPUT_MAX-ARTIFACT-SIZE, INPUT_ALLOWED-CONCLUSIONS,
INPUT_MAIN-BRANCH, INPUT_DEV-BRANCH, INPUT_NIGHTLY, the GITHUB_* event variables, RUNNER_TEMP and DOCKER_HOST;
writes outputs to GITHUB_OUTPUT, or prints them when it is not set.
"""

OUTPUT_NAMES = ("source", "image", "image-id", "digest", "revision", "local-tag", "attempts", "seconds")
_ARTIFACT_NAME_FORBIDDEN = frozenset('"<>|:\\/\r\n\0')
_MAX_TEXT = 255


def parse_inputs(env: Mapping[str, str]) -> PullSettings:
    reader = gha.Inputs(env)
    # Mask first: nothing below may print a secret before the runner knows to hide it.
    password = reader.text("registry-password")
    token = reader.text("github-token") or env.get("GITHUB_TOKEN", "").strip()
    gha.set_secret(password)
    gha.set_secret(token)

    image_text, name_text = reader.text("image"), reader.text("image-name")
    if bool(image_text) == bool(name_text):
        raise gha.InputError(
            "image",
            "exactly one of image (name:tag or name@sha256:...) and image-name (the tag is then computed as "
            "action-tag computes it)",
            image_text or None,
        )
    image = parse.parse_image(image_text, "image") if image_text else None
    image_name = parse.parse_image_name(name_text, "image-name") if name_text else None

    digest_text = reader.text("expected-digest")
    if digest_text and not oci.is_digest(digest_text):
        raise gha.InputError("expected-digest", "a digest, sha256:<64 lowercase hex>", digest_text)
    revision_text = reader.text("expected-revision")
    revision = parse.parse_revision(revision_text, "expected-revision") if revision_text else None
    on_mismatch = reader.text("on-mismatch", "fail")
    if on_mismatch not in ("fail", "warn"):
        raise gha.InputError("on-mismatch", "fail or warn", on_mismatch)
    local_text = reader.text("local-tag")
    local_tag = parse.parse_local_tag(local_text) if local_text else None

    timeout_text = reader.text("registry-timeout")
    timeout = parse.parse_timeout(timeout_text, "registry-timeout") if timeout_text else parse.DEFAULT_REGISTRY_TIMEOUT
    username = reader.text("registry-username")
    if username and not password:
        raise gha.InputError("registry-password", "a password or token when registry-username is given")
    _check_text("registry-username", username)

    run_text = reader.text("run-id")
    if run_text and not (run_text.isascii() and run_text.isdigit() and 0 < int(run_text) < 2**63):
        raise gha.InputError("run-id", "a workflow run id (a positive whole number)", run_text)
    artifact_name = reader.text("artifact-name") or None
    if artifact_name is not None and (
        len(artifact_name) > _MAX_TEXT or _ARTIFACT_NAME_FORBIDDEN.intersection(artifact_name)
    ):
        raise gha.InputError(
            "artifact-name", 'an artifact name or glob (no " < > | : \\ / or line breaks, at most 255 characters)',
            artifact_name,
        )  # fmt: skip
    artifact_file = reader.text("artifact-file") or None
    _check_text("artifact-file", artifact_file or "")
    size_text = reader.text("max-artifact-size")
    max_size = parse.parse_size(size_text, "max-artifact-size") if size_text else parse.DEFAULT_MAX_ARTIFACT_SIZE

    conclusions = frozenset(
        word.strip() for line in reader.lines("allowed-conclusions") for word in line.split(",") if word.strip()
    )
    unknown = sorted(conclusions - parse.RUN_CONCLUSIONS)
    if unknown:
        raise gha.InputError(
            "allowed-conclusions", "workflow run conclusions: " + ", ".join(sorted(parse.RUN_CONCLUSIONS)), unknown[0]
        )
    main_branch = reader.text("main-branch", "main")
    dev_branch = reader.text("dev-branch", "development")
    if dev_branch == main_branch:
        raise gha.InputError("dev-branch", "a branch name other than main-branch", dev_branch)
    temp = env.get("RUNNER_TEMP", "").strip() or os.environ.get("TMPDIR", "").strip() or "/tmp"  # noqa: S108
    return PullSettings(
        image=image,
        image_name=image_name,
        expected_digest=digest_text or None,
        expected_revision=revision,
        on_mismatch="warn" if on_mismatch == "warn" else "fail",
        local_tag=local_tag,
        registry_timeout=timeout,
        registry_username=username,
        registry_password=password,
        github_token=token,
        run_id=int(run_text) if run_text else None,
        artifact_name=artifact_name,
        artifact_file=artifact_file,
        max_artifact_size=max_size,
        allowed_conclusions=conclusions or parse.DEFAULT_ALLOWED_CONCLUSIONS,
        main_branch=main_branch,
        dev_branch=dev_branch,
        nightly=reader.boolean("nightly", False),
        docker_host=env.get("DOCKER_HOST", "").strip() or "unix:///var/run/docker.sock",
        runner_temp=Path(temp),
        actor=env.get("GITHUB_ACTOR", "").strip(),
    )


def _check_text(name: str, value: str) -> None:
    if len(value) > _MAX_TEXT or any(ch in value for ch in "\r\n\0"):
        raise gha.InputError(name, "one line of at most 255 characters", value)


def main(env: Mapping[str, str]) -> int:
    started = time.monotonic()
    settings = parse_inputs(env)
    from charon_ci.pull import sources, target
    from charon_ci.pull.engine import Engine

    attempts = sources.Attempts()
    goal = target.resolve(settings, env)
    if goal.upstream_note:
        gha.info(f"workflow_run: {goal.upstream_note}")
    gha.info(f"image: {goal.image}; expected revision {goal.expected_revision} ({goal.revision_origin})")
    engine = Engine.connect(env)
    try:
        try:
            obtained = sources.obtain(settings, goal, engine, env, attempts)
        except gha.ActionFailure as failure:
            _summary(env, f"**action-pull-image** failed for {_md(str(goal.image))}: {_md(failure.message)}")
            raise
        if settings.local_tag:
            engine.tag(obtained.image_id, settings.local_tag)
    finally:
        engine.close()
    seconds = time.monotonic() - started
    values = {
        "source": obtained.source,
        "image": obtained.reference,
        "image-id": obtained.image_id,
        "digest": obtained.digest or "",
        "revision": obtained.revision or "",
        "local-tag": settings.local_tag or "",
        "attempts": str(attempts.total),
        "seconds": f"{seconds:.1f}",
    }
    proof = {"match": "proven", "mismatch": "MISMATCHED", "missing": "MISSING"}[obtained.proof.status]
    tagged = f", tagged {_md(settings.local_tag)}" if settings.local_tag else ""
    line = (
        f"**action-pull-image**: {_md(obtained.reference)} from the **{obtained.source}** "
        f"({_md(obtained.reason)}) in {seconds:.1f} s, {attempts.total} attempt(s); revision {proof} against "
        f"{obtained.proof.expected[:12]} ({_md(goal.revision_origin)}){tagged}."
        + (f" {_md(obtained.note)}." if obtained.note else "")
    )
    gha.info(f"{obtained.source}: {obtained.reference} ({obtained.image_id}), revision {obtained.revision or 'none'}")
    _summary(env, line)
    return _write_outputs(env, values)


def _write_outputs(env: Mapping[str, str], values: Mapping[str, str]) -> int:
    if not env.get("GITHUB_OUTPUT", "").strip():
        import json

        sys.stdout.write(json.dumps(dict(values), indent=2, ensure_ascii=True) + "\n")
        return 0
    gha.write_outputs({name: values[name] for name in OUTPUT_NAMES}, env)
    return 0


def _md(text: str) -> str:
    """Untrusted text (registry and engine messages, names) made inert in Markdown: one line, no markup."""
    flat = " ".join(text.split())[:600]
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", flat)


def _summary(env: Mapping[str, str], line: str) -> None:
    try:
        gha.append_summary(line + "\n", env)
    except OSError:
        gha.warning("The job summary could not be written.", title="action-pull-image")


def run(argv: Sequence[str]) -> int:
    return gha.run_command("pull-image", HELP, argv, main)

