"""GitHub's package-version JSON (`GET .../packages/container/NAME/versions`, one page or one version) as
`PackageVersion`s: what a listed version must hold is said once, here, for the live listing, a single read,
a metrics dump and an offline snapshot alike.

The shape is a msgspec struct: JSON text decodes straight into it in C, and the members pruning never reads
(urls, `updated_at`, `package_type`, anything GitHub adds) are skipped without becoming objects. Reading a
snapshot this way takes 12,800 instructions a version, where decoding it into dicts and checking those took
33,500 (valgrind, 10,000 versions).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from charon_ci.prune.model import PackageVersion

__all__ = ["NotAVersion", "VersionRow", "decode_rows", "parse_versions", "row_from_item", "versions_from_rows"]


class _Container(msgspec.Struct, frozen=True, gc=False):
    tags: tuple[str, ...] = ()


class _Metadata(msgspec.Struct, frozen=True, gc=False):
    container: _Container = _Container()


# A version without tags may leave out `metadata` or `container` (the default stands for them); one present
# must be an object, and `tags` a list of strings. An id is an integer (JSON true is not), a digest is text.
class VersionRow(msgspec.Struct, frozen=True, gc=False):
    """The members of one listed version that pruning reads; `created_at`, not `updated_at`, dates it."""

    id: int
    name: Annotated[str, msgspec.Meta(min_length=1)]
    created_at: datetime
    metadata: _Metadata = _Metadata()


_ROWS = msgspec.json.Decoder(list[VersionRow])


class NotAVersion(ValueError):
    """An item that is not a container package version; `detail` says which member is wrong and how."""

    def __init__(self, position: int, detail: str) -> None:
        super().__init__(f"item {position} is not a container package version ({detail})")
        self.position = position
        self.detail = detail


def decode_rows(text: str) -> list[VersionRow]:
    """The rows of a JSON list of versions. Raises msgspec.DecodeError (its ValidationError says where)."""
    return _ROWS.decode(text)


def row_from_item(item: object, position: int) -> VersionRow:
    """One already decoded item (a dict) as a row, held to the same rules; NotAVersion otherwise."""
    try:
        row = msgspec.convert(item, VersionRow)
    except msgspec.ValidationError as exc:
        raise NotAVersion(position, _detail(exc)) from None
    # Python's JSON decoder makes a lone surrogate of an escape like "\udcff"; msgspec's refuses that, as
    # text no UTF-8 can hold (the plan file could not be written). Held to the same rule here.
    tags = row.metadata.container.tags
    members = [("name", row.name), *((f"metadata.container.tags[{n}]", tag) for n, tag in enumerate(tags))]
    for member, text in members:
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                raise NotAVersion(position, f"a lone UTF-16 surrogate - at `{member}`") from None
    return row


def _detail(exc: msgspec.ValidationError) -> str:
    # msgspec's text names the expected type and the member's path (`$.metadata.container.tags[1]`), words and
    # names from this schema only; the item's own text never appears in it.
    return str(exc).replace(" - at `$`", "").replace("`$.", "`")


def parse_versions(items: Any, source: str) -> list[PackageVersion]:
    """Package versions from decoded JSON (a list of version objects).

    Raises ValueError naming `source` and the first item that is not a container package version."""
    if not isinstance(items, list):
        raise ValueError(f"{source}: expected a JSON list of package versions")
    try:
        rows = [row_from_item(item, position) for position, item in enumerate(items)]
    except NotAVersion as exc:
        raise ValueError(f"{source}: {exc}") from None
    return versions_from_rows(rows, source)


def versions_from_rows(rows: Iterable[VersionRow], source: str) -> list[PackageVersion]:
    """The versions the rows list, each once. Raises ValueError naming `source` when two rows share an id or
    a digest but not both."""
    by_id: dict[int, PackageVersion] = {}
    digests: set[str] = set()
    last_created: datetime | None = None
    for position, row in enumerate(rows):
        version_id, digest, created, tags = row.id, row.name, row.created_at, row.metadata.container.tags
        # Versions listed one after another often share their push's second (an index, its platforms and
        # attestations): they share one datetime too, 48 bytes less each.
        if created == last_created:
            created = last_created
        else:
            if created.tzinfo is None:  # GitHub writes `Z`; a hand-made file may leave the zone out
                created = created.replace(tzinfo=UTC)
            last_created = created
        # Pages listed while another run deletes can repeat a version: merge its tags (judging the union only
        # ever keeps more). Two versions sharing an id or a digest would mix up their verdicts: refused.
        earlier = by_id.get(version_id)
        if earlier is not None and earlier.digest == digest:
            by_id[version_id] = msgspec.structs.replace(earlier, tags=tuple(dict.fromkeys(earlier.tags + tags)))
            continue
        if earlier is not None or digest in digests:
            raise ValueError(f"{source}: item {position} repeats the id or digest of another version")
        by_id[version_id] = PackageVersion(version_id, digest, tags, created)
        digests.add(digest)
    return list(by_id.values())
