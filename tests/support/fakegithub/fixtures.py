"""pytest plugin: `fake_github` gives each test a started FakeGitHub and fails the test at teardown if a
response broke the OpenAPI contract, a handler crashed, or a token went to the artifact storage host.

Register with `pytest_plugins = ["tests.support.fakegithub.fixtures"]` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake import FakeGitHub


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub().start()
    try:
        yield gh
    finally:
        gh.stop()
    gh.check()
