"""Load a downloaded image artifact into the engine: read the zip safely, find the image tar in it by its
bytes, decompress it if needed, and stream it through the tag gate into the engine's load.

What builds upload: a zip (upload-artifact) holding a `.tar`, `.tar.gz` or `.tar.zst`, or that file alone
(`archive: false`). The tar is never written to disk and never held in memory: zip member -> inflate ->
gunzip/unzstd -> gate -> HTTP chunks to `/images/load`, about two chunks in flight. Compressed tars are
decompressed here, not by the engine: podman's Docker API loads only plain tars, and the tag check has to
read the tar anyway.

Refused before anything is sent: zip entries with absolute paths, `..`, links or special files, encrypted
or unknown methods, two image tars, or a tar declared larger than the expansion cap. Refused mid-stream
(the load is cut off, so nothing is loaded): data expanding past the cap, a corrupt stream, or a tar that
would set a tag other than the expected image's (see `imagetar`).
"""

from __future__ import annotations

import functools
import gzip
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from charon_ci.pull.artifact import ArchiveError, DownloadedArtifact
from charon_ci.pull.imagetar import BLOCK, ImageTarGate, Reader, TagPolicy, TarFindings, header_checksum_ok, shown

if TYPE_CHECKING:
    from docker.api.client import APIClient

__all__ = [
    "DEFAULT_LOAD_TIMEOUT",
    "EXPANSION_RATIO",
    "ArchiveError",
    "LoadedImage",
    "default_expansion_cap",
    "load_artifact",
    "open_image_tar",
]

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_MAGIC = b"BZh"

# A docker-save tar deflates 2-4x (its layers are uncompressed tars); zip bombs reach ~1000x per layer.
EXPANSION_RATIO = 100
MIN_EXPANSION_CAP = 64 * 1024 * 1024
MAX_ZIP_ENTRIES = 10_000
ZSTD_MAX_WINDOW = 32 * 1024 * 1024  # zstd's own levels 1-19 use at most 8 MiB; `--long=31` would want 2 GiB
# The engine reads the whole archive before it answers; docker-py's 60 s default breaks big loads.
DEFAULT_LOAD_TIMEOUT = 3600.0
_ALLOWED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_DRIVE = re.compile(r"^[A-Za-z]:")
_LOADED_ID = "Loaded image ID:"
_LOADED = "Loaded image:"
_CONFIG_HEX = re.compile(r"(?:^|/)(?:sha256/)?([a-f0-9]{64})(?:\.json)?$")
_LISTED = 10


@dataclass(frozen=True)
class LoadedImage:
    image_id: str
    repo_tags: tuple[str, ...]


def default_expansion_cap(artifact_size: int) -> int:
    """The most tar bytes an artifact of `artifact_size` may expand to (EXPANSION_RATIO, at least 64 MiB)."""
    return max(MIN_EXPANSION_CAP, EXPANSION_RATIO * artifact_size)


# --- reading ---------------------------------------------------------------------------------------------


class _Capped:
    """A reader that turns any failure into `ArchiveError` and refuses to expand past `cap` bytes."""

    def __init__(self, inner: Reader, cap: int, what: str) -> None:
        self._inner = inner
        self._cap = cap
        self._what = what
        self.total = 0

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self._inner.read(size)
        except ArchiveError:
            raise
        except (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile) as bad:
            raise ArchiveError(f"reading {self._what} failed: {bad}") from None
        except Exception as bad:  # zstandard.ZstdError and kin: any broken stream is a refusal
            raise ArchiveError(f"reading {self._what} failed: {type(bad).__name__}: {bad}") from None
        self.total += len(data)
        if self.total > self._cap:
            raise ArchiveError(
                f"{self._what} expands past {self._cap} bytes, the cap for this artifact (a zip bomb, or an image "
                "far larger than its artifact); refused: nothing was loaded"
            )
        return data


