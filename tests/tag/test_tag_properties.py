"""Properties of branch tags for any ref name: any Unicode, any length."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from charon_ci.tag import tagging
from charon_ci.tag.tagging import Kind, TagError

shas = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
# Any code point, lone surrogates included (JSON can carry them), and lengths far past the 128 limit.
names = st.one_of(
    st.text(alphabet=st.characters(), max_size=300),
    st.text(alphabet=st.characters(), min_size=120, max_size=12_000),
    st.text(alphabet="aZ/-_.#9 \n:%", max_size=400),
)


@settings(max_examples=500)
@given(name=names, sha=shas)
@example(name="x" * 10_000, sha="0" * 40)
@example(name='zzz";echo${IFS}"hello";#', sha="0" * 40)
@example(name="a" * 120 + "-", sha="0" * 40)
@example(name="\u212a" * 5, sha="0" * 40)
def test_branch_tag_is_always_valid_and_ends_with_the_sha(name: str, sha: str) -> None:
    tag = tagging.branch_tag(name, sha)
    assert re.fullmatch(tagging.TAG_PATTERN, tag)
    assert len(tag) <= 128
    assert tag.endswith("-" + sha[:7])
    part = tag[: -len(sha[:7]) - 1]
    assert part and not part.startswith("-") and not part.endswith("-") and "--" not in part
    assert re.fullmatch(r"[a-z0-9-]+", part)
    assert tagging.branch_tag(name, sha) == tag  # same input, same output


@settings(max_examples=300)
@given(name=names, sha=shas, ref_type=st.sampled_from(["branch", "tag", None]))
def test_every_ref_gives_valid_tags_or_a_clear_refusal(name: str, sha: str, ref_type: tagging.RefType | None) -> None:
    try:
        tags = tagging.classify_ref(name, ref_type, sha, main_branch="main", dev_branch="development")
    except TagError as refused:
        assert refused.title in {"Ambiguous branch name", "Ambiguous tag name", "Release version too long"}
        return
    assert all(re.fullmatch(tagging.TAG_PATTERN, tag) for tag in tags.names)
    assert tags.primary in tags.names
    assert tags.primary not in {"latest", "dev", "nightly"}
    if tags.kind is Kind.BRANCH:
        assert tags.primary.endswith("-" + sha[:7])
    # A consumer that cannot see the ref type agrees with every build that was not refused.
    assert tagging.classify_ref(name, None, sha, main_branch="main", dev_branch="development") == tags


@given(name=names)
def test_sanitising_is_idempotent(name: str) -> None:
    once = tagging.sanitize_ref_name(name)
    assert tagging.sanitize_ref_name(once) == once
