"""The image-tar gate on its own (no engine): it passes a tar through byte for byte, finds naming members
under every spelling Go's tar reader accepts, and refuses before yielding a member that would set a tag
other than the expected image's. Also the engine-answer handling of load_artifact, with a stand-in engine
for what podman does not do (errors inside a 200 load stream)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from charon_ci.pull.archive import LoadedImage, load_artifact
from charon_ci.pull.artifact import ArchiveError, DownloadedArtifact
from charon_ci.pull.imagetar import ImageTarGate, TagPolicy, parse_image_name
from tests.support import artifacts

EXPECTED = "ghcr.io/wikid82/charon:pr-7"
CONFIG_HEX = "a" * 64


def manifest(*tags: str) -> bytes:
    return json.dumps([{"Config": f"{CONFIG_HEX}.json", "RepoTags": list(tags), "Layers": ["l/layer.tar"]}]).encode()


def make_tar(members: list[tuple[str, bytes] | tarfile.TarInfo], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


class Trickle:
    """A source that hands out at most `step` bytes a read, as decompressors may."""

    def __init__(self, data: bytes, step: int = 7777) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(min(size, self._step) if size >= 0 else self._step)


def gate_output(data: bytes, expected: str = EXPECTED, chunk: int = 4096) -> tuple[bytes, ImageTarGate]:
    gate = ImageTarGate(Trickle(data), TagPolicy.for_image(expected), chunk_size=chunk)
    return b"".join(gate.stream()), gate


def refusal(data: bytes, expected: str = EXPECTED) -> tuple[str, bytes]:
    """The refusal message, and everything the gate had yielded before refusing."""
    gate = ImageTarGate(Trickle(data), TagPolicy.for_image(expected), chunk_size=4096)
    sent = bytearray()
    with pytest.raises(ArchiveError) as failure:
        for chunk in gate.stream():
            sent += chunk
    return str(failure.value), bytes(sent)


# --- pass-through ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_a_good_tar_passes_through_byte_for_byte(fmt: int) -> None:
    data = make_tar(
        [
            ("l/layer.tar", bytes(range(256)) * 5000),
            (f"{CONFIG_HEX}.json", b"{}"),
            ("d" * 150 + "/long-name", b"x"),  # needs a prefix, GNU long name or PAX path
            link("l2/layer.tar", "../l/layer.tar"),
            ("manifest.json", manifest(EXPECTED)),
            ("repositories", json.dumps({"ghcr.io/wikid82/charon": {"pr-7": "x"}}).encode()),
        ],
        fmt,
    )
    out, gate = gate_output(data)
    assert out == data
    assert gate.findings.repo_tags == [EXPECTED]
    assert gate.findings.config_paths == [f"{CONFIG_HEX}.json"]
    assert gate.findings.naming_members == ["manifest.json", "repositories"]
    assert gate.findings.bytes_passed == len(data)


def test_a_hand_made_docker_archive_passes(tmp_path: Path) -> None:
    tar, _ = artifacts.write_docker_archive(tmp_path / "a.tar", "bench/big:v1", layer_bytes=300_000, seed=1)
    data = tar.read_bytes()
    out, gate = gate_output(data, "bench/big:v1")
    assert out == data
    assert gate.findings.repo_tags == ["bench/big:v1"]


# --- refusals ----------------------------------------------------------------------------------------------


def test_a_foreign_tag_is_refused_before_the_manifest_is_yielded() -> None:
    layer = bytes(200_000)
    data = make_tar([("l/layer.tar", layer), ("manifest.json", manifest(EXPECTED, "ghcr.io/wikid82/charon:latest"))])
    message, sent = refusal(data)
    assert message == (
        "the tar's manifest.json would tag the loaded image 'ghcr.io/wikid82/charon:latest', overwriting that tag; the "
        "artifact may set only ghcr.io/wikid82/charon:pr-7. Refused: nothing was loaded."
    )
    assert layer[:100_000] in sent  # the layer streamed on
    assert b"RepoTags" not in sent  # the manifest never did


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("./manifest.json", tarfile.USTAR_FORMAT),
        ("/manifest.json", tarfile.USTAR_FORMAT),
        ("x/../manifest.json", tarfile.USTAR_FORMAT),
        ("./" + "./" * 60 + "manifest.json", tarfile.GNU_FORMAT),  # GNU long name
        ("./" + "./" * 60 + "manifest.json", tarfile.PAX_FORMAT),  # PAX path record
    ],
)
def test_every_spelling_of_manifest_json_is_judged(name: str, fmt: int) -> None:
    message, _ = refusal(make_tar([("manifest.json", manifest(EXPECTED)), (name, manifest("evil:latest"))], fmt))
    assert "would tag the loaded image 'evil:latest'" in message


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_a_link_named_manifest_json_is_refused(kind: bytes) -> None:
    data = make_tar([("evil.json", manifest("evil:latest")), link("manifest.json", "evil.json", kind)])
    message, _ = refusal(data)
    assert message.startswith("the tar's 'manifest.json' is a link or special file, not a plain file")


def test_a_member_written_through_a_directory_link_is_refused() -> None:
    data = make_tar([link("x", "."), ("x/manifest.json", manifest("evil:latest"))])
    message, _ = refusal(data)
    assert message.startswith("the tar's 'x/manifest.json' lies below the link 'x'")


def test_data_hidden_after_the_end_of_the_archive_is_refused() -> None:
    data = make_tar([("manifest.json", manifest(EXPECTED))])
    hidden = data + make_tar([("manifest.json", manifest("evil:latest"))])
    message, _ = refusal(hidden)
    assert message.startswith("the tar has data after its end-of-archive marker")


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("layer.tar", b"x")], "the tar has no manifest.json, repositories or index.json: it is not an image archive"),
        ([("manifest.json", b"[1, 2")], "the tar's manifest.json is not JSON"),
        ([("manifest.json", b'{"RepoTags": []}')], "the tar's manifest.json is not a list of images"),
        (
            [("manifest.json", b"[{}, {}]")],
            "the tar's manifest.json lists 2 images; an image artifact holds exactly one",
        ),
        (
            [("manifest.json", b'[{"RepoTags": "x:y"}]')],
            "the tar's manifest.json has RepoTags 'x:y', which is not a list",
        ),
        (
            [("manifest.json", manifest("ghcr.io/wikid82/charon@sha256:" + "1" * 64))],
            "which is not a plain name:tag",
        ),
        ([("manifest.json", manifest("Not A Name:x"))], "which is not a reference"),
        ([("manifest.json", bytes(5 * 1024 * 1024))], "far larger than an image needs"),
    ],
)
def test_malformed_naming_members_are_refused(members: list[tuple[str, bytes]], message: str) -> None:
    assert message in refusal(make_tar(members))[0]


def test_not_a_tar_is_refused() -> None:
    message, sent = refusal(b"{" * 2048)
    assert message == "the data at byte 0 of the tar is not a tar header (bad checksum)"
    assert sent == b""


def test_a_truncated_tar_is_refused() -> None:
    data = make_tar([("l/layer.tar", bytes(100_000)), ("manifest.json", manifest(EXPECTED))])
    message, _ = refusal(data[:50_000])
    assert message.startswith("the tar ends in the middle of the member 'l/layer.tar'")


@pytest.mark.parametrize(
    ("annotations", "accepted"),
    [
        ({"io.containerd.image.name": EXPECTED, "org.opencontainers.image.ref.name": "pr-7"}, True),
        ({"org.opencontainers.image.ref.name": "latest"}, False),
        ({"io.containerd.image.name": "ghcr.io/wikid82/charon:latest"}, False),
        ({"org.opencontainers.image.ref.name": "docker.io/library/charon:pr-7"}, False),
        ({}, True),
    ],
)
def test_oci_index_names_are_judged(annotations: dict[str, str], accepted: bool) -> None:
    index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "b" * 64, "annotations": annotations}]}
    data = make_tar([("oci-layout", b"{}"), ("index.json", json.dumps(index).encode())])
    if accepted:
        assert gate_output(data)[0] == data
    else:
        assert "Refused: nothing was loaded." in refusal(data)[0]


def test_an_image_expected_by_digest_may_set_no_tag() -> None:
    expected = "ghcr.io/wikid82/charon@sha256:" + "c" * 64
    assert gate_output(make_tar([("manifest.json", manifest())]), expected)[1].findings.repo_tags == []
    message, _ = refusal(make_tar([("manifest.json", manifest(EXPECTED))]), expected)
    assert "may set no tag (the image is expected by digest)" in message


# --- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tagged"),
    [
        ("charon:local", "docker.io/library/charon:local"),
        ("docker.io/charon:local", "docker.io/library/charon:local"),
        ("index.docker.io/library/charon:local", "docker.io/library/charon:local"),
        ("wikid82/charon:pr-7", "docker.io/wikid82/charon:pr-7"),
        ("ghcr.io/wikid82/charon:pr-7", "ghcr.io/wikid82/charon:pr-7"),
        ("localhost/charon:x", "localhost/charon:x"),
        ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c"),
        ("localhost:5000/a", None),
        ("ghcr.io/wikid82/charon:pr-7@sha256:" + "d" * 64, "ghcr.io/wikid82/charon:pr-7"),
    ],
)
def test_names_normalise_as_the_engine_does(text: str, tagged: str | None) -> None:
    assert parse_image_name(text).tagged == tagged


@pytest.mark.parametrize("text", ["", "x/UPPER:y", "a:b:c", "x@sha256:short", "ghcr.io/x:" + "t" * 129, "a//b:c"])
def test_not_names_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_image_name(text)


def test_an_engine_may_file_a_short_name_under_localhost() -> None:
    policy = TagPolicy.for_image("bench/big:v1")
    assert policy.engine_named("localhost/bench/big:v1", ["bench/big:v1"])
    assert policy.engine_named("docker.io/bench/big:v1", ["bench/big:v1"])
    assert not policy.engine_named("localhost/bench/big:v1", ["docker.io/bench/big:v1"])
    assert not policy.engine_named("evil:latest", ["bench/big:v1"])


# --- the engine's answer (a stand-in engine: podman never reports errors inside a 200 stream) ------------


class AnsweringEngine:
    """Consumes the load body like an engine, then answers with `events`; records its timeout meanwhile."""

    def __init__(self, events: list[dict[str, Any]], images: dict[str, str]) -> None:
        self.events = events
        self.images = images
        self.timeout = 60
        self.timeout_during_load: float | None = None
        self.received = 0

    def load_image(self, data: Iterator[bytes], quiet: bool | None = None) -> Iterator[dict[str, Any]]:
        self.timeout_during_load = self.timeout
        self.received = sum(len(chunk) for chunk in data)
        return iter(self.events)

    def inspect_image(self, reference: str) -> dict[str, Any]:
        from docker.errors import NotFound

        if reference not in self.images:
            raise NotFound(f"no such image: {reference}")
        return {"Id": self.images[reference]}


@pytest.fixture
def small_artifact(tmp_path: Path) -> DownloadedArtifact:
    tar, _ = artifacts.write_docker_archive(tmp_path / "a.tar", "bench/small:v1", layer_bytes=5000, seed=2)
    upload = artifacts.upload_artifact_zip(tmp_path / "a.zip", {"a.tar": tar})
    return DownloadedArtifact(upload, 1, "a", upload.stat().st_size, True)


def test_an_error_inside_the_load_stream_is_an_error(small_artifact: DownloadedArtifact) -> None:
    engine = AnsweringEngine(
        [{"status": "Loading layer"}, {"errorDetail": {"message": "no space left on device"}, "error": "no space"}], {}
    )
    with pytest.raises(ArchiveError, match="the engine could not load the image: no space"):
        load_artifact(engine, small_artifact, member=None, expected_image="bench/small:v1")  # type: ignore[arg-type]


def test_the_load_runs_with_its_own_timeout_and_restores_the_clients(
    small_artifact: DownloadedArtifact, tmp_path: Path
) -> None:
    engine = AnsweringEngine([{"stream": "Loaded image: bench/small:v1\n"}], {"bench/small:v1": "sha256:" + "e" * 64})
    loaded = load_artifact(
        engine,  # type: ignore[arg-type]
        small_artifact,
        member=None,
        expected_image="bench/small:v1",
        load_timeout=1234.0,
    )
    assert loaded == LoadedImage("sha256:" + "e" * 64, ("bench/small:v1",))
    assert engine.timeout_during_load == 1234.0
    assert engine.timeout == 60
    assert engine.received == (tmp_path / "a.tar").stat().st_size  # the whole tar, unzipped


def test_docker_s_untagged_answer_names_the_image_by_id(small_artifact: DownloadedArtifact) -> None:
    image_id = "sha256:" + "f" * 64
    engine = AnsweringEngine([{"stream": f"Loaded image ID: {image_id}\n"}], {})
    loaded = load_artifact(engine, small_artifact, member=None, expected_image="bench/small:v1")  # type: ignore[arg-type]
    assert loaded.image_id == image_id


def test_an_engine_claiming_a_tag_the_gate_did_not_accept_is_an_error(small_artifact: DownloadedArtifact) -> None:
    engine = AnsweringEngine([{"stream": "Loaded image: evil:latest\n"}], {"evil:latest": "sha256:" + "e" * 64})
    with pytest.raises(ArchiveError, match="the engine says it tagged the loaded image 'evil:latest'"):
        load_artifact(engine, small_artifact, member=None, expected_image="bench/small:v1")  # type: ignore[arg-type]
