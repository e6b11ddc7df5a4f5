"""TEMPORARY stand-in for pull-artifact's module (branch `pull-artifact` owns this file and replaces it on merge).

Streams the single image tar of a downloaded artifact zip into the engine's load.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from typing import Any

from charon_ci.pull.artifact import ArtifactError, DownloadedArtifact


@dataclass(frozen=True)
class LoadedImage:
    image_id: str
    repo_tags: tuple[str, ...]


def load_artifact(engine: Any, artifact: DownloadedArtifact, *, member: str | None, expected_image: str) -> LoadedImage:
    with zipfile.ZipFile(artifact.path) as archive:
        names = [n for n in archive.namelist() if (member is None and n.endswith(".tar")) or n == member]
        if len(names) != 1:
            raise ArtifactError(f"artifact {artifact.name!r} does not hold exactly one .tar")
        with archive.open(names[0]) as stream:
            loaded: list[str] = []
            for event in engine.load_image(stream):
                text = str(event.get("stream", "")) if isinstance(event, dict) else ""
                if isinstance(event, dict) and event.get("error"):
                    raise ArtifactError(f"the engine refused the archive: {event['error']}")
                if text.startswith("Loaded image"):
                    loaded.append(text.split(":", 1)[1].strip())
    if not loaded:
        raise ArtifactError("the engine loaded nothing")
    info = engine.inspect_image(loaded[0])
    return LoadedImage(str(info["Id"]), tuple(info.get("RepoTags") or ()))
