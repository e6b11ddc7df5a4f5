"""A streaming gate for image tars (`docker save` / `podman save` / OCI layout): it passes the tar through
byte for byte and refuses it before the engine sees any member that would name an image otherwise than
expected.

Loading a tar moves every tag its `manifest.json` (or legacy `repositories`, or OCI `index.json`
annotations) names onto the loaded image, whoever owned the tag before. Those members come *last* in what
`docker save` and `podman save` write, after gigabytes of layers, so a check before loading would need a
first pass over the whole tar. Instead the gate holds each naming member back until it has read and judged
it: the engine gets every layer as it streams, but a refused tar is cut off before its names arrive, and an
engine cannot load an archive whose manifest it never received (it needs the complete archive first).

Member names are judged as Go's `archive/tar` reads them (docker and podman are Go): USTAR prefixes,
GNU long names, PAX `path`/`size` records; a naming member must be a plain file (a link named
`manifest.json` could point the engine at a file the gate never judged).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from charon_ci import oci
from charon_ci.pull.artifact import ArchiveError

BLOCK = 512
# Members that name images when loaded: docker-archive, the legacy v1 layout, and OCI image layouts.
MANIFEST_JSON = "manifest.json"
REPOSITORIES = "repositories"
OCI_INDEX_JSON = "index.json"
NAMING_MEMBERS = frozenset({MANIFEST_JSON, REPOSITORIES, OCI_INDEX_JSON})
MAX_NAMING_MEMBER = 4 * 1024 * 1024  # held in memory while judged; real ones are a few hundred bytes
MAX_EXTENDED_HEADER = 1024 * 1024  # PAX records and GNU long names, also held in memory
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"

_REGULAR = frozenset({b"0", b"\0", b"7"})
_LINKS = frozenset({b"1", b"2"})
_PAX_FILE, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK = b"x", b"g", b"L", b"K"
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]+)?$")
_SHOWN = 200


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


# --- image names -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageName:
    """An image reference normalised as the Docker engine does (`charon:x` is `docker.io/library/charon:x`)."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def tagged(self) -> str | None:
        """`domain/path:tag`, the form two names are compared in; None when there is no tag."""
        return None if self.tag is None else f"{self.repository}:{self.tag}"


def parse_image_name(text: str) -> ImageName:
    """Parse `[domain/]path[:tag][@digest]` the way the engine does; ValueError when it is not one."""
    rest, _, digest = text.partition("@")
    if digest and not oci.is_digest(digest):
        raise ValueError(f"{digest!r} is not a digest")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not oci.is_tag(tag):
            raise ValueError(f"{tag!r} is not a tag")
    first, sep, remainder = rest.partition("/")
    # The engine's rule: the first component is a registry when it has a dot or a port, is `localhost`,
    # or has capitals (repository paths cannot).
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        if not _DOMAIN_RE.match(first):
            raise ValueError(f"{first!r} is not a registry host")
        domain, path = first, remainder
    else:
        domain, path = "docker.io", rest
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if not oci.is_repository(path) or len(f"{domain}/{path}") > 255:
        raise ValueError(f"{path!r} is not a repository name")
    return ImageName(domain, path, tag, digest or None)


def shown(text: object) -> str:
    """Untrusted text (artifact contents) for a message: quoted, escaped, bounded."""
    value = repr(text)
    return value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "..."


