"""The retention core: input parsing, per-tag verdicts, reachability, order and reasons."""

from __future__ import annotations

import fnmatch
import json
import re
import signal
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charon_ci.durations import format_duration, parse_duration
from charon_ci.gha import InputError
from charon_ci.prune.listing import parse_versions
from charon_ci.prune.model import InUse, PackageVersion
from charon_ci.prune.patterns import parse_protect
from charon_ci.prune.policy import (
    DEFAULT_PROTECT,
    build_policy,
    parse_keep_last,
    parse_retention,
    parse_timestamp,
    plan,
    plan_with_reads,
)
from charon_ci.prune.reachability import ChildRef, ManifestFacts, ManifestGraph, referrer_subject
from tests.support.shared import OPENAPI_SUBSET as OPENAPI

NOW = datetime(2026, 2, 4, 3, 0, tzinfo=UTC)
NOBODY = InUse()


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def ver(n: int, *tags: str, age: timedelta = timedelta(days=40)) -> PackageVersion:
    return PackageVersion(id=n, digest=dg(n), tags=tags, created_at=NOW - age)


def index(n: int, *children: int, subject: int | None = None) -> ManifestFacts:
    return ManifestFacts(
        dg(n), tuple(ChildRef(dg(c)) for c in children), dg(subject) if subject else None, is_index=bool(children)
    )


def graph(*facts: ManifestFacts, unreadable: dict[int, str] | None = None) -> ManifestGraph:
    return ManifestGraph({f.digest: f for f in facts}, {dg(k): v for k, v in (unreadable or {}).items()})


def ids(decisions: tuple[object, ...]) -> list[int]:
    return [d.version.id for d in decisions]  # type: ignore[attr-defined]


DEFAULT = build_policy([], [])


# ------------------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("30m", timedelta(minutes=30)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(hours=36)),
        (" 48h ", timedelta(hours=48)),
        ("0h", timedelta(0)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "min-age") == expected


@pytest.mark.parametrize("junk", ["", "24", "h", "7 d", "-1d", "1.5d", "7D", "1y", "3mo", "24h;rm", "9999w"])
def test_duration_junk_is_refused_naming_the_input(junk: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_duration(junk, "min-age")
    assert caught.value.name == "min-age"
    assert "24h" in caught.value.accepted


def test_format_duration() -> None:
    assert format_duration(timedelta(days=40, hours=3, minutes=5, seconds=59)) == "40d3h5m"
    assert format_duration(timedelta(days=30, minutes=30)) == "30d30m"
    assert format_duration(timedelta(seconds=59)) == "0m"
    assert format_duration(timedelta(days=7)) == "7d"
    assert format_duration(timedelta(hours=5, minutes=12)) == "5h12m"
    assert format_duration(timedelta(minutes=-90)) == "-1h30m"
    assert format_duration(timedelta(seconds=-59)) == "0m"  # truncated toward zero: no "-0m"
    assert format_duration(timedelta.max) == "999999999d23h59m"


@given(st.timedeltas(min_value=timedelta(days=-(10**6)), max_value=timedelta(days=10**6)))
def test_format_duration_is_the_whole_minutes_truncated_toward_zero(span: timedelta) -> None:
    # The reference in whole microseconds: no float, no timedelta normalisation.
    micro = (span.days * 86_400 + span.seconds) * 10**6 + span.microseconds
    minutes = abs(micro) // 60_000_000
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "m")) if n) or "0m"
    assert format_duration(span) == ("-" if micro < 0 and minutes else "") + text


# ------------------------------------------------------------------------------------------ parsing


def test_defaults_follow_spec_5_2() -> None:
    assert [r.text for r in DEFAULT.rules] == ["pr-*=1d", "feature-*=7d", "sha-*=30d", "nightly-*=7d"]
    assert DEFAULT.min_age == timedelta(hours=48)
    assert DEFAULT.keep_last == 0
    for tag in ["latest", "dev", "v1.2.3", "1.2.3", "v10.20.30-rc.1", "1.2", "v1.2"]:
        assert DEFAULT.protected_by(tag) is not None, tag
    for tag in ["latest-x", "devel", "v1", "1.2.3.4", "sha-abc1234", "v1.2.x"]:
        assert DEFAULT.protected_by(tag) is None, tag


