"""action-tag's pure core: sanitising (spec 3.2), the taxonomy (spec 3.1), image names and labels."""

from __future__ import annotations

import re

import pytest

from charon_ci.tag import tagging
from charon_ci.tag.tagging import Kind, TagError

SHA = "abc1234def5678901234567890abcdef12345678"


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        # The spec's five transformation examples, all normative.
        ("feature/Add_New-Feature", "feature-add-new-feature-abc1234"),
        ("feature/dns/subdomain", "feature-dns-subdomain-abc1234"),
        ("feature/fix-#123", "feature-fix-123-abc1234"),
        ("HOTFIX/Critical-Bug", "hotfix-critical-bug-abc1234"),
        ("dependabot/npm_and_yarn/frontend/vite-5.0.12", "dependabot-npm-and-yarn-frontend-vite-5-0-12-abc1234"),
    ],
)
def test_spec_examples(branch: str, expected: str) -> None:
    assert tagging.branch_tag(branch, SHA) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("--a--b--", "a-b"),
        ("a..b__c", "a-b-c"),
        ('zzz";echo${IFS}"hello";#', "zzz-echo-ifs-hello"),
        ("::add-mask::secret", "add-mask-secret"),
        ("line1\nline2\r\n", "line1-line2"),
        ("Straße/Ärger", "stra-e-rger"),
        # Non-ASCII letters never become ASCII ones: KELVIN SIGN lowercases to "k" with str.lower().
        ("\u212aelvin", "elvin"),
        ("\u0130stanbul", "stanbul"),
        ("\uff26\uff35\uff2c\uff2c", ""),  # FULLWIDTH "FULL"
        ("日本語", ""),
        ("///", ""),
        ("", ""),
    ],
)
def test_sanitize(name: str, expected: str) -> None:
    assert tagging.sanitize_ref_name(name) == expected


def test_name_that_sanitises_to_nothing_gets_the_documented_fallback() -> None:
    tags = tagging.classify_ref("日本語/#", "branch", SHA, main_branch="main", dev_branch="development")
    assert tags.names == ("branch-abc1234",)
    assert tags.kind is Kind.BRANCH
    assert tags.notes and "branch-abc1234" in tags.notes[0]


def test_long_branch_is_cut_so_the_whole_tag_fits_and_retrimmed() -> None:
    # 119 letters then a dash at position 120 (cut there) then more: the cut must not leave a trailing dash.
    name = "a" * 119 + "/" + "b" * 500
    tag = tagging.branch_tag(name, SHA)
    assert tag == "a" * 119 + "-abc1234"
    assert len(tagging.branch_tag("x" * 10_000, SHA)) == 128
    assert tagging.branch_tag("x" * 10_000, SHA).endswith("x-abc1234")


def test_short_sha_is_seven_hex_of_the_built_commit() -> None:
    assert tagging.short_sha(SHA) == "abc1234"
    assert tagging.validate_sha(SHA.upper(), "x") == SHA


@pytest.mark.parametrize("bad", ["", "abc1234", SHA + "0", "g" * 40, " " + SHA[1:], None, 1234])
def test_invalid_sha_is_refused(bad: object) -> None:
    with pytest.raises(TagError, match="40-hex"):
        tagging.validate_sha(bad, "GITHUB_SHA")  # type: ignore[arg-type]


def classify(name: str, ref_type: tagging.RefType | None) -> tagging.TagSet:
    return tagging.classify_ref(name, ref_type, SHA, main_branch="main", dev_branch="development")


@pytest.mark.parametrize("ref_type", ["branch", None])
def test_main_and_dev_branches(ref_type: tagging.RefType | None) -> None:
    main = classify("main", ref_type)
    assert (main.kind, main.names, main.primary) == (Kind.MAIN, ("latest", "sha-abc1234"), "sha-abc1234")
    dev = classify("development", ref_type)
    assert (dev.kind, dev.names, dev.primary) == (Kind.DEV, ("dev", "sha-abc1234"), "sha-abc1234")


def test_main_and_dev_branch_names_are_inputs() -> None:
    tags = tagging.classify_ref("trunk", "branch", SHA, main_branch="trunk", dev_branch="next")
    assert tags.kind is Kind.MAIN
    assert tagging.classify_ref("main", "branch", SHA, main_branch="trunk", dev_branch="next").kind is Kind.BRANCH


