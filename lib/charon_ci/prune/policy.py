"""The retention policy and the deletion plan: pure, no I/O.

Decisions, in this order (documented in action-prune/README.md):
1. A tag is judged alone: protected (a `protect` regex matches the whole tag) > in use (open PR, queued or
   in-progress run) > referrer tag (`sha256-<hex>[.sig|.att|.sbom]`: follows its subject, no verdict of its
   own) > the first `retention` rule whose glob matches: kept while younger than the rule's lifetime or among
   the rule's `keep-last` newest versions, else expired > no rule matches: kept (unknown tags are never
   deleted).
2. A version (one digest, any number of tags) younger than `min-age` is kept. Ages are measured from the
   version's `created_at`, which belongs to the digest: re-tagging an old image does not make it young.
   While workflow runs are queued or in progress, every lifetime and `min-age` grows by one hour.
3. Roots = versions with a kept tag or too young. Everything reachable from a root (index children,
   referrers) is kept too. The rest is swept: tagged versions whose tags all expired, and untagged versions
   nothing kept references.
4. Untagged versions are deleted only when we know what they are (their manifest was read, or a read index
   lists them as one of its platforms or attestations) and no kept manifest is unreadable or unread (it
   might list them). Without manifest data (an offline snapshot) untagged versions are never deleted.

`plan()` may answer with `needs_manifests`: read those, add them to the graph and plan again; until then
the plan is already safe (whatever it cannot prove stays).
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

import msgspec

from charon_ci.durations import format_duration, parse_duration
from charon_ci.gha import InputError
from charon_ci.prune.model import InUse, PackageVersion, shown
from charon_ci.prune.patterns import MAX_LINES, ProtectMatcher, ProtectRule, glob_to_regex, is_glob, parse_protect
from charon_ci.prune.reachability import ManifestFacts, ManifestGraph, mark, referrer_subject, short_digest

DEFAULT_RETENTION: tuple[str, ...] = ("pr-*=24h", "feature-*=7d", "sha-*=30d", "nightly-*=7d")
DEFAULT_PROTECT: tuple[str, ...] = (
    "latest",
    "dev",
    r"v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?",  # v1.2.3, 1.2.3, v1.2.3-rc.1
    r"v?\d+\.\d+",  # 1.2, v1.2
)
DEFAULT_MIN_AGE = "48h"
OFFLINE_UNTAGGED = "untagged; no manifest data (offline snapshot): never deleted"
ACTIVE_RUN_BUFFER = timedelta(hours=1)


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class RetentionRule:
    pattern: str
    lifetime: timedelta
    text: str = field(init=False, compare=False)  # `pattern=lifetime`, quoted in every verdict of the rule

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", f"{self.pattern}={format_duration(self.lifetime)}")


@dataclass(frozen=True)
class Policy:
    rules: tuple[RetentionRule, ...]
    protect: tuple[ProtectRule, ...]
    min_age: timedelta
    keep_last: int = 0
    # The globs are one alternation, so a tag is matched once instead of once per rule: the leftmost
    # alternative that matches the whole tag wins, which is exactly "the first matching rule". Globs have no
    # groups of their own, so joining them changes nothing. Protect lines are matched each on its own.
    _rules_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _protect: ProtectMatcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        alternatives = "|".join(f"(?P<r{i}>{glob_to_regex(rule.pattern)})" for i, rule in enumerate(self.rules))
        object.__setattr__(self, "_rules_re", re.compile(alternatives) if self.rules else None)
        object.__setattr__(self, "_protect", ProtectMatcher(self.protect))

    def rule_for(self, tag: str) -> int | None:
        """Index of the first rule whose glob matches the whole tag."""
        if self._rules_re is None:
            return None
        match = self._rules_re.fullmatch(tag)
        if match is None or match.lastgroup is None:
            return None
        return int(match.lastgroup[1:])

    def protected_by(self, tag: str) -> str | None:
        """The source of the first protect regex matching the whole tag."""
        return self._protect.first_match(tag)


def parse_retention(lines: Sequence[str], input_name: str = "retention") -> tuple[RetentionRule, ...]:
    accepted = "one `pattern=duration` a line, pattern a tag glob (letters, digits, _ . - and the wildcards * ?)"
    rules: list[RetentionRule] = []
    seen: set[str] = set()
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, duration = (part.strip() for part in line.partition("="))
        if not sep or not is_glob(pattern):
            raise InputError(input_name, accepted, line)
        if len(rules) >= MAX_LINES:
            raise InputError(input_name, f"{accepted}; at most {MAX_LINES} lines", line)
        if pattern in seen:
            raise InputError(input_name, accepted + "; each pattern once", line)
        seen.add(pattern)
        try:
            lifetime = parse_duration(duration, input_name)
        except InputError as exc:  # name the whole line, not just its duration: there may be many lines
            raise InputError(input_name, f"{accepted}; duration {exc.accepted}", line) from None
        rules.append(RetentionRule(pattern, lifetime))
    return tuple(rules)


def parse_keep_last(text: str, input_name: str = "keep-last") -> int:
    value = text.strip()
    # The length first: int() of thousands of digits is refused by Python itself (and slow before that).
    if len(value) > 6 or not value.isdigit() or not value.isascii() or int(value) > 100_000:
        raise InputError(input_name, "a whole number from 0 to 100000", text)
    return int(value)


def parse_timestamp(text: str, input_name: str) -> datetime:
    """An ISO 8601 time with a zone (`2026-02-04T03:00:00Z`); naive times are refused, not guessed."""
    accepted = "an ISO 8601 time with a time zone, e.g. 2026-02-04T03:00:00Z"
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(input_name, accepted, text) from None
    if moment.tzinfo is None:
        raise InputError(input_name, accepted, text)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable UTC time
        raise InputError(input_name, accepted, text) from None


def build_policy(
    retention: Sequence[str],
    protect: Sequence[str],
    min_age: str = DEFAULT_MIN_AGE,
    keep_last: str = "0",
) -> Policy:
    """From input text; an empty `retention` or `protect` means the defaults."""
    return Policy(
        rules=parse_retention(retention or DEFAULT_RETENTION),
        protect=parse_protect(protect or DEFAULT_PROTECT),
        min_age=parse_duration(min_age or DEFAULT_MIN_AGE, "min-age"),
        keep_last=parse_keep_last(keep_last or "0"),
    )


# ---------------------------------------------------------------------------------------------- output


# msgspec structs here (like PackageVersion): made once per tag or version, four times as fast as named tuples.
class TagVerdict(msgspec.Struct, frozen=True, gc=False):
    tag: str
    keep: bool | None  # None: a referrer tag, which follows its subject
    reason: str

    def __str__(self) -> str:
        return f"{shown(self.tag)} {self.reason}"


class Decision(msgspec.Struct, frozen=True, gc=False):
    version: PackageVersion
    delete: bool
    reasons: tuple[str, ...]
    summary: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.version.id,
            "digest": self.version.digest,
            "tags": list(self.version.tags),
            "created_at": self.version.created_at.isoformat().replace("+00:00", "Z"),
            "reasons": list(self.reasons),
            "summary": self.summary,
        }


@dataclass(frozen=True)
class Plan:
    now: datetime
    delete: tuple[Decision, ...]  # in execution order: oldest group first, a parent before its children
    keep: tuple[Decision, ...]  # oldest first
    needs_manifests: frozenset[str] = frozenset()
    blocked_by: tuple[str, ...] = ()  # kept manifests we could not read: they held back untagged versions
    buffer: timedelta = timedelta(0)
    offline: bool = False
    notes: tuple[str, ...] = field(default=())
    # digest -> the planned deletions that go with it (its children and referrers): if it cannot be
    # deleted, they must stay too
    delete_edges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Summaries that keep untagged versions wholesale, for nothing about any one of them (no manifest data,
    # a listing that changed, an unreadable kept manifest): the log counts those versions, one line a summary.
    # Only untagged versions get these summaries (a tagged one's begin "referrer;" or name its tags).
    kept_alike: frozenset[str] = frozenset()

    @property
    def delete_digests(self) -> frozenset[str]:
        return frozenset(d.version.digest for d in self.delete)

    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat().replace("+00:00", "Z"),
            "delete": [d.as_json() for d in self.delete],
            "keep": [d.as_json() for d in self.keep],
            "blocked_by": list(self.blocked_by),
            "safety_buffer": format_duration(self.buffer),
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------- planning


# Oldest first, ties by id: every list in a plan has one deterministic order.
_order_key: Callable[[PackageVersion], tuple[datetime, int]] = attrgetter("created_at", "id")


def oldest_first(versions: Iterable[PackageVersion], newest_first: bool = False) -> list[PackageVersion]:
    """Sorted by `_order_key`, as two stable sorts on one attribute each: comparing (time, id) tuples cost
    three times as much at 200,000 versions."""
    ordered = sorted(versions, key=attrgetter("id"), reverse=newest_first)
    ordered.sort(key=attrgetter("created_at"), reverse=newest_first)
    return ordered


_NO_VERDICTS: tuple[TagVerdict, ...] = ()


def judge_tags(
    versions: Sequence[PackageVersion], policy: Policy, in_use: InUse, now: datetime
) -> dict[int, Sequence[TagVerdict]]:
    """Every tag's verdict, by version id; untagged versions (most of a package) have none and no entry."""
    buffer = ACTIVE_RUN_BUFFER if in_use.active_runs else timedelta(0)
    # keep-last: for each rule, the ids of its newest N versions (a version counts once per rule).
    newest: list[set[int]] = [set() for _ in policy.rules]
    rule_of: dict[str, int | None] = {}
    subject_of: dict[str, str | None] = {}
    for version in versions:
        for tag in version.tags:
            # Referrer tags follow their subject: they belong to no rule, not even for keep-last.
            subject = subject_of[tag] = referrer_subject(tag)
            rule_of[tag] = None if subject else policy.rule_for(tag)
    if policy.keep_last:
        members: list[list[PackageVersion]] = [[] for _ in policy.rules]
        for version in versions:
            indexes = {rule_of[tag] for tag in version.tags}
            for index in indexes:
                if index is not None:
                    members[index].append(version)
        for index, group in enumerate(members):
            newest[index] = {v.id for v in oldest_first(group, newest_first=True)[: policy.keep_last]}

    limits = [rule.lifetime + buffer for rule in policy.rules]
    verdicts: dict[int, Sequence[TagVerdict]] = {}
    for version in versions:
        if not version.tags:
            continue
        age = now - version.created_at
        out: list[TagVerdict] = []
        for tag in version.tags:
            protected = policy.protected_by(tag)
            if protected is not None:
                out.append(TagVerdict(tag, True, f"protected (/{protected}/)"))
                continue
            used = in_use.why(tag)
            if used is not None:
                out.append(TagVerdict(tag, True, f"in use ({used})"))
                continue
            subject = subject_of[tag]
            if subject is not None:
                out.append(TagVerdict(tag, None, f"refers to {short_digest(subject)}"))
                continue
            index = rule_of[tag]
            if index is None:
                out.append(TagVerdict(tag, True, "matches no retention rule"))
                continue
            rule = policy.rules[index]
            if age < limits[index]:
                out.append(TagVerdict(tag, True, f"not expired (age {format_duration(age)} < {rule.text})"))
            elif version.id in newest[index]:
                out.append(TagVerdict(tag, True, f"among the newest {policy.keep_last} of {rule.pattern}"))
            else:
                out.append(TagVerdict(tag, False, f"expired (age {format_duration(age)} > {rule.text})"))
        verdicts[version.id] = out
    return verdicts


