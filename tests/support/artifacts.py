"""Image artifacts as builds upload them, and as attackers would: for action-pull-image's artifact tests and
bench.

- `upload_artifact_zip`: a zip written the way upload-artifact v4 writes one (streamed, so every entry
  has a data descriptor; deflate at level 6 by default; zip64 when needed; unix modes).
- `gzip_file` / `zstd_file`: the compressed tars builds upload (`docker save | gzip`, `| zstd`).
- `retag_archive`: a `docker save` tar whose manifest.json and repositories claim other tags.
- `write_docker_archive`: a docker-archive tar made by hand, streamed to disk (for large synthetic
  images): one layer of seeded random bytes, config, then manifest.json and repositories last, as
  `docker save` and `podman save` order them.
- hostile zips: `zip_with_symlink`, `zip_with_lying_size`, `zip_bomb`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import shutil
import stat
import struct
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20


class _Unseekable(io.RawIOBase):
    """What upload-artifact's zip stream writes into: no seeking, so zipfile writes data descriptors."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._sink.write(data)


def _entry(name: str, *, level: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2024, 6, 1, 12, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED if level > 0 else zipfile.ZIP_STORED
    info._compresslevel = level or None  # type: ignore[attr-defined]  # zipfile applies no archive-wide level to a ZipInfo
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def upload_artifact_zip(dest: Path, files: Mapping[str, bytes | Path], *, level: int = 6) -> Path:
    """Zip `files` (name -> bytes, or a file to stream) into `dest` as upload-artifact v4 does."""
    with dest.open("wb") as raw, zipfile.ZipFile(_Unseekable(raw), "w") as archive:
        for name, content in files.items():
            info = _entry(name, level=level)
            with archive.open(info, "w", force_zip64=True) as out:
                if isinstance(content, Path):
                    with content.open("rb") as source:
                        shutil.copyfileobj(source, out, CHUNK)
                else:
                    out.write(content)
    return dest


def gzip_file(source: Path, dest: Path) -> Path:
    with source.open("rb") as src, gzip.open(dest, "wb", compresslevel=6) as out:
        shutil.copyfileobj(src, out, CHUNK)
    return dest


def zstd_file(source: Path, dest: Path, *, level: int = 3) -> Path:
    import zstandard

    with source.open("rb") as src, dest.open("wb") as out:
        zstandard.ZstdCompressor(level=level).copy_stream(src, out)
    return dest


# --- docker-archive tars ---------------------------------------------------------------------------------


def retag_archive(source: Path, dest: Path, repo_tags: Iterable[str]) -> Path:
    """Copy a `docker save` tar, its manifest.json and repositories rewritten to claim `repo_tags`."""
    tags = list(repo_tags)
    with tarfile.open(source) as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        manifest = json.loads(_member_bytes(src, "manifest.json"))
        for member in src.getmembers():
            if member.name == "manifest.json":
                manifest[0]["RepoTags"] = tags
                _add_bytes(out, "manifest.json", json.dumps(manifest).encode())
            elif member.name == "repositories":
                layer_id = next(iter(next(iter(json.loads(_member_bytes(src, "repositories")).values())).values()), "")
                repositories: dict[str, dict[str, str]] = {}
                for tag in tags:
                    repository, _, name = tag.rpartition(":")
                    repositories.setdefault(repository, {})[name] = layer_id
                _add_bytes(out, "repositories", json.dumps(repositories).encode())
            else:
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
    return dest


def _member_bytes(archive: tarfile.TarFile, name: str) -> bytes:
    handle = archive.extractfile(name)
    assert handle is not None
    return handle.read()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def _header(name: str, size: int, *, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type, info.linkname = size, 0o644, 0, kind, link
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _padding(size: int) -> bytes:
    return bytes(-size % 512)


def random_bytes(rng: random.Random, size: int) -> Iterable[bytes]:
    """`size` seeded random bytes in chunks: incompressible, like compressed layers in a real image."""
    left = size
    while left:
        step = min(CHUNK, left)
        yield rng.randbytes(step)
        left -= step


def write_docker_archive(
    dest: Path, repo_tag: str | None, *, layer_bytes: int, seed: int = 0, labels: Mapping[str, str] | None = None
) -> tuple[Path, str]:
    """A loadable docker-archive of one image with a `layer_bytes` random file, streamed; returns (tar, image id)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    payload_header = _header("blob", layer_bytes)
    layer_size = len(payload_header) + layer_bytes + len(_padding(layer_bytes)) + 1024
    layer_name = f"{seed:064x}/layer.tar"
    diff = hashlib.sha256()
    with dest.open("wb") as out:
        out.write(_header(layer_name, layer_size))
        for piece in (payload_header, *random_bytes(rng, layer_bytes), _padding(layer_bytes), bytes(1024)):
            diff.update(piece)
            out.write(piece)
        out.write(_padding(layer_size))
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "2024-06-01T12:00:00Z",
                "config": {"Labels": dict(labels or {}), "Cmd": ["/blob"]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff.hexdigest()}"]},
                "history": [{"created": "2024-06-01T12:00:00Z", "created_by": "charon-ci bench"}],
            },
            sort_keys=True,
        ).encode()
        config_hex = hashlib.sha256(config).hexdigest()
        tags = [repo_tag] if repo_tag else []
        manifest = json.dumps([{"Config": f"{config_hex}.json", "RepoTags": tags, "Layers": [layer_name]}]).encode()
        repositories: dict[str, dict[str, str]] = {}
        if repo_tag:
            repository, _, tag = repo_tag.rpartition(":")
            repositories[repository] = {tag: f"{seed:064x}"}
        for name, data in (
            (f"{config_hex}.json", config),
            ("manifest.json", manifest),
            ("repositories", json.dumps(repositories).encode()),
        ):
            out.write(_header(name, len(data)) + data + _padding(len(data)))
        out.write(bytes(1024))
    return dest, f"sha256:{config_hex}"


# --- hostile zips ----------------------------------------------------------------------------------------


def zip_with_entries(dest: Path, entries: Iterable[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    """A zip of raw entries (ZipInfo as given: names, modes and types are not checked here)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return dest


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    """A zip entry that unzip would create as a symbolic link to `target`."""
    info = zipfile.ZipInfo(name, date_time=(2024, 6, 1, 12, 0, 0))
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def zip_bomb(dest: Path, *, expanded: int) -> Path:
    """An honest zip bomb: one tar of `expanded` zero bytes, deflated at level 9 (about 1000:1)."""
    header = _header("zeros", expanded)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        info = _entry("image.tar", level=9)
        with archive.open(info, "w", force_zip64=True) as out:
            out.write(header)
            zeros = bytes(CHUNK)
            left = expanded + len(_padding(expanded)) + 1024
            while left:
                out.write(zeros[: min(CHUNK, left)])
                left -= min(CHUNK, left)
    return dest


def zip_with_lying_size(source_zip: Path, dest: Path, *, declared: int) -> Path:
    """A copy of a one-entry zip (written seekable, so sizes live in the headers) whose local and central
    headers declare `declared` uncompressed bytes: the inflated stream is longer than it says."""
    data = bytearray(source_zip.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    assert local >= 0 and central >= 0 and data.count(b"PK\x01\x02") == 1
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    dest.write_bytes(bytes(data))
    return dest