def _compression(head: bytes) -> str | None:
    """'tar', 'gzip' or 'zstd' for what `head` starts with; None for anything else."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if len(head) >= BLOCK and header_checksum_ok(head[:BLOCK]):
        return "tar"
    return None


def _decompressed(raw: IO[bytes], kind: str) -> Reader:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(
            raw, read_across_frames=True, closefd=False
        )
    return raw


def _read_up_to(reader: Reader, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left > 0:
        piece = reader.read(left)
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def _sniff(opener: Callable[[], IO[bytes]]) -> str | None:
    """The compression of an image tar behind `opener`, or None when its bytes are not a tar (compressed or not)."""
    with opener() as raw:
        head = raw.read(BLOCK)
    kind = _compression(head)
    if kind in (None, "tar"):
        return kind
    with opener() as raw:
        try:
            first = _read_up_to(_decompressed(raw, kind), BLOCK)
        except Exception:  # a broken stream is simply not an image tar
            return None
    return kind if header_checksum_ok(first) else None


def _zip_entry_count(path: Path) -> int | None:
    """Entries the zip's end record declares, read before `zipfile` builds an object per entry."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        end = handle.tell()
        start = max(0, end - (22 + 0xFFFF))
        handle.seek(start)
        tail = handle.read()
        at = tail.rfind(EMPTY_ZIP_MAGIC)
        if at < 0 or len(tail) - at < 22:
            return None
        entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
        if entries != 0xFFFF or at < 20 or tail[at - 20 : at - 16] != b"PK\x06\x07":
            return int(entries)
        zip64_end = struct.unpack("<Q", tail[at - 12 : at - 4])[0]
        handle.seek(zip64_end)
        record = handle.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            return None
        return int(struct.unpack("<Q", record[32:40])[0])


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\0" in name:
        return "has a NUL byte in its name"
    slashed = name.replace("\\", "/")
    if slashed.startswith("/") or _DRIVE.match(slashed):
        return "is an absolute path"
    if ".." in slashed.split("/"):
        return "climbs out of the archive with '..'"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in _ALLOWED_METHODS:
        return f"uses compression method {info.compress_type} (upload-artifact writes deflate or stored)"
    if info.create_system == 3:  # unix: the high 16 bits are st_mode
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            return "is a symbolic link"
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            return "is a special file (device, fifo or socket)"
    return None


def _choose_member(archive: zipfile.ZipFile, member: str | None, cap: int) -> tuple[zipfile.ZipInfo, str]:
    """The entry holding the image tar, and its compression; refuses unsafe zips before reading any data."""
    seen: set[str] = set()
    for info in archive.infolist():
        problem = _entry_problem(info)
        if problem is not None:
            raise ArchiveError(
                f"the artifact's zip entry {shown(info.filename)} {problem}; refused: nothing was loaded"
            )
        if info.filename in seen:
            raise ArchiveError(f"the artifact's zip holds {shown(info.filename)} twice; refused: nothing was loaded")
        seen.add(info.filename)
    files = [info for info in archive.infolist() if not info.is_dir()]
    listed = ", ".join(shown(info.filename) for info in files[:_LISTED]) + (" ..." if len(files) > _LISTED else "")
    if not files:
        raise ArchiveError("the artifact's zip holds no files")
    if member is not None:
        wanted = member.removeprefix("./")
        found = [info for info in files if info.filename.removeprefix("./") == wanted]
        if not found:
            raise ArchiveError(f"the artifact's zip has no file {shown(member)} (artifact-file); it holds: {listed}")
        chosen = found[0]
        kind = _sniff(lambda: archive.open(chosen))
        if kind is None:
            raise ArchiveError(
                f"the artifact's {shown(chosen.filename)} is not an image tar (plain, gzip or zstd), by its bytes"
            )
    else:
        sniffed = [(info, _sniff(functools.partial(archive.open, info))) for info in files]
        tars = [(info, kind) for info, kind in sniffed if kind is not None]
        if not tars:
            raise ArchiveError(f"the artifact's zip holds no image tar (plain, gzip or zstd); it holds: {listed}")
        if len(tars) > 1:
            names = ", ".join(shown(info.filename) for info, _ in tars[:_LISTED])
            raise ArchiveError(
                f"the artifact's zip holds {len(tars)} image tars ({names}); name the one to load with artifact-file"
            )
        chosen, kind = tars[0]
    if chosen.file_size > cap:
        raise ArchiveError(
            f"the artifact's {shown(chosen.filename)} declares {chosen.file_size} bytes from {chosen.compress_size} "
            f"compressed, past the {cap}-byte expansion cap (a zip bomb, or raise the cap); refused: nothing was loaded"
        )
    return chosen, kind


def open_image_tar(path: Path, *, member: str | None, cap: int, stack: ExitStack) -> tuple[Reader, str]:
    """A reader of the plain image tar inside the artifact at `path`, and words for where it came from.

    Everything opened is registered on `stack`. The reader raises `ArchiveError` on any failure and once
    it has produced more than `cap` bytes.
    """
    with path.open("rb") as handle:
        head = handle.read(BLOCK)
    if head.startswith(EMPTY_ZIP_MAGIC):
        raise ArchiveError("the artifact is an empty zip: the build uploaded no files")
    if head.startswith(ZIP_MAGIC):
        entries = _zip_entry_count(path)
        if entries is not None and entries > MAX_ZIP_ENTRIES:
            raise ArchiveError(f"the artifact's zip declares {entries} entries, more than an image artifact has")
        try:
            archive = stack.enter_context(zipfile.ZipFile(path))
            chosen, kind = _choose_member(archive, member, cap)
            raw: IO[bytes] = stack.enter_context(archive.open(chosen))
        except zipfile.BadZipFile as bad:
            raise ArchiveError(f"the artifact is not a readable zip: {bad}") from None
        what = f"the artifact's {shown(chosen.filename)}"
    else:
        sniffed = _sniff(lambda: path.open("rb"))
        if sniffed is None:
            hint = ""
            if head.startswith(XZ_MAGIC) or head.startswith(BZIP2_MAGIC):
                hint = " (xz and bzip2 are not accepted: compress with gzip or zstd)"
            raise ArchiveError(
                f"the artifact is neither a zip nor an image tar (plain, gzip or zstd){hint}; its first bytes are "
                f"{shown(head[:8])}"
            )
        kind = sniffed
        raw = stack.enter_context(path.open("rb"))
        what = "the artifact's file (uploaded unzipped)"
    reader = _decompressed(raw, kind)
    if kind != "tar":
        what = f"{what} ({kind})"
    return _Capped(reader, cap, what), what