def _explain(verdicts: Sequence[TagVerdict], delete: bool, extra: Sequence[str]) -> tuple[tuple[str, ...], str]:
    """A decision's reasons (each tag's verdict, then `extra`) and its summary; each verdict is formatted once."""
    texts = [str(v) for v in verdicts]
    reasons = (*texts, *extra)
    gone = [text for text, verdict in zip(texts, verdicts, strict=True) if verdict.keep is False]
    if delete:
        return reasons, "delete: " + "; ".join([*gone, *extra]) if (gone or extra) else "delete"
    kept = [text for text, verdict in zip(texts, verdicts, strict=True) if verdict.keep is True]
    parts = "; ".join(gone)
    why = "; ".join([*kept, *extra])
    return reasons, f"{parts}; kept: {why}" if parts else f"kept: {why}"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Reading and planning allocate hundreds of thousands of small acyclic objects; the cyclic collector
    would walk them again and again for nothing (a third of the time at 50,000 versions). Nests."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def plan(
    versions: Sequence[PackageVersion],
    policy: Policy,
    in_use: InUse,
    now: datetime,
    graph: ManifestGraph | None = None,
    keep_untagged: str | None = None,
) -> Plan:
    """Decide every version. `graph=None` means no manifest data at all (offline snapshot).

    `keep_untagged` (a reason) keeps every untagged version and everything it reaches: for a listing that
    may have missed a version (it changed while it was read), whose children would look unreferenced."""
    with collector_paused():
        return _plan(versions, policy, in_use, now, graph, keep_untagged)


