"""Image tag taxonomy, tag sanitising and OCI labels: the one place that decides what an image is called.

Pure functions of already-parsed data (see `events` for reading a payload). The build and every
`workflow_run` consumer call the same functions with the same facts, so they cannot disagree.

Taxonomy (spec section 3.1), sha7 = the first 7 hex digits of the built commit:

| what was built                      | tags                                   | primary              | kind    |
|-------------------------------------|----------------------------------------|----------------------|---------|
| pull request N (its head commit)    | `pr-N-sha7`                            | same                 | pr      |
| the main branch                     | `latest`, `sha-sha7`                   | `sha-sha7`           | main    |
| the dev branch                      | `dev`, `sha-sha7`                      | `sha-sha7`           | dev     |
| a release version `v1.2.3`          | `v1.2.3`, `1.2` (pre-release: only the first) | `v1.2.3`      | release |
| any other branch or tag name        | `sanitized-name-sha7`                  | same                 | branch  |
| a nightly run created on a UTC date | `nightly`, `nightly-YYYY-MM-DD`        | `nightly-YYYY-MM-DD` | nightly |

How a ref name is classified depends only on the name and, when it is known, whether it is a branch or a
tag (`classify_ref`). A `workflow_run` consumer sees only the name (`head_branch` holds a branch *or* a tag
name), so names whose meaning would depend on the ref type are refused when the ref type says otherwise:
a branch named like a release version, or a tag named like the main or dev branch.
"""

from __future__ import annotations

import re
from enum import StrEnum

from charon_ci.records import Record

# `typing` costs about 3 ms to import and this module is on `charon-ci tag`'s start-up path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Literal

    RefType = Literal["branch", "tag"]

__all__ = [
    "EMPTY_BRANCH_FALLBACK",
    "MAX_BRANCH_PART",
    "MAX_TAG_LENGTH",
    "SHORT_SHA_LENGTH",
    "TAG_PATTERN",
    "Kind",
    "ReleaseVersion",
    "TagError",
    "TagSet",
    "branch_tag",
    "classify_ref",
    "format_labels",
    "image_references",
    "is_valid_tag",
    "nightly_tags",
    "oci_labels",
    "parse_release_version",
    "pull_request_tags",
    "sanitize_ref_name",
    "short_sha",
    "validate_image_name",
    "validate_sha",
]

SHORT_SHA_LENGTH = 7
MAX_TAG_LENGTH = 128
# What a ref name may keep in a `name-sha7` tag: the whole tag, dash and sha7 included, must fit 128.
MAX_BRANCH_PART = MAX_TAG_LENGTH - 1 - SHORT_SHA_LENGTH
# Patterns are kept as text and compiled on first use (`re` caches them): compiling every one at import
# would cost about a millisecond on each run, most of them for paths that run does not take.
# The OCI distribution spec's tag grammar.
TAG_PATTERN = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
# Used in place of a ref name that sanitises to nothing (`///`, `#`, `日本`): `branch-{sha7}`.
EMPTY_BRANCH_FALLBACK = "branch"

# Character sets for the two checks every run makes (cheaper than compiling their regular expressions).
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_TAG_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_TAG_REST = _TAG_FIRST | frozenset(".-")
_NOT_TAG_CHARS = r"[^a-z0-9]+"
# A cheap test before importing `semver` (tens of milliseconds): only names shaped like X.Y.Z pay for it.
_VERSION_SHAPE = r"(?s)v?[0-9]+\.[0-9]+\.[0-9]+([-+].*)?"
# docker/distribution reference grammar (lowercase path components; a registry host with optional port).
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"(?::[0-9]+)?"
)
_MAX_IMAGE_NAME = 255


class Kind(StrEnum):
    PR = "pr"
    MAIN = "main"
    DEV = "dev"
    BRANCH = "branch"
    RELEASE = "release"
    NIGHTLY = "nightly"