# --- loading ---------------------------------------------------------------------------------------------


def _send(engine: APIClient, chunks: Iterator[bytes], timeout: float) -> list[dict[str, Any]]:
    """POST the chunks to the engine's load and collect its answer; errors inside the answer raise."""
    import requests
    from docker.errors import APIError

    previous = engine.timeout
    engine.timeout = timeout  # docker-py applies the client's timeout to every socket read of the call
    try:
        events = [event for event in engine.load_image(chunks, quiet=True) if isinstance(event, dict)]
    except ArchiveError:
        raise
    except APIError as failure:
        raise ArchiveError(f"the engine refused the image: {failure.explanation or failure}") from None
    except requests.exceptions.RequestException as failure:
        raise ArchiveError(f"the engine's load failed: {type(failure).__name__}: {failure}") from None
    finally:
        engine.timeout = previous
    for event in events:
        message = event.get("error") or (event.get("errorDetail") or {}).get("message")
        if message:
            raise ArchiveError(f"the engine could not load the image: {message}")
    return events


def _image_id(engine: APIClient, reference: str) -> str | None:
    from docker.errors import NotFound

    try:
        found = engine.inspect_image(reference)
    except NotFound:
        return None
    identifier = found.get("Id") if isinstance(found, dict) else None
    return identifier if isinstance(identifier, str) else None


def _loaded(engine: APIClient, events: list[dict[str, Any]], findings: TarFindings, policy: TagPolicy) -> LoadedImage:
    """What was loaded, from the engine's own words, checked against what the gate saw."""
    ids: set[str] = set()
    names: list[str] = []
    for event in events:
        for line in str(event.get("stream") or "").splitlines():
            line = line.strip()
            if line.startswith(_LOADED_ID):
                ids.add(line[len(_LOADED_ID) :].strip())
            elif line.startswith(_LOADED):
                loaded = line[len(_LOADED) :].strip()
                if loaded.startswith("sha256:"):  # podman names an untagged image by its id
                    ids.add(loaded)
                else:
                    if not policy.engine_named(loaded, findings.accepted_names):
                        raise ArchiveError(
                            f"the engine says it tagged the loaded image {shown(loaded)}, a name the archive check did "
                            "not accept; the image is loaded, check the engine's tags"
                        )
                    names.append(loaded)
    for name in names:
        identifier = _image_id(engine, name)
        if identifier is None:
            raise ArchiveError(f"the engine said it loaded {shown(name)}, but has no such image")
        ids.add(identifier)
    if not ids:  # an engine that says nothing: the image id is the digest of the config the tar named
        for config in findings.config_paths:
            match = _CONFIG_HEX.search(config)
            identifier = _image_id(engine, f"sha256:{match.group(1)}") if match else None
            if identifier is not None:
                ids.add(identifier)
    if len(ids) != 1:
        said = "; ".join(str(event.get("stream", "")).strip() for event in events)[:300]
        raise ArchiveError(f"the engine's answer does not name one loaded image ({shown(said)})")
    return LoadedImage(image_id=ids.pop(), repo_tags=tuple(findings.repo_tags or names))


def load_artifact(
    engine: APIClient,
    artifact: DownloadedArtifact,
    *,
    member: str | None,
    expected_image: str,
    max_expanded_size: int | None = None,
    load_timeout: float = DEFAULT_LOAD_TIMEOUT,
    chunk_size: int = 1 << 20,
) -> LoadedImage:
    """Stream the image tar in `artifact` into the engine's load; tags other than `expected_image`'s refused.

    `member` names the zip entry to load (artifact-file); by default the single entry whose bytes are an
    image tar (plain, gzip or zstd), whatever its name. An unzipped artifact is that file itself, and
    `member` does not apply. `max_expanded_size` caps the tar's size (default: `default_expansion_cap`).
    Raises `ArchiveError`; on any refusal nothing is loaded and no tag is moved.
    """
    policy = TagPolicy.for_image(expected_image)
    cap = max_expanded_size if max_expanded_size is not None else default_expansion_cap(artifact.size)
    with ExitStack() as stack:
        tar, _ = open_image_tar(artifact.path, member=member, cap=cap, stack=stack)
        gate = ImageTarGate(tar, policy, chunk_size=chunk_size)
        events = _send(engine, gate.stream(), load_timeout)
    return _loaded(engine, events, gate.findings, policy)