def test_glob_is_whole_tag_and_explicit() -> None:
    policy = build_policy(["pr-?-*=1h", "pr-*=2h", "*-nightly=3h"], ["latest"])
    assert policy.rule_for("pr-1-abc") == 0  # first matching rule wins
    assert policy.rule_for("pr-12-abc") == 1
    assert policy.rule_for("xpr-1-abc") is None  # anchored at the start
    assert policy.rule_for("a-nightly") == 2
    assert policy.rule_for("a-nightly-b") is None  # and at the end
    assert build_policy(["a.b=1h"], ["x"]).rule_for("aXb") is None  # `.` is literal, not a regex dot


@pytest.mark.parametrize("line", ["pr-*", "=24h", "pr-[0-9]*=24h", "pr-*=24", "pr-* 24h", "a/b=1h", "pr-*=1y"])
def test_retention_junk_is_refused(line: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_retention(["feature-*=7d", line])
    assert caught.value.name == "retention"
    assert caught.value.value == line  # the whole offending line, not only its duration


def test_retention_duplicates_refused_comments_allowed() -> None:
    with pytest.raises(InputError):
        parse_retention(["pr-*=1h", "pr-*=2h"])
    assert [r.text for r in parse_retention(["# transient", "", " pr-* = 24h "])] == ["pr-*=1d"]


def test_protect_invalid_regex_names_input() -> None:
    with pytest.raises(InputError) as caught:
        parse_protect(["v(\\d+"])
    assert caught.value.name == "protect"


def test_protect_regexes_with_clashing_group_names_still_work() -> None:
    policy = build_policy(["*=1h"], ["(?P<x>a)", "(?P<x>b)"])
    assert policy.protected_by("b") == "(?P<x>b)"
    assert policy.protected_by("c") is None


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("(a)\\1", "backreferences"),  # the engine has none: it would need backtracking
        ("(?<=v)1", "RE2 refuses it"),
        ("a{1001}", "RE2 refuses it"),
        ("a{99999999999}", "not a Python regular expression"),  # RE2 alone would read a literal brace
        ("v{,3}", "is not a repetition"),  # Python: 0 to 3 `v`s; RE2: the text `v{,3}`
        ("x{a}", "is not a repetition"),
        ("[[:digit:]]", "not a Python regular expression"),  # a class to RE2, a nested set to Python
        ("\\Z", "RE2 refuses it"),
        ("a" * 1001, "at most 1000 characters"),
    ],
)
def test_protect_lines_the_engine_would_read_otherwise_are_refused(line: str, complaint: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_protect(["latest", line])
    assert caught.value.name == "protect" and caught.value.value == line
    assert complaint in caught.value.accepted


def test_protect_braces_in_classes_and_escapes_are_literal() -> None:
    policy = build_policy(["*=1h"], ["v[{]1", "a\\{2", "[]{]x", "b{2}", "c{1,}", "d{1,2}"])
    assert [policy.protected_by(t) for t in ("v{1", "a{2", "{x", "bb", "ccc", "dd", "d{1,2}")] == [
        "v[{]1", "a\\{2", "[]{]x", "b{2}", "c{1,}", "d{1,2}", None
    ]  # fmt: skip


class _TooSlow(Exception):
    pass


def test_protect_and_globs_take_linear_time() -> None:
    """A backtracking engine takes hours on these; an alarm turns that into a failure, not a hung suite."""

    def too_slow(*_: object) -> None:
        raise _TooSlow

    policy = build_policy(["*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c=1h"], ["(a+)+b", "(a|aa)*c", "(.*)*x"])
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        for size in range(1, 128):
            assert policy.protected_by("a" * size) is None
            assert policy.rule_for("a" * size) is None
    except _TooSlow:
        pytest.fail("matching did not finish in 20 s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# Regular expressions from a small grammar, with the constructs where engines disagree mixed in.
_ATOMS = st.sampled_from(["a", "b", "1", ".", "\\d", "\\.", "[ab]", "[^a]", "[a-c1]", "-", "{", "}", ",", "\\{"])
_QUANTIFIERS = st.sampled_from(["", "", "*", "+", "?", "*?", "{2}", "{1,2}", "{,2}", "{0,}", "{a}", "{2,1}"])


@st.composite
def _regexes(draw: st.DrawFn, depth: int = 0) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            inner = draw(_regexes(depth + 1))
            alternative = draw(_regexes(depth + 1)) if draw(st.booleans()) else None
            body = f"{inner}|{alternative}" if alternative is not None else inner
            atom = draw(st.sampled_from(["({})", "(?:{})", "(?P<g>{})", "(?i:{})"])).format(body)
        else:
            atom = draw(_ATOMS)
        parts.append(atom + draw(_QUANTIFIERS))
    return "".join(parts)


@settings(max_examples=400, deadline=None)
@given(st.lists(_regexes(), min_size=1, max_size=3), st.lists(st.text("ab1.{},A-", max_size=6), max_size=12))
def test_accepted_protect_lines_mean_what_python_reads(lines: list[str], tags: list[str]) -> None:
    """Whatever parse_protect accepts, RE2 matches exactly where Python's own engine does, line by line
    (the first matching line is the one named)."""
    try:
        policy = build_policy(["*=1h"], lines)
    except InputError:
        return
    for tag in tags:
        expected = next((line for line in lines if re.fullmatch(line, tag)), None)
        assert policy.protected_by(tag) == expected, (lines, tag)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text("ab*?-", min_size=1, max_size=8), min_size=1, max_size=4, unique=True),
       st.lists(st.text("ab-", max_size=10), max_size=12))  # fmt: skip