class TagError(Exception):
    """No tag can be given for these facts; `title` and `message` are meant for one `::error` line."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


class TagSet(Record):
    """The tags for one build. `primary` is the immutable one (never `latest`, `dev` or `nightly`);
    `version` is the value of the `org.opencontainers.image.version` label.
    """

    __slots__ = ("kind", "names", "notes", "pr_number", "primary", "version")
    kind: Kind
    names: tuple[str, ...]
    primary: str
    version: str
    pr_number: int | None
    notes: tuple[str, ...]

    def __init__(
        self,
        kind: Kind,
        names: tuple[str, ...],
        primary: str,
        version: str,
        pr_number: int | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        if primary not in names:
            raise ValueError("the primary tag must be one of the tags")
        for name in names:
            if not is_valid_tag(name):
                raise ValueError(f"not a valid tag: {name!r}")
        self._init(kind=kind, names=names, primary=primary, version=version, pr_number=pr_number, notes=notes)


class ReleaseVersion(Record):
    """A release ref name that parses as semantic versioning, optionally with a leading `v`."""

    __slots__ = ("major", "minor", "prerelease", "text")
    text: str
    major: int
    minor: int
    prerelease: bool

    def __init__(self, text: str, major: int, minor: int, prerelease: bool) -> None:
        self._init(text=text, major=major, minor=minor, prerelease=prerelease)

    @property
    def tag(self) -> str:
        # `+` (build metadata) is not allowed in a tag; OCI tooling such as Helm writes it as `_`.
        return self.text.replace("+", "_")

    @property
    def minor_tag(self) -> str:
        return f"{self.major}.{self.minor}"


def is_valid_tag(name: str) -> bool:
    """Whether `name` matches TAG_PATTERN."""
    return (
        isinstance(name, str) and 0 < len(name) <= MAX_TAG_LENGTH and name[0] in _TAG_FIRST
        and _TAG_REST.issuperset(name)
    )  # fmt: skip


def validate_sha(value: str, what: str) -> str:
    """A full 40-hex commit sha, lowercased; `what` names where it came from for the error."""
    if not isinstance(value, str) or len(value) != 40 or not _HEX_DIGITS.issuperset(value):
        shown = repr(value)[:60]
        raise TagError("Missing or invalid commit sha", f"{what} must be a 40-hex commit sha; got {shown}.")
    return value.lower()


def short_sha(sha: str) -> str:
    return sha[:SHORT_SHA_LENGTH]


def sanitize_ref_name(name: str, max_length: int = MAX_BRANCH_PART) -> str:
    """The spec 3.2 transformation: ASCII-lowercase, every run of characters outside `[a-z0-9]` becomes
    one `-`, no `-` at either end, cut to `max_length` and trimmed again. May return "".

    Only ASCII letters are lowercased: `str.lower()` maps some non-ASCII letters into ASCII (KELVIN SIGN
    to `k`, DOTTED CAPITAL I to `i` plus a combining dot), which would let look-alike names collide with
    plain ones. Every non-ASCII character becomes `-`. Dots and underscores become `-` too, as the spec's
    examples require (`npm_and_yarn` -> `npm-and-yarn`, `5.0.12` -> `5-0-12`).
    """
    lowered = name.translate(_ASCII_LOWER)
    dashed = re.sub(_NOT_TAG_CHARS, "-", lowered).strip("-")
    return dashed[:max_length].rstrip("-")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def branch_tag(name: str, sha: str) -> str:
    """`{sanitized-name}-{sha7}`, at most 128 characters; `branch-{sha7}` when nothing of the name is left."""
    part = sanitize_ref_name(name) or EMPTY_BRANCH_FALLBACK
    return f"{part}-{short_sha(sha)}"


def parse_release_version(name: str) -> ReleaseVersion | None:
    """A release version (`v1.2.3`, `1.2.3`, `v2.0.0-rc.1`, `v1.2.3+build.5`), or None for any other name."""
    if not re.fullmatch(_VERSION_SHAPE, name):
        return None
    import semver  # only here: importing it costs more than the rest of `charon-ci tag` together

    try:
        parsed = semver.Version.parse(name[1:] if name.startswith("v") else name)
    except ValueError:
        return None
    return ReleaseVersion(name, int(parsed.major), int(parsed.minor), parsed.prerelease is not None)


def pull_request_tags(number: int, head_sha: str) -> TagSet:
    tag = f"pr-{number}-{short_sha(head_sha)}"
    return TagSet(Kind.PR, (tag,), tag, tag, pr_number=number)


def nightly_tags(date_text: str) -> TagSet:
    """`date_text` is the UTC date `YYYY-MM-DD` on which the nightly run was created."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", date_text):
        raise ValueError(f"not a YYYY-MM-DD date: {date_text!r}")
    dated = f"nightly-{date_text}"
    return TagSet(Kind.NIGHTLY, ("nightly", dated), dated, dated)