@dataclass(frozen=True)
class TagPolicy:
    """Which tag a load may set: `expected`'s own (none when it is given by digest alone)."""

    expected: ImageName

    @classmethod
    def for_image(cls, expected_image: str) -> TagPolicy:
        try:
            return cls(parse_image_name(expected_image))
        except ValueError as bad:
            raise ArchiveError(f"the expected image {shown(expected_image)} is not an image reference: {bad}") from None

    def check(self, claimed: object, where: str) -> str:
        """`claimed` as written, when loading it may set that tag; else the refusal."""
        if not isinstance(claimed, str):
            raise ArchiveError(f"{where} names an image with {shown(claimed)}, which is not a string")
        try:
            name = parse_image_name(claimed)
        except ValueError as bad:
            raise ArchiveError(f"{where} names the image {shown(claimed)}, which is not a reference: {bad}") from None
        if name.tag is None or name.digest is not None:
            raise ArchiveError(f"{where} names {shown(claimed)}, which is not a plain name:tag")
        if name.tagged != self.expected.tagged:
            wanted = (
                f"only {self.expected.tagged}" if self.expected.tagged else "no tag (the image is expected by digest)"
            )
            raise ArchiveError(
                f"{where} would tag the loaded image {shown(claimed)}, overwriting that tag; the artifact may set "
                f"{wanted}. Refused: nothing was loaded."
            )
        return claimed

    def engine_named(self, reported: str, accepted: Iterable[str]) -> bool:
        """Whether the engine's name for what it loaded is one the gate accepted. Engines file a name
        without a registry differently: Docker under `docker.io/`, podman under `localhost/`."""
        try:
            name = parse_image_name(reported).tagged
        except ValueError:
            return False
        forms: set[str | None] = set()
        for raw in accepted:
            parsed = parse_image_name(raw)
            forms.add(parsed.tagged)
            if parsed.domain == "docker.io" and not raw.startswith(("docker.io/", "index.docker.io/")):
                forms.add(parse_image_name(f"localhost/{raw}").tagged)
        return name is not None and name in forms

    def check_tag_only(self, claimed: str, where: str) -> str:
        """An OCI `ref.name` that is a bare tag: the engine gives it the expected image's repository at best."""
        if claimed != self.expected.tag:
            raise ArchiveError(
                f"{where} names the tag {shown(claimed)}; the artifact may set only "
                f"{self.expected.tag or 'no tag'}. Refused: nothing was loaded."
            )
        return claimed


# --- what the gate saw -----------------------------------------------------------------------------------


@dataclass
class TarFindings:
    """Names the tar gave its image, and where its config lives (its digest is the image id)."""

    repo_tags: list[str] = field(default_factory=list)  # manifest.json's RepoTags, as written
    accepted_names: list[str] = field(default_factory=list)  # every name any naming member gave, as written
    config_paths: list[str] = field(default_factory=list)
    images: int = 0
    naming_members: list[str] = field(default_factory=list)
    bytes_passed: int = 0


# --- the gate --------------------------------------------------------------------------------------------


def _octal_or_binary(field_bytes: bytes, what: str, offset: int) -> int:
    if field_bytes[:1] and field_bytes[0] & 0x80:  # GNU base-256: big files and odd values
        value = int.from_bytes(field_bytes[1:], "big") | ((field_bytes[0] & 0x3F) << (8 * (len(field_bytes) - 1)))
        if field_bytes[0] & 0x40:
            raise ArchiveError(f"the tar's {what} at byte {offset} is negative")
        return value
    text = field_bytes.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArchiveError(f"the tar's {what} at byte {offset} is not a number: {shown(text)}") from None


def header_checksum_ok(header: bytes) -> bool:
    """True when `header` is a tar header block (its checksum field matches, unsigned or signed)."""
    if len(header) != BLOCK:
        return False
    text = header[148:156].split(b"\0", 1)[0].strip(b" ")
    try:
        recorded = int(text, 8)
    except ValueError:
        return False
    unsigned = sum(header[:148]) + 8 * 0x20 + sum(header[156:])
    signed = unsigned - 2 * sum(b for b in header[:148] + header[156:] if b >= 0x80)
    return recorded in (unsigned, signed)


def _cstring(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, offset: int) -> dict[str, str]:
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0 or not data[position:space].isdigit():
            break
        length = int(data[position:space])
        if length <= space - position or position + length > len(data):
            raise ArchiveError(f"the tar's PAX header at byte {offset} is malformed")
        record = data[space + 1 : position + length - 1]  # without the trailing newline
        key, eq, value = record.partition(b"=")
        if not eq:
            raise ArchiveError(f"the tar's PAX header at byte {offset} is malformed")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def normalised_member_name(name: str) -> str:
    """The path a member lands on once extracted (`./manifest.json`, `/manifest.json` -> `manifest.json`)."""
    return posixpath.normpath("/" + name).lstrip("/")