def _plan(
    versions: Sequence[PackageVersion],
    policy: Policy,
    in_use: InUse,
    now: datetime,
    graph: ManifestGraph | None,
    keep_untagged: str | None = None,
) -> Plan:
    buffer = ACTIVE_RUN_BUFFER if in_use.active_runs else timedelta(0)
    min_age = policy.min_age + buffer
    tagged = [v for v in versions if v.tags]  # most versions of a package are untagged children
    named = {v.digest: v for v in tagged}  # what names a version in a reason: its tags (else its digest)
    # The package's digests: only manifests in it count as blockers or reads (a digest that is not a version
    # here has no children here). Only a manifest graph can name other digests: offline, spare the memory.
    listed: Set[str] = {v.digest for v in versions} if graph is not None else named.keys()
    verdicts = judge_tags(tagged, policy, in_use, now)

    tag_referrers: dict[str, list[str]] = {}
    # Versions with a tag that has a verdict of its own (the rest are untagged, or carry only referrer tags),
    # and those with a kept tag (roots).
    judged: set[int] = set()
    kept_by_tag: set[int] = set()
    for version in tagged:
        for verdict in verdicts[version.id]:
            if verdict.keep is None:
                subject = referrer_subject(verdict.tag)
                if subject is not None:
                    tag_referrers.setdefault(subject, []).append(version.digest)
                continue
            judged.add(version.id)
            if verdict.keep:
                kept_by_tag.add(version.id)

    own_reason: dict[str, str] = {}  # digest -> why it is a root (beyond tag verdicts)
    wholesale: set[str] = set()  # own reasons that hold for every untagged version alike (Plan.kept_alike)
    if keep_untagged is not None:
        wholesale.add(f"untagged; {keep_untagged}")
    elif graph is None:
        wholesale.add(OFFLINE_UNTAGGED)
    roots: list[str] = []
    untagged_like: list[PackageVersion] = []  # old enough, and no tag of theirs decides: kept only if needed
    needs_late: set[str] = set()
    young_since = now - min_age  # created after this: younger than min-age
    min_age_text = format_duration(min_age)
    for version in versions:
        digest = version.digest
        if version.created_at > young_since:
            age = format_duration(now - version.created_at)
            own_reason[digest] = f"younger than min-age {min_age_text} (age {age})"
            roots.append(digest)
            continue
        if version.id in judged:
            if version.id in kept_by_tag:
                roots.append(digest)
            continue
        # Untagged versions whose role we cannot know are kept.
        untagged_like.append(version)
        if keep_untagged is not None:
            own_reason[digest] = f"{_kind(version)}; {keep_untagged}"
        elif graph is None:
            if version.tags:
                continue  # only referrer tags: kept when its subject is
            own_reason[digest] = OFFLINE_UNTAGGED
        elif version.tags or graph.role_known(digest):
            continue  # a referrer tag names its subject; a read index lists it as one of its platforms
        elif digest in graph.unreadable:
            own_reason[digest] = f"untagged; manifest unreadable ({graph.unreadable[digest]})"
        else:
            own_reason[digest] = "untagged; manifest not read, it might refer to a kept image"
            needs_late.add(digest)
        roots.append(digest)

    # Which kept version explains a manifest ("referenced by kept ...") follows the marking order: sorted, so
    # the same versions listed in any order (GitHub promises none) give the same plan. Without a graph or
    # referrer tags nothing is followed, and the order cannot matter.
    if graph is not None or tag_referrers:
        roots.sort()
    for referrers in tag_referrers.values():
        referrers.sort()
    marking = mark(roots, graph, tag_referrers)
    blockers = sorted((marking.unreadable | marking.unresolved) & listed)
    if graph is not None and blockers:
        # A kept manifest we could not read might list any untagged version as a child: keep them all,
        # and whatever they reach.
        first = blockers[0]
        state = f"unreadable: {graph.unreadable[first]}" if first in graph.unreadable else "not read yet"
        more = f" and {len(blockers) - 1} more" if len(blockers) > 1 else ""
        why = f"cannot prove unreferenced: manifest of kept {_describe(named.get(first), first)} {state}{more}"
        wholesale.add(f"untagged; {why}")
        for version in untagged_like:
            if version.digest not in marking.reached:
                own_reason[version.digest] = f"{_kind(version)}; {why}"
                roots.append(version.digest)
        roots.sort()
        marking = mark(roots, graph, tag_referrers)

    deleted: list[PackageVersion] = []
    kept: list[Decision] = []
    # Versions without verdicts kept for one same reason (an offline snapshot's untagged ones) share its
    # strings: at 200,000 versions a string each is most of the plan's memory.
    shared: dict[str, tuple[tuple[str, ...], str]] = {}
    # Oldest first here, so `kept` needs no sort of its own and `deleted` is already in the order
    # _execution_order walks (sorting Decisions by a Python key cost more than this sort of versions).
    reached = marking.reached
    for version in oldest_first(versions):
        digest = version.digest
        via = reached.get(digest)
        if via is None:
            deleted.append(version)
            continue
        tv = verdicts.get(version.id, _NO_VERDICTS)
        own = own_reason.get(digest)
        if via == digest and not tv and own is not None:
            texts = shared.get(own)
            if texts is None:
                texts = shared[own] = _explain(tv, False, [own])
            kept.append(Decision(version, False, texts[0], texts[1]))
            continue
        extra: list[str] = [] if own is None else [own]
        if via != digest:
            extra.append(f"referenced by kept {_describe(named.get(via), via)}")
        if not tv and len(extra) == 1:
            texts = shared.get(extra[0])
            if texts is None:
                texts = shared[extra[0]] = _explain(tv, False, extra)
            kept.append(Decision(version, False, texts[0], texts[1]))
        else:
            reasons, summary = _explain(tv, False, extra)
            kept.append(Decision(version, False, reasons, summary))

    deleted_set = {v.digest for v in deleted}
    ordered, why_gone, delete_edges = _execution_order(deleted, graph, tag_referrers, deleted_set)
    delete_decisions: list[Decision] = []
    for version in ordered:
        tv = verdicts.get(version.id, _NO_VERDICTS)
        extra = [why_gone[version.digest]] if version.digest in why_gone else []
        if version.id not in judged:
            extra.append("referenced by no kept version")
        reasons, summary = _explain(tv, True, extra)
        delete_decisions.append(Decision(version, True, reasons, summary))

    needs: set[str] = set()
    if graph is not None:
        tagged_unread = {
            v.digest
            for v in versions
            if v.id in judged and v.digest not in graph.manifests and v.digest not in graph.unreadable
        }
        # In phases: tagged manifests first (the indexes); then what they reach that might have children;
        # orphans last. Most untagged versions are explained by a read index and never need a read.
        needs = tagged_unread or ((marking.unresolved & listed) - needs_late) or needs_late
    notes: list[str] = []
    if not in_use.checked:
        notes.append("in-use facts not checked (offline): open PRs and active runs were not looked up")
    if buffer:
        notes.append(f"{in_use.active_runs} active workflow run(s): one-hour safety buffer added to every age limit")
    if keep_untagged is not None:
        notes.append(f"every untagged version kept: {keep_untagged}")
    return Plan(
        now=now,
        delete=tuple(delete_decisions),
        keep=tuple(kept),
        needs_manifests=frozenset(needs),
        blocked_by=tuple(blockers) if graph is not None else (),
        buffer=buffer,
        offline=graph is None,
        notes=tuple(notes),
        delete_edges=delete_edges,
        kept_alike=frozenset(_explain(_NO_VERDICTS, False, [reason])[1] for reason in wholesale),
    )


