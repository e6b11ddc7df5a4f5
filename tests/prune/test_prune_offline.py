"""`charon-ci prune` offline: the bundled snapshot planned through action-prune/action.yml, no network,
bad inputs refused with one error line and nothing written."""

from __future__ import annotations

import io
import json
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from charon_ci import gha
from charon_ci.prune import command as prune
from charon_ci.prune import listing, snapshot
from charon_ci.prune.policy import OFFLINE_UNTAGGED
from charon_ci.prune.report import md_cell
from tests.support.composite import ActionRunner, parse_commands

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action-prune"
SNAPSHOT = ROOT / "examples" / "registry-snapshot.json"
VENV_BIN = ROOT / ".venv" / "bin"
ENTRYPOINT = ["sh", str(ROOT / "docker" / "prune-entrypoint.sh")]
NOW = "2026-02-04T03:00:00Z"

# A sitecustomize that makes any network use fail loudly and leaves a mark: "no network is touched".
NO_NETWORK = """
import socket, sys
def _refuse(*args, **kwargs):
    open(__file__ + ".touched", "w").write(repr(args))
    raise OSError("network use in an offline run")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""

EXPECTED_DELETIONS = {
    # sha-* older than 30 days (main and development pushes), the re-tagged old digest, and the digest
    # that carries both a sha tag and a PR tag
    "sha-3a26d1c", "sha-c2526b8", "sha-64f8509", "sha-3e3cf1b", "sha-efc5a59", "sha-aeb0f61",
    "sha-d18aac9,pr-119-d18aac9",
    # nightlies older than 7 days
    *(f"nightly-2026-01-{day}" for day in range(20, 29)),
    # a feature branch older than 7 days; PR images older than 24h and older than min-age 48h
    "feature-dns-provider-9868021", "pr-118-52f696b", "pr-121-be1c8c8", "pr-123-747b29c",
}  # fmt: skip


@pytest.fixture
def guard(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    return site


def run_action(runner: ActionRunner, guard: Path, **inputs: str):  # type: ignore[no-untyped-def]
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "PYTHONPATH": str(guard), "GITHUB_REPOSITORY_OWNER": "wikid82"}
    return runner.run(ACTION, inputs, env=env, docker_entrypoint=ENTRYPOINT)


def test_bundled_snapshot_plan_through_the_action(action_runner: ActionRunner, guard: Path) -> None:
    result = run_action(action_runner, guard, snapshot=str(SNAPSHOT), now=NOW)
    step = result.steps[0]
    assert result.exit_code == 0, step.stdout + step.stderr
    assert not (guard / "sitecustomize.py.touched").exists(), "the offline run touched the network"
    out = result.outputs
    assert out["planned-count"] == "20" and out["deleted-count"] == "0" and out["remaining-count"] == "20"
    assert out["kept-count"] == "190" and out["failed-count"] == "0" and out["bytes-freed"] == "0"
    # The path is relative to the workspace, so a later step finds it (a container's /github/workspace
    # is another path on the runner).
    assert not Path(out["plan-path"]).is_absolute()
    plan_files = list(action_runner.runner_temp.glob("job-*/workspace/" + out["plan-path"]))
    assert len(plan_files) == 1
    document = json.loads(plan_files[-1].read_text())
    assert set(document) >= {"delete", "keep"}
    deleted = {",".join(item["tags"]) for item in document["delete"]}
    assert deleted == EXPECTED_DELETIONS
    for item in document["delete"] + document["keep"]:
        assert {"id", "digest", "tags", "reasons"} <= set(item) and item["reasons"]
    # Untagged versions are never deleted without manifest data; protected and young ones are kept.
    assert all(item["tags"] for item in document["delete"])
    kept = {tag for item in document["keep"] for tag in item["tags"]}
    assert {"latest", "dev", "v0.7.0", "0.7", "v0.9.0", "debug-tls", "pr-125-4338fdb"} <= kept
    # The re-tagged digest is judged by created_at (45 days), not updated_at (yesterday).
    [retagged] = [item for item in document["delete"] if item["tags"] == ["sha-aeb0f61"]]
    assert retagged["reasons"] == ["sha-aeb0f61 expired (age 45d > sha-*=30d)"]
    # Oldest first.
    created = [item["created_at"] for item in document["delete"]]
    assert created == sorted(created)
    # The log names the deciding tag for every version; the summary has the table and the tally.
    assert "would delete sha-d18aac9,pr-119-d18aac9" in step.stdout
    # A line for each version decided for something of its own; the untagged ones kept only because a
    # snapshot has no manifests are counted in one line (the plan file lists each).
    alike = [item for item in document["keep"] if item["reasons"] == [OFFLINE_UNTAGGED]]
    per_version = [line for line in step.stdout.splitlines() if ", id " in line]
    assert len(alike) > 100 and len(per_version) == 210 - len(alike)
    assert not any(OFFLINE_UNTAGGED in line for line in per_version)
    assert f"keep {len(alike)} untagged versions alike, each listed in the plan file: kept: {OFFLINE_UNTAGGED}" in (
        step.stdout.splitlines()
    )
    assert "kept: sha-7d743f5 not expired (age 1d3h < sha-*=30d); latest protected (/latest/)" in step.stdout
    assert "### What goes and why (oldest first)" in result.summary
    assert "| protected tag |" in result.summary
    notices = [c for c in parse_commands(step.stdout) if c.name == "notice"]
    assert any("in-use facts not checked" in c.message for c in notices)


def test_snapshot_with_hostile_tags_cannot_inject(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = tmp_path / "snap.json"

    def version(n: int, tags: list[str]) -> dict[str, object]:
        return {"id": n, "name": f"sha256:{n:064x}", "created_at": "2025-01-01T00:00:00Z", "url": "u",
                "package_html_url": "p", "updated_at": "2025-01-01T00:00:00Z",
                "metadata": {"package_type": "container", "container": {"tags": tags}}}  # fmt: skip

    # Two expire (table rows), one matches no rule (a newline never matches a glob) and is kept.
    hostile = [version(1, ["sha-x|<img src=x>`y`"]), version(2, ["z\n::error::pwned"]),
               version(3, ["sha-##[error]legacy![i](http://e/x.png)"])]  # fmt: skip
    snapshot.write_text(json.dumps(hostile))
    summary = tmp_path / "summary.md"
    env = {"INPUT_SNAPSHOT": str(snapshot), "INPUT_NOW": NOW, "GITHUB_STEP_SUMMARY": str(summary),
           "INPUT_PLAN-FILE": str(tmp_path / "plan.json")}  # fmt: skip
    assert gha.run_action(lambda: prune.main(env), env) == 0
    stdout = capsys.readouterr().out
    assert not [c for c in parse_commands(stdout) if c.name == "error"]
    text = summary.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| dry run |")]
    assert len(rows) == 2 and all(row.count("|") - row.count("\\|") == 6 for row in rows)
    assert "<img" not in text and "](" not in text and "sha-x\\\\x7c\\\\x3cimg" in text
    # One physical log line per version; no runner command (`::x::` at a line start, `##[x]` anywhere).
    assert "##[" not in stdout and "\n::error::pwned" not in stdout and '"z\\x0a\\x3a\\x3aerror' in stdout
    assert len([line for line in stdout.splitlines() if ", id " in line]) == 3
    assert md_cell("a|b\n<c>`d`") == "a\\|b &lt;c&gt;'d'"
    assert md_cell("![i](u) *x*") == "!\\[i\\](u) \\*x\\*"


def call(env: dict[str, str], tmp_path: Path) -> tuple[int, list[gha.ActionFailure | object], str]:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = gha.run_action(lambda: prune.main(env), env)
    out = buffer.getvalue()
    return code, parse_commands(out), out


BAD_INPUTS = [
    ({"INPUT_RETENTION": "pr-*=soon"}, "retention"),
    ({"INPUT_RETENTION": "pr-[0-9]*=24h"}, "retention"),
    ({"INPUT_PROTECT": "v(1"}, "protect"),
    ({"INPUT_MIN-AGE": "2 days"}, "min-age"),
    ({"INPUT_KEEP-LAST": "-1"}, "keep-last"),
    ({"INPUT_DRY-RUN": "yes"}, "dry-run"),
    ({"INPUT_REGISTRY": "quay"}, "registry"),
    ({"INPUT_NOW": "2026-02-04 03:00"}, "now"),
    ({"INPUT_DRY-RUN": "false"}, "dry-run"),
    ({"INPUT_SNAPSHOT": "/nonexistent/snapshot.json"}, "snapshot"),
    ({"INPUT_SNAPSHOT": "__NOT_A_LIST__"}, "snapshot"),
    ({"INPUT_SNAPSHOT": "__TOO_DEEP__"}, "snapshot"),
    ({"INPUT_OWNER": "not a login"}, "owner"),
    ({"INPUT_PACKAGE": "Charon"}, "package"),
    # Numbers are bounded before Python converts them (int() refuses 4,300+ digits with a ValueError).
    ({"INPUT_MIN-AGE": "9" * 5000 + "h"}, "min-age"),
    ({"INPUT_KEEP-LAST": "9" * 5000}, "keep-last"),
    ({"INPUT_RETENTION": "sha-*=" + "9" * 5000 + "d"}, "retention"),
    ({"INPUT_PROTECT": "a{99999999999}"}, "protect"),
    # What the linear-time engine cannot do, and what it would read otherwise than Python does.
    ({"INPUT_PROTECT": "latest\n(a)\\1"}, "protect"),
    ({"INPUT_PROTECT": "(?=v)v1"}, "protect"),
    ({"INPUT_PROTECT": "v{,3}"}, "protect"),
    ({"INPUT_PROTECT": "[[:digit:]]+"}, "protect"),
    ({"INPUT_PROTECT": "a{1001}"}, "protect"),
    # The plan file is known writable before planning (and, online, before any request).
    ({"INPUT_PLAN-FILE": "/"}, "plan-file"),
    ({"INPUT_PLAN-FILE": "__NOT_A_LIST__/plan.json"}, "plan-file"),
    ({"INPUT_PLAN-FILE": "__TMP__"}, "plan-file"),
]


@pytest.mark.parametrize(("bad", "name"), BAD_INPUTS)
def test_bad_input_one_error_nothing_written(bad: dict[str, str], name: str, tmp_path: Path) -> None:
    not_a_list = tmp_path / "object.json"
    not_a_list.write_text('{"versions": []}')
    too_deep = tmp_path / "deep.json"
    too_deep.write_text("[" * 100_000 + "]" * 100_000)
    plan_file = tmp_path / "plan.json"
    outputs = tmp_path / "outputs"
    outputs.write_text("")
    env = {"INPUT_SNAPSHOT": str(SNAPSHOT), "INPUT_NOW": NOW, "INPUT_PLAN-FILE": str(plan_file),
           "GITHUB_OUTPUT": str(outputs)}  # fmt: skip
    env.update({k: v.replace("__NOT_A_LIST__", str(not_a_list)).replace("__TOO_DEEP__", str(too_deep))
                .replace("__TMP__", str(tmp_path)) for k, v in bad.items()})  # fmt: skip
    code, commands, out = call(env, tmp_path)
    errors = [c for c in commands if c.name == "error"]  # type: ignore[attr-defined]
    assert code == 1
    assert len(errors) == 1, out
    assert errors[0].properties["title"] == f"Invalid input '{name}'"  # type: ignore[attr-defined]
    assert "Traceback" not in out
    assert not plan_file.exists() and outputs.read_text() == ""


def test_online_inputs_are_required_before_any_request(tmp_path: Path) -> None:
    code, commands, out = call({"INPUT_PACKAGE": "charon", "GITHUB_REPOSITORY_OWNER": "wikid82"}, tmp_path)
    errors = [c for c in commands if c.name == "error"]  # type: ignore[attr-defined]
    assert code == 1 and len(errors) == 1
    assert errors[0].properties["title"] == "Invalid input 'token'"  # type: ignore[attr-defined]
    code, commands, out = call({"INPUT_NOW": NOW, "INPUT_PACKAGE": "charon"}, tmp_path)
    assert code == 1 and "Invalid input 'now'" in out


def test_the_github_token_stands_in_for_the_registry_token_on_ghcr_only(tmp_path: Path) -> None:
    online = {"INPUT_PACKAGE": "charon", "INPUT_OWNER": "wikid82", "GITHUB_REPOSITORY": "wikid82/charon",
              "INPUT_GITHUB-TOKEN": "ghs_runner_token"}  # fmt: skip
    assert prune.parse_settings(online).token == "ghs_runner_token"
    # Docker Hub: a missing access token is an input error, never the GitHub token sent to hub.docker.com.
    code, commands, _out = call({**online, "INPUT_REGISTRY": "dockerhub"}, tmp_path)
    errors = [c for c in commands if c.name == "error"]  # type: ignore[attr-defined]
    assert code == 1 and len(errors) == 1
    assert errors[0].properties["title"] == "Invalid input 'token'"  # type: ignore[attr-defined]
    action = yaml.safe_load((ACTION / "action.yml").read_text())
    assert action["inputs"]["token"]["default"] == "", "a github.token default would reach Docker Hub"


def test_help_and_arguments() -> None:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert prune.run(["--help"]) == 0
    assert "INPUT_SNAPSHOT" in buffer.getvalue()


def test_container_entrypoint_hands_hyphenated_inputs_to_charon_ci(tmp_path: Path) -> None:
    """The runner passes `INPUT_DRY-RUN`, `INPUT_MIN-AGE`, ... with hyphens; a POSIX sh that is dash (Debian's
    /bin/sh, also in the python slim image) drops such variables when it execs. Then `dry-run: false` would
    silently become the default. This pins that the entrypoint passes them on."""
    stub = tmp_path / "charon-ci"
    stub.write_text(
        "#!/usr/bin/env python3\nimport os\nprint(sorted(k for k in os.environ if k.startswith('INPUT_')))\n"
    )
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "INPUT_DRY-RUN": "false", "INPUT_MIN-AGE": "1h", "INPUT_PACKAGE": "x"}
    completed = subprocess.run(
        # Run as the image runs it: by its shebang.
        [str(ROOT / "docker" / "prune-entrypoint.sh")], env=env, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "['INPUT_DRY-RUN', 'INPUT_MIN-AGE', 'INPUT_PACKAGE']"


def test_example_workflow_and_readme_match_the_action() -> None:
    import yaml

    action = yaml.safe_load((ACTION / "action.yml").read_text())
    inputs, outputs = set(action["inputs"]), set(action["outputs"])
    workflow = yaml.safe_load((ROOT / "examples" / "workflows" / "container-prune.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"] if "action-prune@" in s.get("uses", "")]
    assert len(steps) == 2
    for step in steps:
        assert set(step["with"]) <= inputs, set(step["with"]) - inputs
    assert workflow["permissions"] == {} and "concurrency" in workflow
    assert {"schedule", "workflow_dispatch"} <= set(workflow[True] if True in workflow else workflow["on"])
    readme = (ACTION / "README.md").read_text()
    for name in inputs | outputs:
        assert f"`{name}`" in readme, f"README does not document {name}"


def test_snapshot_may_be_gh_api_paginate_output(tmp_path: Path) -> None:
    pages = json.loads(SNAPSHOT.read_text())
    paginated = tmp_path / "paginated.json"
    paginated.write_text(json.dumps(pages[:100]) + json.dumps(pages[100:200]) + "\n" + json.dumps(pages[200:]))
    assert len(prune.load_snapshot(paginated)) == len(pages) == 210
    for junk in ("", "[] {}", "[1]"):
        paginated.write_text(junk)
        with pytest.raises(gha.InputError):
            prune.load_snapshot(paginated)


def snapshot_of(path: Path, tags: list[list[str]], created: str = "2025-01-01T00:00:00Z") -> Path:
    """A versions list as GitHub returns it, one version per tag list, all created at `created`."""
    items = [
        {"id": n, "name": f"sha256:{n:064x}", "url": "u", "package_html_url": "p", "created_at": created,
         "updated_at": created, "metadata": {"package_type": "container", "container": {"tags": version_tags}}}
        for n, version_tags in enumerate(tags, start=1)
    ]  # fmt: skip
    path.write_text(json.dumps(items))
    return path


def test_each_protect_line_protects_on_its_own(tmp_path: Path) -> None:
    """Joined into one alternation, `(a)\\1` refers to `(v)`'s group and `aa` lost its protection; now a
    line the linear-time engine cannot run is refused by name, and every other line keeps its own meaning."""
    snapshot = snapshot_of(tmp_path / "snap.json", [["aa"], ["12.12"], ["vx"], ["gone"]])
    plan_file = tmp_path / "plan.json"
    env = {"INPUT_SNAPSHOT": str(snapshot), "INPUT_NOW": NOW, "INPUT_PLAN-FILE": str(plan_file),
           "INPUT_RETENTION": "*=1h", "INPUT_PROTECT": "(v)x\n(a)\\1\n(\\d+)\\.\\1"}  # fmt: skip
    code, commands, out = call(env, tmp_path)
    errors = [c for c in commands if c.name == "error"]  # type: ignore[attr-defined]
    assert code == 1 and len(errors) == 1, out
    assert errors[0].properties["title"] == "Invalid input 'protect'"  # type: ignore[attr-defined]
    assert "'(a)\\\\1'" in errors[0].message and "backreferences" in errors[0].message  # type: ignore[attr-defined]
    assert not plan_file.exists()

    # The same intent without backreferences: each line protects what it alone matches.
    env["INPUT_PROTECT"] = "(v)x\n(a)a\n(?P<n>\\d+)\\.(?P<m>\\d+)\n(?P<n>g)one-not"
    code, commands, out = call(env, tmp_path)
    assert code == 0, out
    document = json.loads(plan_file.read_text())
    assert [item["tags"] for item in document["delete"]] == [["gone"]]
    reasons = {item["tags"][0]: item["reasons"][0] for item in document["keep"]}
    assert reasons == {"aa": "aa protected (/(a)a/)", "12.12": "12.12 protected (/(?P<n>\\d+)\\.(?P<m>\\d+)/)",
                       "vx": "vx protected (/(v)x/)"}  # fmt: skip


def test_no_pattern_can_hang_a_run(tmp_path: Path) -> None:
    """`(a+)+b` against 34 `a`s backtracks 2**34 times in Python's engine, and the glob `*a*a*...*c`
    against 120 `a`s polynomially worse: the launcher must finish both in seconds (timeout = failure)."""
    snapshot = snapshot_of(tmp_path / "snap.json", [["a" * 34], ["a" * 120], ["ba" * 20 + "c"]])
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "INPUT_SNAPSHOT": str(snapshot), "INPUT_NOW": NOW,
           "INPUT_PLAN-FILE": str(tmp_path / "plan.json"), "INPUT_PROTECT": "(a+)+b\n(x|x?)+y",
           "INPUT_RETENTION": "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c=1h\n*=2h"}  # fmt: skip
    completed = subprocess.run(
        [str(VENV_BIN / "charon-ci"), "prune"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr
    document = json.loads((tmp_path / "plan.json").read_text())
    deleted = {item["tags"][0]: item["reasons"][0] for item in document["delete"]}
    assert deleted == {
        "a" * 34: f"{'a' * 34} expired (age 399d3h > *=2h)",
        "a" * 120: f"{'a' * 120} expired (age 399d3h > *=2h)",
        "ba" * 20 + "c": f"{'ba' * 20}c expired (age 399d3h > *a*a*a*a*a*a*a*a*a*a*a*a*a*a*c=1h)",
    }
    assert completed.stderr == "", "RE2 must not print its own diagnostics"


def test_prune_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """`charon-ci prune | head`: the reader leaves after a few lines; the command still finishes its work
    (plan file, outputs) with no BrokenPipe traceback and no internal error."""
    snapshot = snapshot_of(tmp_path / "snap.json", [[f"sha-{n:07x}"] for n in range(3000)])
    outputs = tmp_path / "outputs"
    outputs.write_text("")
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "INPUT_SNAPSHOT": str(snapshot), "INPUT_NOW": NOW,
           "INPUT_PLAN-FILE": str(tmp_path / "plan.json"), "GITHUB_OUTPUT": str(outputs)}  # fmt: skip
    process = subprocess.Popen(
        [str(VENV_BIN / "charon-ci"), "prune"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    head = [process.stdout.readline() for _ in range(3)]
    process.stdout.close()  # what `head -3` does once it has its lines
    code = process.wait(timeout=120)
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert head[1].startswith(b"::group::Plan: 3000 to delete")
    assert code == 0 and stderr == "", stderr[-2000:]
    assert len(json.loads((tmp_path / "plan.json").read_text())["delete"]) == 3000
    assert "planned-count<<" in outputs.read_text()


def _version_item(n: int) -> dict[str, object]:
    """A version as GitHub lists it, with members the reader skips that hold `},` (where the bulk decoder
    cuts), numbers, literals and nested values."""
    return {"id": n, "name": f"sha256:{n:x}", "url": "},{" * (n % 3), "created_at": f"2026-01-01T00:{n % 60:02d}:00Z",
            "metadata": {"package_type": "container", "container": {"tags": ["a" * n, "},{"][: 1 + n % 2]}},
            "n": n * 1.5, "ok": n % 2 == 0, "nested": [{"a": n}, {"b": [{}, {"c": None}]}]}  # fmt: skip


def _snapshot_text(pages: list[list[dict[str, object]]], space: str) -> str:
    return space.join(space + json.dumps(page, indent=1 if space else None) for page in pages) + space


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(1, 40), max_size=6), min_size=1, max_size=4),
    st.sampled_from(["", " ", "\n", " \n\t"]),
    st.sampled_from([1, 7, 64, 300, 1 << 20]),
)
def test_snapshot_is_decoded_item_by_item_across_any_chunk_boundary(
    pages: list[list[int]], space: str, chunk: int
) -> None:
    """The streaming reader gives what json.loads and the row rules give page by page, wherever the chunks cut
    the text (inside strings, numbers, between items, between pages)."""
    items = [[_version_item(n) for n in page] for page in pages]
    decoded = list(snapshot.version_rows(io.StringIO(_snapshot_text(items, space)), chunk=chunk))
    assert decoded == [listing.row_from_item(item, 0) for page in items for item in page]
    assert all(row.metadata.container.tags[:1] == ("a" * row.id,) for row in decoded)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 60),
    st.data(),
    st.sampled_from(["", "\n"]),
    st.sampled_from([7, 64, 300, 1 << 20]),
)
def test_a_bad_item_is_named_by_its_position_across_any_chunk_boundary(
    count: int, data: st.DataObject, space: str, chunk: int
) -> None:
    """Decoded in bulk or one by one, the first item that is no version is the one the error names."""
    items = [_version_item(n) for n in range(1, count + 1)]
    bad = data.draw(st.integers(0, count - 1))
    member, value, complaint = data.draw(st.sampled_from([
        ("id", "7", "Expected `int`, got `str` - at `id`"),
        ("id", True, "Expected `int`, got `bool` - at `id`"),
        ("name", "", "Expected `str` of length >= 1 - at `name`"),
        ("created_at", "yesterday", "Invalid RFC3339 encoded datetime - at `created_at`"),
        ("metadata", {"container": {"tags": "latest"}}, "Expected `array`, got `str` - at `metadata.container.tags`"),
    ]))  # fmt: skip
    items[bad] = {**items[bad], member: value}
    split = data.draw(st.integers(0, count))
    text = _snapshot_text([items[:split], items[split:]], space)
    with pytest.raises(listing.NotAVersion) as caught:
        list(snapshot.version_rows(io.StringIO(text), chunk=chunk))
    assert (caught.value.position, caught.value.detail) == (bad, complaint)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("", "empty"), ("  \n", "empty"), ("{}", "expected a JSON list"), ("[V, V", "does not end"),
     ("[V V]", "expected , or ]"), ("[] x", "expected a JSON list"), ('[{"a": }]', "Expecting value"),
     ("[1]", "item 0 is not a container package version (Expected `object`, got `int`)"),
     ('[V, {"id": 2, "name": "sha256:2"}]',
      "item 1 is not a container package version (Object missing required field `created_at`)"),
     ('[V, {"id": 2, "name": "sha256:1", "created_at": "2026-01-01T00:00:00Z"}]',
      "item 1 repeats the id or digest of another version"),
     # Python's decoder (the item-by-item path) makes a lone surrogate of this escape; msgspec's refuses it.
     ('[V, {"id": 2, "name": "sha256:2", "created_at": "2026-01-01T00:00:00Z", "metadata": {"container":'
      ' {"tags": ["ok", "\\udcff"]}}}]',
      "item 1 is not a container package version (a lone UTF-16 surrogate - at `metadata.container.tags[1]`)"),
     ("[" * 50_000, "nested too deeply")],
)  # fmt: skip
def test_snapshot_junk_is_an_input_error(text: str, complaint: str, tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    version = {"id": 1, "name": "sha256:1", "created_at": "2026-01-01T00:00:00Z", "metadata": {}}
    path.write_text(text.replace("V", json.dumps(version)))
    with pytest.raises(gha.InputError) as caught:
        prune.load_snapshot(path)
    assert caught.value.name == "snapshot" and complaint in caught.value.accepted


def test_the_plan_file_holds_each_decision_exactly_as_its_as_json() -> None:
    """The plan file's lines are encoded a batch at a time (report._write_items): they must stay what
    `Decision.as_json` says, for times in UTC to the second, with microseconds, in another zone, and for
    hostile tags (quotes, backslashes, line separators)."""
    from datetime import UTC, datetime, timedelta, timezone

    from charon_ci.prune.model import InUse, PackageVersion
    from charon_ci.prune.policy import build_policy, plan
    from charon_ci.prune.report import Outcome, write_plan_json

    now = datetime(2026, 2, 4, 3, tzinfo=UTC)
    old = now - timedelta(days=40)
    versions = [
        PackageVersion(1, "sha256:" + "1" * 64, ("sha-1111111",), old),
        PackageVersion(2, "sha256:" + "2" * 64, ("sha-2222222", 'x"\\\u2028y'), old + timedelta(microseconds=5)),
        PackageVersion(3, "sha256:" + "3" * 64, ("sha-3333333",), old.astimezone(timezone(timedelta(hours=2)))),
        PackageVersion(4, "sha256:" + "4" * 64, (), old),
        PackageVersion(5, "sha256:" + "5" * 64, ("latest",), datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)),
        PackageVersion(6, "sha256:" + "6" * 64, (), now - timedelta(hours=1)),
    ]
    result = plan(versions, build_policy([], []), InUse(checked=False), now)
    assert result.delete and result.keep
    out = io.StringIO()
    write_plan_json(out, result, build_policy([], []), package="p", registry="ghcr", dry_run=True,
                    outcome=Outcome(remaining=list(result.delete)))  # fmt: skip
    written = json.loads(out.getvalue())
    assert [{k: v for k, v in item.items() if k != "result"} for item in written["delete"]] == [
        d.as_json() for d in result.delete
    ]
    assert written["keep"] == [d.as_json() for d in result.keep]
    lines = out.getvalue().split("\n")
    assert len(lines) == len(versions) + 6, "one version a line, and a line for each of the document's parts"
