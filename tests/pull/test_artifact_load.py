"""Artifacts into the real engine: a real image pushed to the loopback registry, pulled into podman and
saved (`docker save` format), zipped as upload-artifact v4 zips it, served by the fake GitHub through the
302 to its storage host, fetched, then loaded with load_artifact. Hostile artifacts are refused with a
clear error, and the engine's images and tags are exactly as before."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from charon_ci.github import GithubClient
from charon_ci.pull.archive import ArchiveError, LoadedImage, load_artifact
from charon_ci.pull.artifact import ArtifactQuery, DownloadedArtifact, fetch_artifact
from tests.support import artifacts
from tests.support.fakegithub import FakeGitHub
from tests.support.images import ImageFactory, pull, save_image_archive

pytestmark = pytest.mark.services

REVISION = "0123456789abcdef0123456789abcdef01234567"
REPO = "wikid82/charon"
EngineState = list[tuple[str, tuple[str, ...]]]


@dataclass(frozen=True)
class SavedImage:
    reference: str  # registry/repository:tag, what the build tagged and the consumer expects
    image_id: str
    tar: Path  # `docker save` of it


def engine_state(api: Any) -> EngineState:
    """Every image the engine holds with its tags: what a refused load must leave unchanged."""
    return sorted((image["Id"], tuple(sorted(image.get("RepoTags") or ()))) for image in api.images(all=True))


@pytest.fixture
def saved_image(docker_client: Any, image_factory: ImageFactory, repository: str, tmp_path: Path) -> SavedImage:
    """A real image, saved by the engine and then removed from it (the consuming job starts without it)."""
    pushed = image_factory.push_image(repository, "pr-7", revision=REVISION)
    reference = pushed.tagged("pr-7")
    pull(docker_client, reference)
    image_id = docker_client.api.inspect_image(reference)["Id"]
    tar = save_image_archive(docker_client, reference, tmp_path / "saved.tar")
    docker_client.api.remove_image(reference)
    return SavedImage(reference, image_id, tar)


def deliver(gh: FakeGitHub, tmp_path: Path, upload: Path, name: str = "image-pr-7") -> DownloadedArtifact:
    """Upload `upload` as a run's artifact on the fake GitHub and fetch it back as the consumer would."""
    run = gh.add_run(REPO)
    gh.add_artifact(run, name, upload.read_bytes())
    client = GithubClient(gh.token, api_url=gh.url, sleep=lambda _s: None)
    query = ArtifactQuery(REPO, run.id, name, max_size=1 << 30, download_dir=tmp_path / "runner-temp")
    return fetch_artifact(client, query)


def load(docker_client: Any, artifact: DownloadedArtifact, expected: str, member: str | None = None) -> LoadedImage:
    return load_artifact(docker_client.api, artifact, member=member, expected_image=expected)


def assert_loaded(docker_client: Any, loaded: LoadedImage, saved: SavedImage) -> None:
    assert loaded.image_id == saved.image_id
    assert loaded.repo_tags == (saved.reference,)
    found = docker_client.api.inspect_image(saved.reference)
    assert found["Id"] == saved.image_id
    assert found["Config"]["Labels"]["org.opencontainers.image.revision"] == REVISION


# --- what builds upload ----------------------------------------------------------------------------------


