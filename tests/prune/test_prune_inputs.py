"""Online inputs of `charon-ci prune` against the real loopback registry behind the fake GitHub: what is
checked before the first request, and `measure-bytes`, which spares the reads only bytes-freed needs."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from charon_ci import gha
from charon_ci.prune.apply import OnlineStats, Runtime, run_online
from charon_ci.prune.command import parse_settings, report
from tests.support.composite import parse_commands, parse_file_command
from tests.support.fakegithub import FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.images import ImageFactory
from tests.support.prune_world import World, action_inputs, build_charon_world, input_env
from tests.support.services import Registry

pytestmark = pytest.mark.services


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github()


def run(
    gh: FakeGitHub, registry: Registry, world: World, folder: Path, **extra: str
) -> tuple[int, dict[str, str], OnlineStats, str]:
    folder.mkdir()
    (folder / "output").write_text("")
    env = {
        **input_env(action_inputs(gh, registry, world, **extra)),
        "GITHUB_OUTPUT": str(folder / "output"),
        "GITHUB_STEP_SUMMARY": str(folder / "summary.md"),
    }
    env.setdefault("INPUT_PLAN-FILE", str(folder / "plan.json"))
    stats = OnlineStats()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        code = gha.run_action(lambda: run_online(parse_settings(env), env, report, Runtime(), stats), env)
    return code, parse_file_command((folder / "output").read_text()), stats, log.getvalue()


def test_measure_bytes_false_spares_the_size_reads(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    world = build_charon_world(gh, registry, image_factory)
    code, measured, stats, _ = run(gh, registry, world, tmp_path / "measured")
    assert code == 0 and stats.size_reads > 0
    summary = (tmp_path / "measured" / "summary.md").read_text()
    assert "would free" in summary

    code, spared, stats, _ = run(gh, registry, world, tmp_path / "spared", **{"measure-bytes": "false"})
    assert code == 0 and stats.size_reads == 0 and stats.manifest_reads > 0
    assert spared["planned-count"] == measured["planned-count"] and spared["bytes-freed"] == "0"  # a dry run
    assert "size not measured" in (tmp_path / "spared" / "summary.md").read_text()

    # A real run that did not measure says so: an empty bytes-freed, not a zero.
    code, applied, stats, log = run(
        gh, registry, world, tmp_path / "applied", **{"measure-bytes": "false", "dry-run": "false"}
    )
    assert code == 0, log[-3000:]
    assert stats.size_reads == 0 and int(applied["deleted-count"]) == len(world.delete)
    assert applied["bytes-freed"] == ""


def test_every_input_is_checked_before_the_first_request(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    world = build_charon_world(gh, registry, image_factory)
    gh.requests.clear()
    for name, bad in (("plan-file", "/"), ("measure-bytes", "maybe"), ("protect", "(a)\\1"), ("keep-last", "9" * 5000)):
        code, outputs, _, log = run(gh, registry, world, tmp_path / name, **{"dry-run": "false", name: bad})
        errors = [c for c in parse_commands(log) if c.name == "error"]
        assert code == 1 and outputs == {} and len(errors) == 1, log
        assert errors[0].properties["title"] == f"Invalid input '{name}'"
        assert gh.requests == [], f"{name}: a request went out before the input was checked"
    assert {record.name for record in world.package.versions()} == world.all_digests