class ImageTarGate:
    """Streams `source` (a plain tar) as chunks, judging naming members before they are passed on.

    Iterate `stream()`; read `findings` after it ends. Any refusal raises `ArchiveError` from inside the
    iteration, so whoever is sending the chunks stops mid-archive.
    """

    def __init__(self, source: Reader, policy: TagPolicy, *, chunk_size: int = 1 << 20) -> None:
        self._source = source
        self._policy = policy
        self._chunk = chunk_size
        self._offset = 0  # bytes read from source
        self._links: set[str] = set()
        self.findings = TarFindings()

    def _read(self, size: int) -> bytes:
        """Exactly `size` bytes, or fewer only at the end of the source."""
        parts: list[bytes] = []
        left = size
        while left > 0:
            piece = self._source.read(min(left, self._chunk))
            if not piece:
                break
            parts.append(piece)
            left -= len(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._offset += len(data)
        return data

    def _need(self, size: int, what: str) -> bytes:
        data = self._read(size)
        if len(data) != size:
            raise ArchiveError(f"the tar ends in the middle of {what} (after {self._offset} bytes)")
        return data

    def stream(self) -> Iterator[bytes]:
        pending = bytearray()  # small pieces (headers, small files) go out together
        pax: dict[str, str] = {}
        long_name: str | None = None
        while True:
            start = self._offset
            header = self._read(BLOCK)
            if not header:
                raise ArchiveError(f"the tar ends after {start} bytes without its end-of-archive marker")
            if len(header) < BLOCK:
                raise ArchiveError(f"the tar ends in the middle of a header (after {self._offset} bytes)")
            if header == bytes(BLOCK):
                pending += header
                yield from self._finish(pending)
                return
            if not header_checksum_ok(header):
                raise ArchiveError(f"the data at byte {start} of the tar is not a tar header (bad checksum)")
            typeflag = header[156:157]
            size = _octal_or_binary(header[124:136], "member size", start)
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    raise ArchiveError(f"the tar's PAX size before byte {start} is not a number") from None
            padded = size + (-size % BLOCK)
            if typeflag in (_PAX_FILE, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK):
                if size > MAX_EXTENDED_HEADER:
                    raise ArchiveError(f"the tar's extended header at byte {start} is {size} bytes, past the limit")
                data = self._need(padded, "an extended header")
                pending += header
                pending += data
                if typeflag == _PAX_FILE:
                    pax = _pax_records(data[:size], start)
                elif typeflag == _GNU_LONGNAME:
                    long_name = _cstring(data[:size])
                # a global PAX header applies to nobody here: Go's reader hands it over as an entry
                continue
            name = self._member_name(header, pax, long_name)
            pax, long_name = {}, None
            landed = normalised_member_name(name)
            self._refuse_through_link(landed, name)
            if typeflag in _LINKS:
                self._links.add(landed)
            if landed in NAMING_MEMBERS:
                if typeflag not in _REGULAR:
                    raise ArchiveError(
                        f"the tar's {shown(name)} is a link or special file, not a plain file; refused: a link "
                        "could name images the check never saw"
                    )
                if size > MAX_NAMING_MEMBER:
                    raise ArchiveError(f"the tar's {shown(name)} is {size} bytes, far larger than an image needs")
                body = self._need(padded, shown(name))
                self._judge(landed, body[:size], name)
                self.findings.naming_members.append(name)
                pending += header
                pending += body
                continue
            pending += header
            if padded <= self._chunk:
                pending += self._need(padded, f"the member {shown(name)}")
                if len(pending) >= self._chunk:
                    yield bytes(pending)
                    self.findings.bytes_passed += len(pending)
                    pending.clear()
                continue
            yield bytes(pending)
            self.findings.bytes_passed += len(pending)
            pending.clear()
            left = padded
            while left:
                piece = self._source.read(min(left, self._chunk))
                if not piece:
                    raise ArchiveError(f"the tar ends in the middle of the member {shown(name)}")
                self._offset += len(piece)
                left -= len(piece)
                self.findings.bytes_passed += len(piece)
                yield piece

    def _finish(self, pending: bytearray) -> Iterator[bytes]:
        """After the first zero block: the rest must be zeros too (Go stops at two zero blocks, but data
        hidden after one would be read by a reader that stops later)."""
        while True:
            piece = self._source.read(self._chunk)
            if not piece:
                break
            self._offset += len(piece)
            if piece.count(0) != len(piece):
                raise ArchiveError(f"the tar has data after its end-of-archive marker (near byte {self._offset})")
            pending += piece
            if len(pending) >= self._chunk:
                yield bytes(pending)
                self.findings.bytes_passed += len(pending)
                pending.clear()
        if self.findings.images == 0 and not self.findings.naming_members:
            raise ArchiveError(
                "the tar has no manifest.json, repositories or index.json: it is not an image archive "
                "(make it with `docker save` or `podman save`)"
            )
        if pending:
            self.findings.bytes_passed += len(pending)
            yield bytes(pending)

    def _refuse_through_link(self, landed: str, name: str) -> None:
        """A member below a link would be written wherever the link points once extracted (a link `x` to
        `.` turns `x/manifest.json` into `manifest.json`); `docker save` never writes one."""
        parts = landed.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in self._links:
                raise ArchiveError(
                    f"the tar's {shown(name)} lies below the link {shown('/'.join(parts[:depth]))}; refused: "
                    "extracting it would write through the link"
                )

    @staticmethod
    def _member_name(header: bytes, pax: dict[str, str], long_name: str | None) -> str:
        if "path" in pax:
            return pax["path"]
        if long_name is not None:
            return long_name
        name = _cstring(header[0:100])
        # USTAR/PAX headers (magic "ustar\0") carry a prefix; GNU's ("ustar  \0") use that space otherwise.
        if header[257:263] == b"ustar\0":
            prefix = _cstring(header[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        return name

    # --- judging ----------------------------------------------------------------------------------------

    def _judge(self, landed: str, body: bytes, name: str) -> None:
        where = f"the tar's {landed}"
        try:
            document: Any = json.loads(body)
        except ValueError:
            raise ArchiveError(f"{where} is not JSON; refused: the engine's reading of it cannot be checked") from None
        judge: Callable[[Any, str], None] = {
            MANIFEST_JSON: self._judge_manifest,
            REPOSITORIES: self._judge_repositories,
            OCI_INDEX_JSON: self._judge_index,
        }[landed]
        judge(document, where)

    def _accept(self, claimed: object, where: str) -> str:
        name = self._policy.check(claimed, where)
        self.findings.accepted_names.append(name)
        return name

    def _judge_manifest(self, document: Any, where: str) -> None:
        if not isinstance(document, list) or not all(isinstance(entry, dict) for entry in document):
            raise ArchiveError(f"{where} is not a list of images")
        if len(document) != 1:
            raise ArchiveError(f"{where} lists {len(document)} images; an image artifact holds exactly one")
        entry = document[0]
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list):
            raise ArchiveError(f"{where} has RepoTags {shown(tags)}, which is not a list")
        self.findings.repo_tags = [self._accept(tag, where) for tag in tags]
        config = entry.get("Config")
        if isinstance(config, str):
            self.findings.config_paths.append(config)
        self.findings.images = 1

    def _judge_repositories(self, document: Any, where: str) -> None:
        if not isinstance(document, dict):
            raise ArchiveError(f"{where} is not an object of repositories")
        for repository, tags in document.items():
            if not isinstance(tags, dict):
                raise ArchiveError(f"{where} has {shown(tags)} for {shown(repository)}, not an object of tags")
            for tag in tags:
                self._accept(f"{repository}:{tag}", where)

    def _judge_index(self, document: Any, where: str) -> None:
        manifests = document.get("manifests") if isinstance(document, dict) else None
        if not isinstance(manifests, list):
            raise ArchiveError(f"{where} has no list of manifests")
        for descriptor in manifests:
            annotations = descriptor.get("annotations") if isinstance(descriptor, dict) else None
            if not annotations:
                continue
            if not isinstance(annotations, dict):
                raise ArchiveError(f"{where} has annotations {shown(annotations)}, which is not an object")
            full = annotations.get(CONTAINERD_NAME)
            if full is not None:
                self._accept(full, f"{where} ({CONTAINERD_NAME})")
            ref = annotations.get(OCI_REF_NAME)
            if ref is None:
                continue
            if not isinstance(ref, str):
                raise ArchiveError(f"{where} has {OCI_REF_NAME} {shown(ref)}, which is not a string")
            if "/" in ref or ":" in ref or "@" in ref:
                self._accept(ref, f"{where} ({OCI_REF_NAME})")
            else:
                self._policy.check_tag_only(ref, f"{where} ({OCI_REF_NAME})")