def classify_ref(
    name: str,
    ref_type: RefType | None,
    sha: str,
    *,
    main_branch: str,
    dev_branch: str,
) -> TagSet:
    """Tags for a build of the ref `name` (a push, a dispatch, a release). `ref_type` None means unknown,
    as in a `workflow_run` consumer; the answer is then the same as for whichever ref type the upstream
    accepted, because a name whose meaning depends on the type is refused when the type is known.
    """
    sha7 = short_sha(sha)
    shown = _show(name)
    if name in (main_branch, dev_branch):
        if ref_type == "tag":
            raise TagError(
                "Ambiguous tag name",
                f"Tag {shown} has the name of the {'main' if name == main_branch else 'dev'} branch; a "
                "workflow_run consumer sees only the name and would tag it as that branch. Rename the tag.",
            )
        if name == main_branch:
            return TagSet(Kind.MAIN, ("latest", f"sha-{sha7}"), f"sha-{sha7}", f"sha-{sha7}")
        return TagSet(Kind.DEV, ("dev", f"sha-{sha7}"), f"sha-{sha7}", f"sha-{sha7}")
    version = parse_release_version(name)
    if version is not None:
        if ref_type == "branch":
            raise TagError(
                "Ambiguous branch name",
                f"Branch {shown} is named like a release version; a workflow_run consumer sees only the name "
                "and would tag it as that release. Rename the branch, or push a tag to release.",
            )
        if len(version.tag) > MAX_TAG_LENGTH:
            raise TagError("Release version too long", f"Release {shown} is longer than {MAX_TAG_LENGTH} characters.")
        names = (version.tag,) if version.prerelease else (version.tag, version.minor_tag)
        return TagSet(Kind.RELEASE, names, version.tag, version.text)
    tag = branch_tag(name, sha)
    notes: tuple[str, ...] = ()
    if tag.startswith(f"{EMPTY_BRANCH_FALLBACK}-") and not sanitize_ref_name(name):
        notes = (f"ref name {shown} has no character usable in a tag; using {tag}",)
    return TagSet(Kind.BRANCH, (tag,), tag, tag, notes=notes)


def validate_image_name(name: str) -> str | None:
    """None when `name` is an image name without tag or digest (`ghcr.io/owner/app`), else why it is not."""
    if len(name) > _MAX_IMAGE_NAME:
        return f"at most {_MAX_IMAGE_NAME} characters"
    if "@" in name:
        return "no digest (`@sha256:...`): give the name only"
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        if not re.fullmatch(_DOMAIN, first):
            return "the registry host is not a valid host[:port]"
        parts = parts[1:]
    for part in parts:
        if re.fullmatch(_PATH_COMPONENT, part):
            continue
        if ":" in part:
            return "no tag (`:tag`): tags are computed, give the name only"
        if part.lower() != part and re.fullmatch(_PATH_COMPONENT, part.lower()):
            return "repository paths must be lowercase"
        return "path components are lowercase letters and digits joined by `.`, `_`, `__` or dashes"
    return None


def image_references(images: Sequence[str], tags: Iterable[str]) -> list[str]:
    """`image:tag` for every image and every tag, image by image."""
    tag_list = list(tags)
    return [f"{image}:{tag}" for image in images for tag in tag_list]


def oci_labels(*, sha: str, source_url: str, created: str, version: str) -> dict[str, str]:
    """The OCI annotations the build applies as labels; `revision` lets a consumer check what it pulled."""
    return {
        "org.opencontainers.image.revision": sha,
        "org.opencontainers.image.source": source_url,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.url": source_url,
    }


def format_labels(labels: Mapping[str, str]) -> str:
    return "\n".join(f"{key}={value}" for key, value in labels.items())


def _show(name: str, limit: int = 60) -> str:
    """A ref name fit for a message: repr-quoted (no raw line breaks) and cut."""
    return repr(name if len(name) <= limit else name[:limit] + "...")
