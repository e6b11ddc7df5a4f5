"""Reading the artifact's zip before anything reaches the engine: entries that no image artifact has are
refused up front (the engine is never called), and what is not a zip is recognised by its bytes."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from charon_ci.pull.archive import MAX_ZIP_ENTRIES, load_artifact
from charon_ci.pull.artifact import ArchiveError, DownloadedArtifact
from tests.support import artifacts


class UntouchableEngine:
    """Any use of the engine fails the test: these artifacts must be refused before loading starts."""

    timeout = 60

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was used ({name}) for an artifact that should have been refused")


def refusal(path: Path, member: str | None = None) -> str:
    artifact = DownloadedArtifact(path, 1, "image", path.stat().st_size, True)
    with pytest.raises(ArchiveError) as failure:
        load_artifact(UntouchableEngine(), artifact, member=member, expected_image="charon:pr-7")  # type: ignore[arg-type]
    return str(failure.value)


@pytest.fixture
def image_tar(tmp_path: Path) -> bytes:
    tar, _ = artifacts.write_docker_archive(tmp_path / "image.tar", "charon:pr-7", layer_bytes=2000, seed=4)
    return tar.read_bytes()


def entry(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2024, 6, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("name", "mode", "problem"),
    [
        ("..\\..\\image.tar", stat.S_IFREG | 0o644, "climbs out of the archive with '..'"),
        ("a/../../image.tar", stat.S_IFREG | 0o644, "climbs out of the archive with '..'"),
        ("C:\\image.tar", stat.S_IFREG | 0o644, "is an absolute path"),
        ("fifo", stat.S_IFIFO | 0o644, "is a special file (device, fifo or socket)"),
        ("dev", stat.S_IFCHR | 0o644, "is a special file (device, fifo or socket)"),
    ],
)
def test_entries_no_image_artifact_has_are_refused(
    tmp_path: Path, image_tar: bytes, name: str, mode: int, problem: str
) -> None:
    upload = artifacts.zip_with_entries(tmp_path / "u.zip", [(entry("image.tar"), image_tar), (entry(name, mode), b"")])
    assert refusal(upload) == f"the artifact's zip entry {name!r} {problem}; refused: nothing was loaded"


def test_an_unknown_compression_method_is_refused(tmp_path: Path, image_tar: bytes) -> None:
    upload = tmp_path / "bz.zip"
    with zipfile.ZipFile(upload, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("image.tar", image_tar)
    assert "uses compression method 12 (upload-artifact writes deflate or stored)" in refusal(upload)


def test_an_encrypted_entry_is_refused(tmp_path: Path, image_tar: bytes) -> None:
    plain = artifacts.zip_with_entries(tmp_path / "plain.zip", [("image.tar", image_tar)])
    data = bytearray(plain.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        (flags,) = struct.unpack_from("<H", data, at + flags_at)
        struct.pack_into("<H", data, at + flags_at, flags | 0x1)
    encrypted = tmp_path / "encrypted.zip"
    encrypted.write_bytes(bytes(data))
    assert refusal(encrypted) == "the artifact's zip entry 'image.tar' is encrypted; refused: nothing was loaded"


def test_a_name_twice_is_refused(tmp_path: Path, image_tar: bytes) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        upload = artifacts.zip_with_entries(tmp_path / "dup.zip", [("image.tar", image_tar), ("image.tar", b"x")])
    assert refusal(upload) == "the artifact's zip holds 'image.tar' twice; refused: nothing was loaded"


def test_too_many_entries_are_refused_before_they_are_parsed(tmp_path: Path) -> None:
    upload = artifacts.zip_with_entries(tmp_path / "many.zip", [(f"f{i}", b"") for i in range(MAX_ZIP_ENTRIES + 1)])
    assert refusal(upload) == "the artifact's zip declares 10001 entries, more than an image artifact has"


def test_an_empty_zip_is_refused(tmp_path: Path) -> None:
    upload = artifacts.zip_with_entries(tmp_path / "empty.zip", [])
    assert refusal(upload) == "the artifact is an empty zip: the build uploaded no files"


def test_a_zip_of_directories_only_is_refused(tmp_path: Path) -> None:
    upload = artifacts.zip_with_entries(tmp_path / "dirs.zip", [(entry("out/", stat.S_IFDIR | 0o755), b"")])
    assert refusal(upload) == "the artifact's zip holds no files"


def test_a_corrupt_zip_is_refused(tmp_path: Path, image_tar: bytes) -> None:
    good = artifacts.zip_with_entries(tmp_path / "good.zip", [("image.tar", image_tar)])
    broken = tmp_path / "broken.zip"
    broken.write_bytes(good.read_bytes()[:-30])  # the end of the central directory is gone
    assert refusal(broken).startswith("the artifact is not a readable zip: ")


def test_artifact_file_naming_something_that_is_not_a_tar_is_refused(tmp_path: Path, image_tar: bytes) -> None:
    upload = artifacts.upload_artifact_zip(tmp_path / "u.zip", {"image.tar": image_tar, "notes.txt": b"hello" * 200})
    assert refusal(upload, member="notes.txt") == (
        "the artifact's 'notes.txt' is not an image tar (plain, gzip or zstd), by its bytes"
    )


@pytest.mark.parametrize(
    ("head", "hint"),
    [
        (b"\xfd7zXZ\x00" + bytes(600), " (xz and bzip2 are not accepted: compress with gzip or zstd)"),
        (b"BZh91AY&SY" + bytes(600), " (xz and bzip2 are not accepted: compress with gzip or zstd)"),
        (b"<html>" + bytes(600), ""),
    ],
)
def test_an_unzipped_file_that_is_no_image_tar_is_named_by_its_bytes(tmp_path: Path, head: bytes, hint: str) -> None:
    upload = tmp_path / "artifact"
    upload.write_bytes(head)
    assert refusal(upload) == (
        f"the artifact is neither a zip nor an image tar (plain, gzip or zstd){hint}; its first bytes are {head[:8]!r}"
    )


def test_a_gzip_that_is_not_a_tar_is_not_an_image(tmp_path: Path) -> None:
    import gzip

    upload = tmp_path / "artifact"
    upload.write_bytes(gzip.compress(b"just a log file\n" * 100))
    assert refusal(upload).startswith("the artifact is neither a zip nor an image tar")


def test_a_truncated_gzip_tar_is_cut_off(tmp_path: Path, image_tar: bytes) -> None:
    import gzip

    packed = gzip.compress(image_tar)
    upload = tmp_path / "artifact"
    upload.write_bytes(packed[: len(packed) // 2])
    message = refusal_after_start(upload)
    assert "Compressed file ended before the end-of-stream marker was reached" in message


def refusal_after_start(path: Path) -> str:
    """Like `refusal`, for artifacts refused mid-stream: the engine is asked to load, and its load cut off."""

    class CuttingEngine:
        timeout = 60

        def load_image(self, data: Any, quiet: bool | None = None) -> Any:
            for _ in data:  # consume as the engine would; the refusal is raised from inside
                pass
            raise AssertionError("the stream ended without a refusal")

    artifact = DownloadedArtifact(path, 1, "image", path.stat().st_size, True)
    with pytest.raises(ArchiveError) as failure:
        load_artifact(CuttingEngine(), artifact, member=None, expected_image="charon:pr-7")  # type: ignore[arg-type]
    return str(failure.value)
