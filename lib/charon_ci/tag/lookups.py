"""The two facts a tag can need that an event payload leaves out, asked of the GitHub API.

- A fork's pull request number in a `workflow_run` consumer: GitHub leaves `workflow_run.pull_requests`
  empty for PRs from forks (actions/runner#3444), and `commits/{sha}/pulls` on the base repository answers
  `[]` for fork-only commits. `pulls?head=OWNER:BRANCH&state=all` finds them; failing that, the open PRs
  whose head is the commit. Whatever is found must have the run's commit as its head, and exactly one PR
  must remain: otherwise this refuses rather than guesses.
- A nightly run's `created_at`: a schedule or dispatch payload has no run timestamp, and the consumer
  dates the nightly by `workflow_run.created_at`; the build reads the same field of its own run.

The choosing is pure (`choose_pull_request`); the fetching takes a `charon_ci.github.GithubClient`, which is
only built (and `requests` only imported) when a lookup is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from charon_ci import gha
from charon_ci.tag.events import PullLookup

if TYPE_CHECKING:
    from charon_ci.github import GithubClient

__all__ = ["choose_pull_request", "find_pull_request", "run_created_at"]

# Open pull requests scanned by head sha when the branch filter found none (100 a page).
MAX_OPEN_PULL_PAGES = 10
# The bound tag.events puts on the payload's numbers (JSON's largest exact integer): a number the API
# answers is held to the same, so `pr-{N}-{sha7}` is the same tag whichever way N was found.
MAX_PULL_NUMBER = 2**53


def choose_pull_request(pulls: Iterable[Mapping[str, Any]], head_sha: str, head_owner: str | None = None) -> int | None:
    """The one PR among `pulls` whose head is `head_sha`; None if there is none; refuses if several fit.

    Several PRs can share a head commit (a PR closed and opened again from the same branch, or two bases):
    an open one wins over closed ones, and `head_owner` narrows further; more than one left is ambiguous.
    """
    matching = [
        pull for pull in pulls
        if isinstance(pull, Mapping) and _text(_head(pull).get("sha")).lower() == head_sha.lower()
        and type(pull.get("number")) is int and pull["number"] > 0
    ]  # fmt: skip
    if head_owner is not None and len(matching) > 1:
        owned = [pull for pull in matching if _head_owner(pull).lower() == head_owner.lower()]
        matching = owned or matching
    if len(matching) > 1:
        open_ones = [pull for pull in matching if pull.get("state") == "open"]
        matching = open_ones or matching
    numbers = sorted({int(pull["number"]) for pull in matching})
    if len(numbers) > 1:
        raise gha.ActionFailure(
            "Ambiguous pull request",
            f"Commit {head_sha[:7]} is the head of pull requests {numbers}; refusing to guess which one the "
            "upstream run built.",
        )
    return numbers[0] if numbers else None


def find_pull_request(client: GithubClient, lookup: PullLookup) -> int:
    """The number of the (fork) pull request whose head is `lookup.head_sha`, or a clear ActionFailure."""
    from charon_ci import github

    owner, name = lookup.base_repository.split("/", 1)
    path = github.api_path("repos", owner, name, "pulls")
    try:
        by_branch = client.paginate(
            path, params={"head": f"{lookup.head_owner}:{lookup.head_branch}", "state": "all"}, max_pages=5
        )
        number = choose_pull_request(by_branch, lookup.head_sha, lookup.head_owner)
        if number is None:
            open_pulls = client.paginate(path, params={"state": "open"}, max_pages=MAX_OPEN_PULL_PAGES)
            number = choose_pull_request(open_pulls, lookup.head_sha, lookup.head_owner)
    except (github.Unauthorized, github.Forbidden, github.NotFound) as refused:
        raise gha.ActionFailure(
            "Pull request lookup refused",
            f"Listing pull requests of {lookup.base_repository} failed ({refused}). The fork lookup needs a "
            "token with `pull-requests: read` on the base repository (input github-token).",
        ) from None
    if number is None:
        raise gha.ActionFailure(
            "Pull request not found",
            f"No pull request of {lookup.base_repository} from {lookup.head_owner} has commit "
            f"{lookup.head_sha[:7]} as its head (workflow_run.pull_requests was empty, as GitHub leaves it for "
            "forks). The PR may have been updated since: this run's image is stale. Refusing to guess.",
        )
    if number > MAX_PULL_NUMBER:
        digits = str(number)
        shown = digits if len(digits) <= 20 else f"{digits[:20]}... ({len(digits)} digits)"
        raise gha.ActionFailure(
            "Pull request lookup failed",
            f"GitHub answered {shown} as the number of the pull request whose head is {lookup.head_sha[:7]}: "
            f"not a pull request number (1 to {MAX_PULL_NUMBER}). Refusing to tag with it.",
        )
    return number


def run_created_at(client: GithubClient, repository: str, run_id: int) -> str:
    """`created_at` of workflow run `run_id` (the first attempt's time; it does not move on re-runs)."""
    from charon_ci import github

    owner, name = repository.split("/", 1)
    try:
        run = client.get(github.api_path("repos", owner, name, "actions", "runs", run_id))
    except (github.Unauthorized, github.Forbidden, github.NotFound) as refused:
        raise gha.ActionFailure(
            "Workflow run lookup refused",
            f"Reading run {run_id} of {repository} failed ({refused}). Nightly tags are dated by the run's "
            "created_at, which needs a token with `actions: read` (input github-token).",
        ) from None
    created = run.get("created_at") if isinstance(run, Mapping) else None
    if not isinstance(created, str):
        raise gha.ActionFailure("Workflow run lookup failed", f"Run {run_id} of {repository} has no created_at.")
    return created


def _head(pull: Mapping[str, Any]) -> Mapping[str, Any]:
    head = pull.get("head")
    return head if isinstance(head, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _head_owner(pull: Mapping[str, Any]) -> str:
    repo = _head(pull).get("repo")
    owner = repo.get("owner") if isinstance(repo, Mapping) else None
    login = owner.get("login") if isinstance(owner, Mapping) else None
    if isinstance(login, str):
        return login
    user = _head(pull).get("user")
    login = user.get("login") if isinstance(user, Mapping) else None
    return login if isinstance(login, str) else ""
