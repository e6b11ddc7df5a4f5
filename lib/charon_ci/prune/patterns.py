"""Tag patterns from the inputs: `retention` globs and `protect` regular expressions.

Tags come from whoever can push, so no pattern may take more than linear time in the tag:
- `protect` lines run on RE2 (google-re2), which has no backtracking. A line must also be a valid Python
  regular expression meaning the same thing (the documented syntax), so the few constructs where the two
  read a pattern differently are refused rather than silently matching something else.
- `retention` globs become Python regexes in which every `*` but the last commits to the leftmost place its
  next literal part fits (an atomic group): leftmost is always right for a glob, and nothing is retried.
Each `protect` line is compiled and matched on its own (one RE2 set answers which lines match), so no line
can change what another means.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import re2

from charon_ci.gha import InputError

MAX_LINES = 200
MAX_PROTECT_CHARS = 1000
_GLOB_CHARS_RE = re.compile(r"[A-Za-z0-9_.*?-]{1,128}")
# `{` opens a repetition only in these forms; RE2 reads any other `{` as a literal while Python reads
# `{,n}` as a repetition: such a line would mean two things, so it is refused.
_REPETITION_RE = re.compile(r"\{\d+(?:,\d*)?\}")


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print its parse errors to stderr; we report them as input errors
    return options


# ---------------------------------------------------------------------------------------------- protect


@dataclass(frozen=True, slots=True)
class ProtectRule:
    source: str


class ProtectMatcher:
    """Which protect lines match a whole tag, in linear time; the first matching line is the one named."""

    def __init__(self, rules: Sequence[ProtectRule]) -> None:
        self.rules = tuple(rules)
        self._set: re2.Set | None = None
        if self.rules:
            regex_set = re2.Set.FullMatchSet(_re2_options())
            for rule in self.rules:
                regex_set.Add(rule.source)
            regex_set.Compile()
            self._set = regex_set

    def first_match(self, tag: str) -> str | None:
        if self._set is None:
            return None
        # Listed versions never hold a lone surrogate (listing.py refuses them); one made by hand still matches.
        hits = self._set.Match(tag.encode("utf-8", "surrogatepass"))
        return self.rules[min(hits)].source if hits else None


def parse_protect(lines: Sequence[str], input_name: str = "protect") -> tuple[ProtectRule, ...]:
    accepted = (
        "one regular expression a line, matched against the whole tag (RE2 syntax, which is Python's without "
        "backreferences or lookaround; repetition counts up to 1000)"
    )
    rules: list[ProtectRule] = []
    for raw in lines:
        source = raw.strip()
        if not source:
            continue
        if len(rules) >= MAX_LINES:
            raise InputError(input_name, f"{accepted}; at most {MAX_LINES} lines", source)
        problem = protect_problem(source)
        if problem is not None:
            raise InputError(input_name, f"{accepted} ({problem})", source)
        rules.append(ProtectRule(source))
    return tuple(rules)


def protect_problem(source: str) -> str | None:
    """Why `source` cannot be a protect line, or None."""
    if len(source) > MAX_PROTECT_CHARS:
        return f"at most {MAX_PROTECT_CHARS} characters"
    try:
        re2.compile(source, _re2_options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else "rejected"
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        return f"RE2 refuses it: {text}"
    # The documented language is Python's: what Python refuses or warns about (a nested set `[[:x:]]`
    # is a set to Python and a class to RE2) would mean something else than the user read.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            re.compile(source)
    except (re.error, OverflowError, RecursionError, FutureWarning, DeprecationWarning) as exc:
        return f"not a Python regular expression: {exc}"
    brace = _ambiguous_brace(source)
    if brace is not None:
        return f"`{{` at {brace + 1} is not a repetition {{n}}, {{n,}} or {{n,m}}; write \\{{ for a brace"
    return None


def _ambiguous_brace(source: str) -> int | None:
    """Position of an unescaped `{` outside a character class that does not open `{n}`, `{n,}`, `{n,m}`."""
    position = 0
    in_class = False
    while position < len(source):
        char = source[position]
        if char == "\\":
            position += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # `]` right after `[` or `[^` is a member, not the end
            if source[position + 1 : position + 2] == "^":
                position += 1
            if source[position + 1 : position + 2] == "]":
                position += 1
        elif char == "{" and not _REPETITION_RE.match(source, position):
            return position
        position += 1
    return None


# ---------------------------------------------------------------------------------------------- globs


def glob_to_regex(pattern: str) -> str:
    """`*` = any run of characters (also none), `?` = exactly one, everything else literal.

    Between two `*`, a literal part is matched where it first fits and never retried elsewhere
    (`(?>.*?part)`): if a tag matches at all, it matches that way, so no tag can make matching slow."""
    parts = [_glob_part(part) for part in pattern.split("*")]
    if len(parts) == 1:
        return parts[0]
    middle = "".join(f"(?>.*?{part})" for part in parts[1:-1] if part)
    return f"{parts[0]}{middle}.*{parts[-1]}"


def _glob_part(part: str) -> str:
    return "".join("." if ch == "?" else re.escape(ch) for ch in part)


def is_glob(pattern: str) -> bool:
    return _GLOB_CHARS_RE.fullmatch(pattern) is not None
