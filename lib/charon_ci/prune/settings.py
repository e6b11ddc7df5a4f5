"""A prune run's settings, read once from the inputs by `prune.command` and passed down to the edges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from charon_ci.prune.policy import Policy


@dataclass(frozen=True)
class PruneSettings:
    policy: Policy
    dry_run: bool
    registry: str
    package: str
    owner: str
    token: str
    github_token: str
    username: str
    github_api_url: str
    repository: str
    snapshot: Path | None
    now: datetime | None
    plan_file: Path
    registry_host: str = ""
    dockerhub_api_url: str = "https://hub.docker.com"
    measure_bytes: bool = True  # read the manifests that size bytes-freed (GHCR counts each as a download)

    def __repr__(self) -> str:  # never show tokens
        return f"PruneSettings(registry={self.registry!r}, package={self.package!r}, owner={self.owner!r})"

    @property
    def offline(self) -> bool:
        return self.snapshot is not None