def test_globs_match_as_fnmatch_does(globs: list[str], tags: list[str]) -> None:
    policy = build_policy([f"{glob}=1h" for glob in globs], ["latest"])
    for tag in tags:
        expected = next((i for i, glob in enumerate(globs) if fnmatch.fnmatchcase(tag, glob)), None)
        assert policy.rule_for(tag) == expected, (globs, tag)


@pytest.mark.parametrize("junk", ["-1", "two", "1.5", "100001", "٣"])
def test_keep_last_junk(junk: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_keep_last(junk)
    assert caught.value.name == "keep-last"


def test_timestamps_need_a_zone() -> None:
    assert parse_timestamp("2026-02-04T03:00:00Z", "now") == NOW
    assert parse_timestamp("2026-02-04T04:00:00+01:00", "now") == NOW
    with pytest.raises(InputError):
        parse_timestamp("2026-02-04T03:00:00", "now")
    with pytest.raises(InputError):
        parse_timestamp("yesterday", "now")
    with pytest.raises(InputError, match="now"):  # before the first representable UTC time
        parse_timestamp("0001-01-01T00:00:00+14:00", "now")


def test_parse_versions_uses_created_at_not_updated_at() -> None:
    body = [
        {
            "id": 7,
            "name": dg(7),
            "url": "u",
            "package_html_url": "p",
            "created_at": "2025-12-01T00:00:00Z",
            "updated_at": "2026-02-04T02:00:00Z",  # re-tagged an hour ago: still old
            "metadata": {"package_type": "container", "container": {"tags": ["sha-abc1234"]}},
        }
    ]
    [version] = parse_versions(body, "snapshot")
    assert version.created_at == datetime(2025, 12, 1, tzinfo=UTC)
    result = plan([version], DEFAULT, NOBODY, NOW)
    assert ids(result.delete) == [7]


def test_parse_versions_reads_the_openapi_example() -> None:
    spec = json.loads(OPENAPI.read_text())
    example = spec["components"]["examples"]["package-versions-for-org"]["value"]
    versions = parse_versions(example, "example")
    assert versions and all(v.created_at.tzinfo for v in versions)


def _item(id_: object, name: str, tags: object = None) -> dict[str, object]:
    container = {"tags": [] if tags is None else tags}
    return {"id": id_, "name": name, "created_at": "2020-01-01T00:00:00Z", "metadata": {"container": container}}


@pytest.mark.parametrize(
    "junk",
    [
        {},
        [1],
        [{"id": 1}],
        [_item("1", "x")],
        [_item(True, "x")],
        [_item(1, "x", "latest")],  # a string, not a list: would become the tags l, a, t, e, s, t
        [_item(1, "x", ["\udcff"])],  # no UTF-8 holds a lone surrogate: the plan file could not be written
        [_item(1, "x"), _item(1, "y")],  # one id, two digests: verdicts are kept by id
        [_item(1, "x"), _item(2, "x")],
    ],
)
def test_parse_versions_junk(junk: object) -> None:
    with pytest.raises(ValueError, match="snap"):
        parse_versions(junk, "snap")


def test_parse_versions_merges_a_version_listed_twice() -> None:
    # Pages fetched while another run deletes can shift and repeat an item.
    versions = parse_versions([_item(1, "x", ["a"]), _item(2, "y"), _item(1, "x", ["b", "a"])], "snap")
    assert [(v.id, v.tags) for v in versions] == [(1, ("a", "b")), (2, ())]


# ------------------------------------------------------------------------------------------ verdicts


def test_multi_tag_version_kept_by_one_tag_says_which() -> None:
    result = plan([ver(1, "sha-abc1234", "pr-12-abc1234")], DEFAULT, InUse(open_pull_requests=frozenset({12})), NOW)
    [kept] = result.keep
    assert not result.delete
    assert kept.summary == "sha-abc1234 expired (age 40d > sha-*=30d); kept: pr-12-abc1234 in use (open PR #12)"


def test_in_use_by_active_run_sha_suffix() -> None:
    in_use = InUse(active_run_shas=frozenset({"def5678" + "0" * 33}), active_runs=1)
    result = plan(
        [ver(1, "feature-dns-def5678"), ver(2, "sha-def5678"), ver(3, "sha-abc1234"), ver(4, "pr-9-def5678x")],
        DEFAULT,
        in_use,
        NOW,
    )
    assert ids(result.keep) == [1, 2]
    assert "run of def5678 queued or in progress" in result.keep[0].summary
    assert ids(result.delete) == [3, 4]


def test_active_runs_add_one_hour_to_every_limit() -> None:
    versions = [ver(1, "sha-a", age=timedelta(days=30, minutes=30)), ver(2, "x", age=timedelta(hours=48, minutes=30))]
    policy = build_policy(["sha-*=30d", "x=1h"], ["latest"])
    assert ids(plan(versions, policy, NOBODY, NOW).delete) == [1, 2]
    result = plan(versions, policy, InUse(active_runs=2), NOW)
    assert ids(result.delete) == []
    assert result.keep[0].summary == "kept: sha-a not expired (age 30d30m < sha-*=30d)"  # 30d30m < 30d + 1h
    assert "younger than min-age 2d1h (age 2d30m)" in result.keep[1].summary  # 48h30m < 48h + 1h
    assert "one-hour safety buffer" in result.notes[0]


def test_min_age_beats_expiry_and_is_measured_from_created_at() -> None:
    young = ver(1, "pr-3-abc1234", age=timedelta(hours=30))
    result = plan([young], DEFAULT, NOBODY, NOW)
    assert ids(result.keep) == [1]
    assert result.keep[0].summary == (
        "pr-3-abc1234 expired (age 1d6h > pr-*=1d); kept: younger than min-age 2d (age 1d6h)"
    )
    assert ids(plan([young], build_policy([], [], min_age="24h"), NOBODY, NOW).delete) == [1]


def test_protected_wins_over_rules_and_unknown_tags_are_kept() -> None:
    policy = build_policy(["*=1d"], DEFAULT_PROTECT)
    result = plan([ver(1, "v1.2.3"), ver(2, "whatever"), ver(3, "nightly-x")], policy, NOBODY, NOW)
    assert ids(result.keep) == [1]
    assert "protected (/v?\\d+\\.\\d+\\.\\d+(?:-[0-9A-Za-z.-]+)?/)" in result.keep[0].summary
    result = plan([ver(2, "whatever")], DEFAULT, NOBODY, NOW)
    assert result.keep[0].summary == "kept: whatever matches no retention rule"


def test_keep_last_per_rule() -> None:
    versions = [ver(n, f"sha-{n:07x}", age=timedelta(days=40 + n)) for n in range(1, 6)]
    versions += [ver(n, f"pr-{n}-{n:07x}", age=timedelta(days=40 + n)) for n in range(6, 9)]
    policy = build_policy([], [], keep_last="2")
    result = plan(versions, policy, NOBODY, NOW)
    assert ids(result.keep) == [7, 6, 2, 1]  # the two newest of sha-* and of pr-*, oldest first
    assert "among the newest 2 of sha-*" in result.keep[2].summary
    assert ids(result.delete) == [8, 5, 4, 3]  # oldest first


# ------------------------------------------------------------------------------------------ reachability


def test_children_of_kept_index_are_kept_and_of_deleted_index_go_with_it() -> None:
    versions = [ver(1, "latest"), ver(2), ver(3), ver(4, "sha-old"), ver(5), ver(6), ver(7)]
    # 1 = latest -> {2, 3}; 4 = sha-old -> {3 (shared), 5, 6}; 7 orphan
    g = graph(index(1, 2, 3), index(4, 3, 5, 6), ManifestFacts(dg(7)))
    result = plan(versions, DEFAULT, NOBODY, NOW, g)
    assert ids(result.keep) == [1, 2, 3]
    assert ids(result.delete) == [4, 5, 6, 7]  # the index before its children
    assert "referenced by kept sha256:000000000000 (latest)" in result.keep[1].summary
    assert "goes with deleted" in result.delete[1].summary
    assert result.delete[3].summary == "delete: referenced by no kept version"
    assert not result.needs_manifests


def test_parent_goes_first_even_when_children_are_older() -> None:
    versions = [ver(1, "sha-a", age=timedelta(days=40)), ver(2, age=timedelta(days=41)), ver(3, age=timedelta(days=50))]
    result = plan(versions, DEFAULT, NOBODY, NOW, graph(index(1, 2), ManifestFacts(dg(3))))
    assert ids(result.delete) == [3, 1, 2]


def test_tagged_child_of_kept_index_is_kept() -> None:
    # `docker buildx imagetools create -t latest sha-amd64 sha-arm64`: the children carry tags of their own.
    versions = [ver(1, "latest"), ver(2, "sha-amd64"), ver(3, "sha-arm64")]
    result = plan(versions, DEFAULT, NOBODY, NOW, graph(index(1, 2, 3), index(2), index(3)))
    assert ids(result.keep) == [1, 2, 3]
    assert "sha-amd64 expired (age 40d > sha-*=30d); kept: referenced by kept" in result.keep[1].summary


def test_referrers_follow_their_subject() -> None:
    sig_of = lambda n: f"sha256-{n:064x}.sig"  # noqa: E731
    versions = [ver(1, "latest"), ver(2, sig_of(1)), ver(3, "sha-old"), ver(4, sig_of(3)), ver(5), ver(6)]
    # 5 is an OCI referrer (subject) of latest, 6 of sha-old
    g = graph(index(1), index(3), index(5, subject=1), index(6, subject=3), index(2), index(4))
    result = plan(versions, DEFAULT, NOBODY, NOW, g)
    assert ids(result.keep) == [1, 2, 5]
    assert ids(result.delete) == [3, 4, 6]
    assert referrer_subject(sig_of(1)) == dg(1)
    assert referrer_subject("sha256-abc.sig") is None


def test_unreadable_kept_manifest_blocks_untagged_deletions() -> None:
    versions = [ver(1, "latest"), ver(2, "sha-old"), ver(3), ver(4)]
    g = graph(index(2, 3), index(4), unreadable={1: "HTTP 500"})
    result = plan(versions, DEFAULT, NOBODY, NOW, g)
    assert ids(result.delete) == [2]
    assert ids(result.keep) == [1, 3, 4]
    assert result.blocked_by == (dg(1),)
    assert "cannot prove unreferenced: manifest of kept sha256:000000000000 (latest) unreadable: HTTP 500" in (
        result.keep[1].summary
    )


def test_offline_never_deletes_untagged() -> None:
    versions = [ver(1, "sha-old"), ver(2), ver(3, f"sha256-{1:064x}.sig")]
    result = plan(versions, DEFAULT, InUse(checked=False), NOW, None)
    assert ids(result.delete) == [1, 3]
    assert result.keep[0].summary == "kept: untagged; no manifest data (offline snapshot): never deleted"
    assert result.offline and "not checked" in result.notes[0]
    assert result.kept_alike == {result.keep[0].summary}


def test_kept_alike_names_only_reasons_about_no_version_in_particular() -> None:
    young = ver(9, age=timedelta(hours=1))
    versions = [ver(1, "latest"), ver(2, "sha-old"), ver(3), ver(4), ver(5, f"sha256-{1:064x}.sig"), young]
    leaves = (ManifestFacts(dg(5)), ManifestFacts(dg(9)))
    # Read and explained: a child of a kept index is kept for that index, not wholesale.
    explained = plan(versions, DEFAULT, NOBODY, NOW, graph(index(1, 3), index(2, 4), *leaves))
    assert explained.kept_alike == frozenset() and not explained.needs_manifests
    # A listing that changed while it was read: every untagged version, whatever it is.
    g = graph(index(1, 3), index(2, 4), *leaves)
    changed = plan(versions, DEFAULT, NOBODY, NOW, g, keep_untagged="listing changed")
    assert changed.kept_alike == {"kept: untagged; listing changed"}
    assert {d.version.id for d in changed.keep if d.summary in changed.kept_alike} == {3, 4}
    # An unreadable kept index: every untagged version nothing else explains.
    g = graph(index(2, 4), ManifestFacts(dg(3)), *leaves, unreadable={1: "HTTP 500"})
    blocked = plan(versions, DEFAULT, NOBODY, NOW, g)
    [held] = [d for d in blocked.keep if d.version.id == 3]
    assert blocked.kept_alike == {held.summary} and "cannot prove unreferenced" in held.summary
    # The young version is kept for its own age, never counted with the others.
    for result in (explained, changed, blocked):
        assert all(d.summary not in result.kept_alike for d in result.keep if d.version.id in (1, 5, 9))


def test_reads_tagged_manifests_first_then_orphans_only() -> None:
    versions = [ver(1, "latest"), ver(2), ver(3, "sha-old"), ver(4), ver(5)]
    truth = {f.digest: f for f in [index(1, 2), index(3, 4), ManifestFacts(dg(5))]}
    rounds: list[list[str]] = []

    def read(digests: object) -> tuple[list[ManifestFacts], dict[str, str]]:
        wanted = list(digests)  # type: ignore[call-overload]
        rounds.append(wanted)
        return [truth[d] for d in wanted], {}

    result, _ = plan_with_reads(versions, DEFAULT, NOBODY, NOW, read)
    assert rounds == [[dg(1), dg(3)], [dg(5)]]  # 2 and 4 are explained by their indexes: never read
    assert ids(result.delete) == [3, 4, 5]
    assert not result.needs_manifests


def test_plan_json_shape() -> None:
    result = plan([ver(1, "sha-old"), ver(2, "latest")], DEFAULT, NOBODY, NOW)
    body = result.as_json()
    assert set(body) >= {"delete", "keep"}
    for item in body["delete"] + body["keep"]:
        assert set(item) >= {"id", "digest", "tags", "reasons"}
    json.dumps(body)
