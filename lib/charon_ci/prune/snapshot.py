"""Reading an offline snapshot: the JSON list `GET .../packages/container/NAME/versions` returns, or several
back to back (`gh api --paginate` prints one list a page).

The file is read in chunks and decoded a run of whole versions at a time, straight into `VersionRow`s
(listing.py): a snapshot of 200,000 versions is about 100 MiB of JSON, and holding it whole (then every item
as a dict) cost several times the memory the plan itself needs.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import msgspec

from charon_ci import gha
from charon_ci.prune.listing import VersionRow, decode_rows, row_from_item, versions_from_rows
from charon_ci.prune.model import PackageVersion

SNAPSHOT_MAX_BYTES = 512 * 1024 * 1024
_CHUNK = 1 << 18  # a chunk's versions are decoded at once: 256 KiB of JSON
_MAX_ITEM_CHARS = 16 << 20  # one version is under a kilobyte; past this a decode error is the file's fault
_ACCEPTED = "a JSON file holding the list GET /orgs/OWNER/packages/container/NAME/versions returns"


def load_snapshot(path: Path) -> list[PackageVersion]:
    """Versions from a snapshot file, or InputError naming `snapshot` and what is wrong."""
    try:
        handle = path.open("r", encoding="utf-8", newline="")
    except OSError as exc:
        raise gha.InputError("snapshot", f"{_ACCEPTED} (cannot read it: {exc.strerror})", str(path)) from None
    with handle:
        try:
            if os.fstat(handle.fileno()).st_size > SNAPSHOT_MAX_BYTES:
                raise ValueError("larger than 512 MiB")
            return versions_from_rows(version_rows(handle), "snapshot")
        except OSError as exc:
            raise gha.InputError("snapshot", f"{_ACCEPTED} (cannot read it: {exc.strerror})", str(path)) from None
        except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError and NotAVersion are ValueErrors too
            raise gha.InputError("snapshot", f"{_ACCEPTED} ({_reason(exc)})", str(path)) from None
        except RecursionError:  # arrays nested thousands deep: not a versions list either
            raise gha.InputError("snapshot", f"{_ACCEPTED} (nested too deeply)", str(path)) from None


def _reason(exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg}"
    return str(exc)


def version_rows(handle: TextIO, chunk: int = _CHUNK) -> Iterator[VersionRow]:
    """The versions of one JSON list, or of several back to back, decoded a chunk at a time."""
    # Handed on a batch at a time and flattened in C: resuming a generator for each item cost more.
    return itertools.chain.from_iterable(_version_row_batches(handle, chunk))


def _version_row_batches(handle: TextIO, chunk: int) -> Iterator[list[VersionRow]]:
    """The rows of `version_rows`, in lists.

    Raises NotAVersion for an item that is no version, ValueError for anything else (an empty file, an
    object, trailing junk, more than 512 MiB). Most of a chunk is decoded in one call (see `_bulk_end`); what
    that cannot take (a page boundary, a cut inside an item, odd spacing, an item that is no version) goes
    item by item, so an error names the item and says what is wrong with it."""
    decoder = json.JSONDecoder()
    buffer = ""
    position = 0
    read = 0
    eof = False
    lists = 0
    decoded = 0  # versions decoded so far: the next one's position in the file's lists, for error messages
    bulk_failed_at = -1  # a bulk decode that failed is not tried again before the item it stopped at

    def more() -> bool:
        nonlocal buffer, position, read, eof, bulk_failed_at
        if eof:
            return False
        # At least double what is held: an item larger than a chunk costs O(n log n), not O(n^2).
        text = handle.read(max(chunk, len(buffer) - position))
        read += len(text)
        if read > SNAPSHOT_MAX_BYTES:
            raise ValueError("larger than 512 MiB")
        if not text:
            eof = True
            return False
        bulk_failed_at = max(-1, bulk_failed_at - position)
        buffer = buffer[position:] + text
        position = 0
        return True

    def skip_space() -> bool:
        """Move to the next non-space character; False at the end of the file."""
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                position += 1
            if position < len(buffer):
                return True
            if not more():
                return False

    while skip_space():
        if buffer[position] != "[":
            raise ValueError("expected a JSON list of package versions")
        position += 1
        lists += 1
        first = True
        while True:
            if not skip_space():
                raise ValueError("not JSON: the list does not end")
            if buffer[position] == "]":
                position += 1
                break
            if not first:
                if buffer[position] != ",":
                    raise ValueError("not JSON: expected , or ] between versions")
                position += 1
                if not skip_space():
                    raise ValueError("not JSON: the list does not end")
            first = False
            end = _bulk_end(buffer, position) if position > bulk_failed_at else -1
            # No whole item left in the buffer (the last one is cut): read on first. Decoding the cut item
            # would fail, and a JSONDecodeError numbers its line by counting through the whole buffer.
            while end <= position and position > bulk_failed_at and len(buffer) - position < _MAX_ITEM_CHARS:
                if not more():
                    break
                end = _bulk_end(buffer, position)
            if end > position:
                try:
                    rows = decode_rows(f"[{buffer[position:end]}]")
                except (msgspec.DecodeError, RecursionError):  # a cut inside an item, an item no version
                    bulk_failed_at = end
                else:
                    decoded += len(rows)
                    yield rows
                    position = end
                    continue
            while True:
                try:
                    item, end = decoder.raw_decode(buffer, position)
                except json.JSONDecodeError:
                    if len(buffer) - position < _MAX_ITEM_CHARS and more():
                        continue  # the item goes on in the next chunk
                    raise
                if end == len(buffer) and not isinstance(item, dict | list | str) and more():
                    continue  # a number (or literal) cut at the chunk's end: decode it whole
                break
            position = end
            yield [row_from_item(item, decoded)]
            decoded += 1
    if lists == 0:
        raise ValueError("the file is empty")


def _bulk_end(buffer: str, start: int) -> int:
    """Where the run of whole items from `start` likely ends: the last `},` of the buffer (-1: none).

    `[` + buffer[start:end] + `]` decodes only if that `}` closes an item of this list: a cut inside a
    string leaves it unterminated, a cut inside a nested value leaves a bracket open. So a successful
    decode is exactly the items there; a failed one is left to the item-by-item path."""
    cut = buffer.rfind("},", start)
    return cut + 1 if cut >= 0 else -1