@pytest.mark.parametrize(
    ("name", "names"),
    [
        ("v1.2.3", ("v1.2.3", "1.2")),
        ("1.2.3", ("1.2.3", "1.2")),
        ("v10.20.30", ("v10.20.30", "10.20")),
        ("v2.0.0-rc.1", ("v2.0.0-rc.1",)),
        ("v1.0.0-alpha", ("v1.0.0-alpha",)),
        ("v1.2.3+build.5", ("v1.2.3_build.5", "1.2")),
        ("v1.2.3-rc.1+build.5", ("v1.2.3-rc.1_build.5",)),
    ],
)
@pytest.mark.parametrize("ref_type", ["tag", None])
def test_release_versions(name: str, names: tuple[str, ...], ref_type: tagging.RefType | None) -> None:
    tags = classify(name, ref_type)
    assert (tags.kind, tags.names, tags.primary, tags.version) == (Kind.RELEASE, names, names[0], name)


@pytest.mark.parametrize("name", ["simple-tag", "v1.2", "V1.2.3", "v01.2.3", "1.2.3.4", "release/1.2.3", "v1.2.3-"])
def test_tag_that_is_no_release_version_is_tagged_like_a_branch(name: str) -> None:
    tags = classify(name, "tag")
    assert tags.kind is Kind.BRANCH
    assert tags.names == (tagging.branch_tag(name, SHA),)
    assert tags == classify(name, None)


def test_branch_named_like_a_release_is_refused() -> None:
    with pytest.raises(TagError, match="named like a release version") as caught:
        classify("v1.2.3", "branch")
    assert caught.value.title == "Ambiguous branch name"


@pytest.mark.parametrize("name", ["main", "development"])
def test_tag_named_like_the_main_or_dev_branch_is_refused(name: str) -> None:
    with pytest.raises(TagError, match="has the name of the"):
        classify(name, "tag")


def test_pull_request_and_nightly_tags() -> None:
    pr = tagging.pull_request_tags(123, SHA)
    assert (pr.kind, pr.names, pr.primary, pr.pr_number) == (Kind.PR, ("pr-123-abc1234",), "pr-123-abc1234", 123)
    nightly = tagging.nightly_tags("2026-02-04")
    assert (nightly.kind, nightly.names, nightly.primary) == (
        Kind.NIGHTLY, ("nightly", "nightly-2026-02-04"), "nightly-2026-02-04",
    )  # fmt: skip
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        tagging.nightly_tags("2026-2-4")


def test_tag_set_refuses_invalid_tags() -> None:
    with pytest.raises(ValueError, match="not a valid tag"):
        tagging.TagSet(Kind.BRANCH, ("-bad",), "-bad", "-bad")
    with pytest.raises(ValueError, match="primary"):
        tagging.TagSet(Kind.BRANCH, ("a",), "b", "b")


@pytest.mark.parametrize(
    "tag", ["a", "_", "A.b-c_d", "x" * 128, "-a", ".a", "", "x" * 129, "a:b", "a/b", "é", "a\n", "a b"]
)
def test_is_valid_tag_agrees_with_the_distribution_grammar(tag: str) -> None:
    assert tagging.is_valid_tag(tag) is (re.fullmatch(tagging.TAG_PATTERN, tag) is not None)


@pytest.mark.parametrize(
    "name", ["ghcr.io/octo-org/app", "app", "library/app", "localhost:5000/a/b", "127.0.0.1:5000/x", "a.b/c__d/e-f"]
)
def test_valid_image_names(name: str) -> None:
    assert tagging.validate_image_name(name) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ghcr.io/Octo-Org/app", "lowercase"),
        ("ghcr.io/o/app:latest", "no tag"),
        ("ghcr.io/o/app@sha256:" + "a" * 64, "no digest"),
        ("ghcr.io/o/-app", "path components"),
        ("ghcr.io/o//app", "path components"),
        ("-bad.io/o/app", "registry host"),
        ("ghcr.io/" + "a" * 260, "at most 255"),
        ("ghcr.io/o/app\nghcr.io/o/b", "path components"),
    ],
)
def test_invalid_image_names(name: str, reason: str) -> None:
    problem = tagging.validate_image_name(name)
    assert problem is not None and reason in problem


def test_image_references_and_labels() -> None:
    assert tagging.image_references(["a/x", "b/y"], ["t1", "t2"]) == ["a/x:t1", "a/x:t2", "b/y:t1", "b/y:t2"]
    labels = tagging.oci_labels(sha=SHA, source_url="https://github.com/o/r", created="2026-01-01T00:00:00Z",
                                version="v1.2.3")  # fmt: skip
    assert tagging.format_labels(labels).splitlines() == [
        f"org.opencontainers.image.revision={SHA}",
        "org.opencontainers.image.source=https://github.com/o/r",
        "org.opencontainers.image.created=2026-01-01T00:00:00Z",
        "org.opencontainers.image.version=v1.2.3",
        "org.opencontainers.image.url=https://github.com/o/r",
    ]
