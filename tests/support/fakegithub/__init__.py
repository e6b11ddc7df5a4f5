"""A fake GitHub REST API on loopback for charon-ci's tests. See README.md beside this file."""

from .app import RequestRecord
from .clock import Clock
from .context import Settings
from .contract import Contract, Violation
from .fake import FakeGitHub, FakeGitHubError
from .faults import Faults
from .overlay import Overlay
from .packages import VersionRecord
from .state import Artifact, Attempt, Job, Package, Pull, Repo, Run, Token, User, Workflow

__all__ = [
    "Artifact", "Attempt", "Clock", "Contract", "FakeGitHub", "FakeGitHubError", "Faults", "Job", "Overlay", "Package",
    "Pull", "Repo", "RequestRecord", "Run", "Settings", "Token", "User", "VersionRecord", "Violation", "Workflow",
]