def _kind(version: PackageVersion) -> str:
    return "referrer" if version.tags else "untagged"


def _describe(version: PackageVersion | None, digest: str) -> str:
    if version is not None and version.tags:
        tags = ", ".join(shown(tag) for tag in version.tags[:3])
        return f"{short_digest(digest)} ({tags}{', ...' if len(version.tags) > 3 else ''})"
    return short_digest(digest)


def _execution_order(
    deleted: Sequence[PackageVersion],
    graph: ManifestGraph | None,
    tag_referrers: Mapping[str, list[str]],
    deleted_set: set[str],
) -> tuple[list[PackageVersion], dict[str, str], dict[str, tuple[str, ...]]]:
    """Oldest group first; in a group a parent goes before its children and a subject before its referrers,
    so a run that stops half-way leaves orphans (which the next run removes), never a broken image.
    `deleted` comes oldest first (`oldest_first`)."""
    if graph is None and tag_referrers.keys().isdisjoint(deleted_set):
        return list(deleted), {}, {}  # no manifests and no referrer tags: nothing goes with anything
    by_digest = {v.digest: v for v in deleted}

    def below(digest: str) -> list[str]:
        found: list[str] = []
        if graph is not None and digest in graph.manifests:
            found.extend(child.digest for child in graph.manifests[digest].children)
            found.extend(graph.referrers(digest))
        found.extend(tag_referrers.get(digest, ()))
        found = [d for d in found if d in deleted_set and d != digest]
        if len(found) > 1:
            found = sorted(set(found), key=lambda d: _order_key(by_digest[d]))
        return found

    edges = {v.digest: below(v.digest) for v in deleted}
    # A version is placed only once every deleted version above it is placed (a child shared by two
    # deleted indexes goes after both), depth-first so each group stays together.
    waiting: dict[str, int] = {}
    for children in edges.values():
        for digest in children:
            waiting[digest] = waiting.get(digest, 0) + 1
    placed: set[str] = set()
    ordered: list[PackageVersion] = []
    why: dict[str, str] = {}

    def place(start: str) -> None:
        stack = [start]
        while stack:
            digest = stack.pop()
            if digest in placed:
                continue
            placed.add(digest)
            ordered.append(by_digest[digest])
            ready: list[str] = []
            children = edges[digest]
            parent = f"goes with deleted {_describe(by_digest.get(digest), digest)}" if children else ""
            for child in children:
                if child in placed:
                    continue
                why.setdefault(child, parent)
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
            stack.extend(reversed(ready))

    for version in deleted:
        if not waiting.get(version.digest):
            place(version.digest)
    # Cycles (a referrer listed by its own subject) never become ready: place what is left, oldest first.
    for version in deleted:
        if version.digest not in placed:
            place(version.digest)
    return ordered, why, {digest: tuple(children) for digest, children in edges.items() if children}


ManifestReader = Callable[[Sequence[str]], tuple[list[ManifestFacts], dict[str, str]]]


def plan_with_reads(
    versions: Sequence[PackageVersion],
    policy: Policy,
    in_use: InUse,
    now: datetime,
    read: ManifestReader,
    graph: ManifestGraph | None = None,
    max_rounds: int = 16,
    keep_untagged: str | None = None,
) -> tuple[Plan, ManifestGraph]:
    """Plan, read what the plan asks for, plan again, until it asks for nothing new.

    `read(digests)` returns the facts it could read and {digest: why} for the rest. A digest is asked for
    at most once; what stays unknown keeps whatever it might reference."""
    graph = graph or ManifestGraph()
    attempted: set[str] = set()
    current = plan(versions, policy, in_use, now, graph, keep_untagged)
    for _ in range(max_rounds):
        wanted = sorted(current.needs_manifests - attempted)
        if not wanted:
            break
        attempted.update(wanted)
        facts, failed = read(wanted)
        got = {item.digest for item in facts}
        missing = {digest: "no answer" for digest in wanted if digest not in failed and digest not in got}
        graph = graph.with_facts(facts, {**failed, **missing})
        current = plan(versions, policy, in_use, now, graph, keep_untagged)
    return current, graph
