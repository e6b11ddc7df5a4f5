"""Reading an earlier metrics JSON (`baseline` and `state` inputs): from a file, or from the newest
`ci-metrics-*` artifact of an earlier run of this repository. A document of another schema version, or not
a metrics document at all, is an input error: comparing or reusing it would give wrong numbers silently.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charon_ci import gha, github
from charon_ci.metrics.report import SCHEMA, SCHEMA_VERSION
from charon_ci.metrics.settings import PreviousSource

MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
ARTIFACT_PREFIX = "ci-metrics-"
ARTIFACT_PAGES = 5


@dataclass(frozen=True)
class Previous:
    document: dict[str, Any]
    label: str  # the file, or the artifact's name and run


def accepted() -> str:
    return (
        f"a metrics JSON written by charon-ci metrics (schema '{SCHEMA}' version {SCHEMA_VERSION}): a file path, "
        "or 'artifact' for the newest ci-metrics-* artifact of an earlier run"
    )


def check_document(data: bytes, source: PreviousSource, label: str) -> Previous:
    why = ""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        why = "not JSON"
    except RecursionError:
        why = "nested too deeply"
    if why:
        raise gha.InputError(source.input_name, f"{accepted()}; {label} is {why}", label)
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise gha.InputError(source.input_name, f"{accepted()}; {label} is not a metrics JSON", label)
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise gha.InputError(
            source.input_name,
            f"{accepted()}; {label} has schema version {version!r}, this charon-ci reads {SCHEMA_VERSION} "
            "(recompute it with this version, e.g. from a dump)",
            label,
        )
    return Previous(document, label)


def read_file(source: PreviousSource, path: Path) -> Previous:
    label = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise gha.InputError(source.input_name, f"{accepted()} (cannot read it: {exc.strerror})", label) from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise gha.InputError(source.input_name, f"{accepted()} of at most 256 MiB", label)
    return check_document(data, source, label)


def read_artifact(
    source: PreviousSource, client: github.GithubClient, repository: str, env: Mapping[str, str]
) -> Previous | None:
    """The newest unexpired `ci-metrics-*` artifact not made by this very run; None when there is none."""
    owner, _, name = repository.partition("/")
    this_run = env.get("GITHUB_RUN_ID", "")
    path = github.api_path("repos", owner, name, "actions", "artifacts")
    chosen: dict[str, Any] | None = None
    for page in client.iter_pages(path, items_key="artifacts", max_pages=ARTIFACT_PAGES):
        candidates = [
            item
            for item in page.items
            if isinstance(item, dict)
            and str(item.get("name", "")).startswith(ARTIFACT_PREFIX)
            and not item.get("expired")
            and not (this_run and str((item.get("workflow_run") or {}).get("id", "")) == this_run)
        ]
        if candidates:
            chosen = max(candidates, key=lambda item: (str(item.get("created_at", "")), int(item.get("id") or 0)))
            break
    if chosen is None:
        return None
    label = f"artifact {chosen.get('name')} (id {chosen.get('id')})"
    with tempfile.TemporaryDirectory(prefix="charon-metrics-") as folder:
        archive = Path(folder) / "artifact.zip"
        client.download(str(chosen["archive_download_url"]), archive, max_bytes=MAX_DOCUMENT_BYTES)
        try:
            with zipfile.ZipFile(archive) as bundle:
                members = sorted(
                    (
                        info
                        for info in bundle.infolist()
                        if Path(info.filename).name.startswith(ARTIFACT_PREFIX) and info.filename.endswith(".json")
                    ),
                    key=lambda info: Path(info.filename).name,
                    reverse=True,
                )
                if not members:
                    raise gha.InputError(
                        source.input_name, f"{accepted()}; {label} holds no ci-metrics-*.json", "artifact"
                    )
                if members[0].file_size > MAX_DOCUMENT_BYTES:
                    raise gha.InputError(source.input_name, f"{accepted()} of at most 256 MiB", "artifact")
                data = bundle.read(members[0])
        except zipfile.BadZipFile:
            raise gha.InputError(source.input_name, f"{accepted()}; {label} is not a zip", "artifact") from None
    return check_document(data, source, label)


def load(
    source: PreviousSource, client: github.GithubClient | None, repository: str, env: Mapping[str, str]
) -> Previous | None:
    if source.path is not None:
        return read_file(source, source.path)
    if client is None:
        raise gha.InputError(source.input_name, "a file path when from-dump is set (no API calls offline)", "artifact")
    found = read_artifact(source, client, repository, env)
    if found is None:
        gha.info(f"{source.input_name}: no ci-metrics-* artifact found in {repository}; starting without one")
    return found