def test_a_docker_save_zipped_by_upload_artifact_loads_under_its_tag(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    # Charon's build uploaded `charon-pr-image.tar` while consumers looked for `charon-image.tar`: the
    # tar is found by its bytes, whatever it is called.
    upload = artifacts.upload_artifact_zip(tmp_path / "upload.zip", {"charon-pr-image.tar": saved_image.tar})
    with zipfile.ZipFile(upload) as archive:
        (entry,) = archive.infolist()
        assert entry.flag_bits & 0x08, "streamed like upload-artifact: sizes in a data descriptor"
        assert entry.compress_type == zipfile.ZIP_DEFLATED

    artifact = deliver(fake_github, tmp_path, upload)
    loaded = load(docker_client, artifact, saved_image.reference)

    assert_loaded(docker_client, loaded, saved_image)
    assert artifact.digest_verified


def gz_in_zip(saved: Path, tmp: Path) -> Path:
    packed = artifacts.gzip_file(saved, tmp / "image.tar.gz")
    return artifacts.upload_artifact_zip(tmp / "upload.zip", {"image.tar.gz": packed}, level=0)


def zst_in_zip(saved: Path, tmp: Path) -> Path:
    packed = artifacts.zstd_file(saved, tmp / "image.tar.zst")
    return artifacts.upload_artifact_zip(tmp / "upload.zip", {"image.tar.zst": packed})


def stored_zip(saved: Path, tmp: Path) -> Path:
    return artifacts.upload_artifact_zip(tmp / "upload.zip", {"image.tar": saved}, level=0)


def unzipped_tar(saved: Path, tmp: Path) -> Path:
    return saved  # upload-artifact's `archive: false`: the file itself


def unzipped_zst(saved: Path, tmp: Path) -> Path:
    return artifacts.zstd_file(saved, tmp / "image.tar.zst")


def unzipped_gz(saved: Path, tmp: Path) -> Path:
    return artifacts.gzip_file(saved, tmp / "image.tar.gz")


def oddly_named_among_others(saved: Path, tmp: Path) -> Path:
    return artifacts.upload_artifact_zip(
        tmp / "upload.zip",
        {"README.md": b"# the image\n", "build/": b"", "build/image.bin": saved, "sha256sums.txt": b"abc  x\n"},
    )


@pytest.mark.parametrize(
    "make_upload",
    [gz_in_zip, zst_in_zip, stored_zip, unzipped_tar, unzipped_zst, unzipped_gz, oddly_named_among_others],
)
def test_every_form_builds_upload_loads(
    fake_github: FakeGitHub,
    docker_client: Any,
    saved_image: SavedImage,
    tmp_path: Path,
    make_upload: Callable[[Path, Path], Path],
) -> None:
    artifact = deliver(fake_github, tmp_path, make_upload(saved_image.tar, tmp_path))
    assert_loaded(docker_client, load(docker_client, artifact, saved_image.reference), saved_image)


def test_artifact_file_picks_one_tar_of_several(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    other, _ = artifacts.write_docker_archive(tmp_path / "other.tar", None, layer_bytes=1000, seed=7)
    upload = artifacts.upload_artifact_zip(
        tmp_path / "upload.zip", {"debug/other.tar": other, "dist/charon.tar": saved_image.tar}
    )
    artifact = deliver(fake_github, tmp_path, upload)

    loaded = load(docker_client, artifact, saved_image.reference, member="./dist/charon.tar")

    assert_loaded(docker_client, loaded, saved_image)


def test_the_tar_is_streamed_not_extracted(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    upload = artifacts.upload_artifact_zip(tmp_path / "upload.zip", {"image.tar": saved_image.tar})
    artifact = deliver(fake_github, tmp_path, upload)
    load(docker_client, artifact, saved_image.reference)
    assert sorted(p.name for p in (tmp_path / "runner-temp").iterdir()) == [artifact.path.name]


def test_an_untagged_save_loads_as_an_untagged_image(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    untagged = artifacts.retag_archive(saved_image.tar, tmp_path / "untagged.tar", [])
    artifact = deliver(fake_github, tmp_path, artifacts.upload_artifact_zip(tmp_path / "u.zip", {"i.tar": untagged}))

    loaded = load(docker_client, artifact, saved_image.reference)

    assert loaded == LoadedImage(saved_image.image_id, ())
    assert docker_client.api.inspect_image(saved_image.image_id)["Id"] == saved_image.image_id
    docker_client.api.remove_image(saved_image.image_id)


# --- hostile artifacts -----------------------------------------------------------------------------------


def refused(
    gh: FakeGitHub, docker_client: Any, tmp_path: Path, upload: Path, expected: str, member: str | None = None
) -> str:
    """Deliver and load `upload`; it must be refused and leave the engine's images and tags untouched."""
    artifact = deliver(gh, tmp_path, upload)
    before = engine_state(docker_client.api)
    with pytest.raises(ArchiveError) as failure:
        load(docker_client, artifact, expected, member)
    assert engine_state(docker_client.api) == before
    return str(failure.value)


def test_zip_slip_is_refused(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    upload = artifacts.zip_with_entries(
        tmp_path / "slip.zip", [("../../../tmp/image.tar", saved_image.tar.read_bytes())]
    )
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert message == (
        "the artifact's zip entry '../../../tmp/image.tar' climbs out of the archive with '..'; "
        "refused: nothing was loaded"
    )


def test_an_absolute_path_is_refused(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    upload = artifacts.zip_with_entries(tmp_path / "abs.zip", [("/var/lib/image.tar", saved_image.tar.read_bytes())])
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert "'/var/lib/image.tar' is an absolute path" in message


def test_a_symlink_entry_is_refused(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    upload = artifacts.zip_with_entries(
        tmp_path / "link.zip",
        [("image.tar", saved_image.tar.read_bytes()), artifacts.symlink_entry("latest.tar", "/etc/shadow")],
    )
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert message == "the artifact's zip entry 'latest.tar' is a symbolic link; refused: nothing was loaded"


def test_a_zip_bomb_is_refused_before_inflating(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    upload = artifacts.zip_bomb(tmp_path / "bomb.zip", expanded=512 << 20)
    assert upload.stat().st_size < 1 << 20
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert "declares 536872448 bytes from" in message
    assert "past the 67108864-byte expansion cap (a zip bomb" in message


def test_a_compressed_tar_inflating_past_the_cap_is_cut_off(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    bomb = artifacts.zip_bomb(tmp_path / "inner.zip", expanded=256 << 20)
    with zipfile.ZipFile(bomb) as archive, archive.open("image.tar") as tar, (tmp_path / "zeros.tar").open("wb") as out:
        while chunk := tar.read(1 << 20):
            out.write(chunk)
    packed = artifacts.gzip_file(tmp_path / "zeros.tar", tmp_path / "zeros.tar.gz")
    (tmp_path / "zeros.tar").unlink()
    upload = artifacts.upload_artifact_zip(tmp_path / "upload.zip", {"image.tar.gz": packed}, level=0)
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert "the artifact's 'image.tar.gz' (gzip) expands past 67108864 bytes" in message


def test_an_entry_longer_than_it_declares_is_cut_off(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    honest = artifacts.zip_with_entries(tmp_path / "honest.zip", [("image.tar", saved_image.tar.read_bytes())])
    lying = artifacts.zip_with_lying_size(honest, tmp_path / "lying.zip", declared=saved_image.tar.stat().st_size // 2)
    message = refused(fake_github, docker_client, tmp_path, lying, saved_image.reference)
    assert "Bad CRC-32" in message or "the tar ends in the middle" in message


def test_two_tars_are_refused_without_artifact_file(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    upload = artifacts.upload_artifact_zip(
        tmp_path / "two.zip",
        {"amd64.tar": saved_image.tar, "arm64.tar.zst": artifacts.zstd_file(saved_image.tar, tmp_path / "z")},
    )
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert message == (
        "the artifact's zip holds 2 image tars ('amd64.tar', 'arm64.tar.zst'); name the one to load with artifact-file"
    )


def test_artifact_file_that_is_not_there_lists_what_is(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    upload = artifacts.upload_artifact_zip(tmp_path / "u.zip", {"charon-pr-image.tar": saved_image.tar})
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference, member="charon-image.tar")
    assert (
        message == "the artifact's zip has no file 'charon-image.tar' (artifact-file); it holds: 'charon-pr-image.tar'"
    )


def test_a_zip_without_an_image_tar_says_what_it_holds(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    upload = artifacts.upload_artifact_zip(tmp_path / "u.zip", {"image.tar": b"not a tar at all" * 100, "x.txt": b"x"})
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert message == "the artifact's zip holds no image tar (plain, gzip or zstd); it holds: 'image.tar', 'x.txt'"


@pytest.fixture
def victim(docker_client: Any, image_factory: ImageFactory, repository: str) -> tuple[str, str]:
    """Another image already in the engine as `<repo>-victim:latest`: (reference, its image id)."""
    pushed = image_factory.push_image(f"{repository}-victim", "latest", revision="f" * 40)
    reference = pushed.tagged("latest")
    pull(docker_client, reference)
    return reference, docker_client.api.inspect_image(reference)["Id"]


@pytest.mark.parametrize("also_expected", [True, False])
def test_a_tar_claiming_latest_of_another_image_is_refused(
    fake_github: FakeGitHub,
    docker_client: Any,
    saved_image: SavedImage,
    victim: tuple[str, str],
    tmp_path: Path,
    also_expected: bool,
) -> None:
    victim_ref, victim_id = victim
    tags = [saved_image.reference, victim_ref] if also_expected else [victim_ref]
    hostile = artifacts.retag_archive(saved_image.tar, tmp_path / "hostile.tar", tags)
    upload = artifacts.upload_artifact_zip(tmp_path / "u.zip", {"image.tar": hostile})

    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)

    assert message == (
        f"the tar's manifest.json would tag the loaded image '{victim_ref}', overwriting that tag; the artifact may "
        f"set only {saved_image.reference}. Refused: nothing was loaded."
    )
    assert docker_client.api.inspect_image(victim_ref)["Id"] == victim_id
    assert not any(saved_image.image_id == image["Id"] for image in docker_client.api.images(all=True))


def test_a_legacy_repositories_file_claiming_another_tag_is_refused(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, victim: tuple[str, str], tmp_path: Path
) -> None:
    victim_ref, victim_id = victim
    repository, _, tag = victim_ref.rpartition(":")
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(saved_image.tar) as src, tarfile.open(hostile, "w") as out:
        for member in src.getmembers():
            if member.name == "repositories":
                body = f'{{"{repository}": {{"{tag}": "0"}}}}'.encode()
                member.size = len(body)
                out.addfile(member, io.BytesIO(body))
            else:
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
    upload = artifacts.upload_artifact_zip(tmp_path / "u.zip", {"image.tar": hostile})
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert message.startswith(f"the tar's repositories would tag the loaded image '{victim_ref}'")
    assert docker_client.api.inspect_image(victim_ref)["Id"] == victim_id


def test_a_tar_the_engine_cannot_load_is_an_error_naming_the_engine(
    fake_github: FakeGitHub, docker_client: Any, saved_image: SavedImage, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.tar"
    with tarfile.open(saved_image.tar) as src, tarfile.open(broken, "w") as out:
        for member in src.getmembers():
            if member.name.endswith(".json") and member.name != "manifest.json":
                continue  # the config the manifest points at
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
    upload = artifacts.upload_artifact_zip(tmp_path / "u.zip", {"image.tar": broken})
    message = refused(fake_github, docker_client, tmp_path, upload, saved_image.reference)
    assert message.startswith("the engine refused the image: ")
