"""YAML as PyYAML's node tree, with the problems found in it, each located.

A :class:`Doc` composes the text (never constructs it wholesale) so every value keeps
its line, mapping keys stay the text the user wrote (YAML 1.1 would read the key
``on`` as ``True``) and scalars keep their exact text. Checks report into it with
:meth:`Doc.problem`; :mod:`supertask.timetable.load` turns the list into one error.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from supertask.errors import Problem

#: libyaml's composer where PyYAML was built with it: the same nodes and line marks, about
#: twice as fast as the pure-Python one on big timetables (see docs/benchmarks.md).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: The deepest nesting of lists and mappings a timetable may have (a real one has about
#: 6). libyaml's composer recurses on the C stack: a 50 KB file nested 25,000 deep
#: crashed the process (SIGSEGV), so the depth is bounded before composing.
MAX_DEPTH = 100


class Bad(Exception):
    """One problem with one value; its text is the Problem's message."""


class Doc:
    """One YAML document being checked: its node tree and the problems found so far."""

    def __init__(self, text: str, source: str, base_dir: Path | None):
        self.source, self.base_dir = source, base_dir
        self.problems: list[Problem] = []
        self._text = text
        self._loader = _Loader(text)
        self._text = text  # for the line of a YAML error

    def root(self) -> Node | None:
        try:
            too_deep = deeper_than(self._text, MAX_DEPTH)
            if too_deep is not None:
                self.problem(too_deep, "", f"nested deeper than {MAX_DEPTH} levels of lists and mappings; "
                             "a timetable needs about 6: flatten it")
                return None
            return self._loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = mark.line + 1 if mark else None
            column = f"column {mark.column + 1}: " if mark else ""
            reason = ": ".join(str(x) for x in (err.context, err.problem) if x)
            hint = _yaml_hint(reason, _line_of(self._text, mark.line) if mark else "")
            self.problem(line, "", f"not valid YAML: {column}{reason}{hint}")
        except yaml.YAMLError as err:
            self.problem(None, "", f"not valid YAML: {err}")
        return None

    def problem(self, where: Node | int | None, path: str, message: str) -> None:
        line = where.start_mark.line + 1 if isinstance(where, Node) else where
        problem = Problem(self.source, line, path, message)
        if problem not in self.problems:
            self.problems.append(problem)

    def value(self, node: Node) -> Any:
        """The Python value of a scalar or a whole subtree (YAML 1.1 rules)."""
        return self._loader.construct_object(node, deep=True)

    def entries(self, node: Node, path: str, what: str) -> dict[str, tuple[Node, Node]] | None:
        """A mapping's ``key text -> (key node, value node)``; duplicate keys are problems."""
        if not isinstance(node, MappingNode):
            self.problem(
                node, path, f"expected {what} (a mapping of key: value), got {describe(node)}"
            )
            return None
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    first = seen[key_node.value].start_mark.line + 1
                    self.problem(
                        key_node,
                        join(path, key_node.value),
                        f"key '{key_node.value}' given twice (first on line {first}); keep one",
                    )
                seen.setdefault(key_node.value, key_node)
        try:  # YAML merge keys (`<<: *common`): merged entries first, the mapping's own win
            self._loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as err:
            self.problem(
                err.problem_mark.line + 1 if err.problem_mark else node, path, str(err.problem)
            )
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, path, f"a key must be plain text, got {describe(key_node)}")
                continue
            key = key_node.value
            out[key] = (key_node, value_node)
        return out

    def check_keys(
        self, entries: Mapping[str, tuple[Node, Node]], path: str, allowed: Iterable[str],
        aliases: Mapping[str, str], extra_hint: Callable[[str], str | None] = lambda key: None,
    ) -> None:  # fmt: skip
        """Unknown keys are problems (a typo must not silently disable a setting)."""
        allowed = tuple(allowed)
        for key, (key_node, _) in entries.items():
            if key in allowed:
                continue
            message = f"unknown key '{key}'"
            guess = suggest_key(key, allowed, aliases)
            hint = extra_hint(key)
            if hint:
                message += f"; {hint}"
            elif guess:
                message += f"; did you mean '{guess}'?"
            else:
                message += f"; use one of {', '.join(allowed)}"
            self.problem(key_node, join(path, key), message)

    def dispose(self) -> None:
        self._loader.dispose()
        self._text = ""


def depth_bound(text: str) -> int:
    """An upper bound on the nesting depth of ``text`` as YAML, from its characters
    alone (a few ms for a 100,000-job file, far less than composing it).

    Block collections nest by indentation (a column holds at most a mapping and the
    list under its key) or on one line, one indicator (``-``, ``?``, ``:``) each; a
    flow collection needs a ``[`` or ``{`` (and an implicit ``a: b`` pair inside a
    flow list one more level). Quotes are ignored: an indicator in a quoted text
    only makes the bound looser, never too small."""
    block = 0
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped:
            continue
        level = 2 * (len(line) - len(stripped) + 1) + stripped.count("-") + stripped.count(":") + stripped.count("?")
        if level > block:
            block = level
    return block + 2 * (text.count("[") + text.count("{")) + 1


def deeper_than(text: str, limit: int) -> int | None:
    """The line where ``text`` nests deeper than ``limit`` lists and mappings, else None.

    Exact (libyaml's event stream, whose parser keeps its stack on the heap) only when
    :func:`depth_bound` cannot rule it out, as for a big file written in flow style.
    Text that is not valid YAML up to that point is left for the composer to report."""
    if depth_bound(text) <= limit:
        return None
    loader = _Loader(text)
    starts, ends = (yaml.MappingStartEvent, yaml.SequenceStartEvent), (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    depth = 0
    try:
        while True:
            event = loader.get_event()
            if event is None:
                return None
            if isinstance(event, starts):
                depth += 1
                if depth > limit:
                    return int(event.start_mark.line) + 1 if event.start_mark else 1
            elif isinstance(event, ends):
                depth -= 1
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag.endswith(":null"):
        return "nothing"
    if node.tag.endswith(":str"):
        return f"the text {node.value!r}"
    return str(node.value)


def suggest_key(key: str, allowed: Iterable[str], aliases: Mapping[str, str]) -> str | None:
    """The key meant by a typo or by another tool's word for it, if any is close."""
    allowed = tuple(allowed)
    folded = key.strip().lower().replace("-", "_").replace(" ", "_")
    if folded in allowed:
        return folded
    candidates = {k: k for k in allowed} | {a: k for a, k in aliases.items() if k in allowed}
    if folded in candidates:
        return candidates[folded]
    close = difflib.get_close_matches(folded, list(candidates), n=1, cutoff=0.7)
    return candidates[close[0]] if close else None


def _line_of(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def _yaml_hint(reason: str, line: str = "") -> str:
    """A fix for a YAML error. The C loader names no tab ("found character that cannot
    start any token"), so a tab in the line's indentation is looked for in the line itself."""
    if "\t" in line[: len(line) - len(line.lstrip())] or "tab character" in reason:
        return "; indent with spaces, not tabs"
    if "alias" in reason or "anchor" in reason:
        return "; a value starting with '*' or '&' must be quoted, e.g. when: \"*/5 * * * *\""
    if "mapping values are not allowed" in reason:
        return "; quote a value that contains ': ', e.g. run: \"cmd:echo a: b\""
    if "found character '\\t'" in reason:
        return "; indent with spaces, not tabs"
    return ""


def text(doc: Doc, node: Node, what: str = "text") -> str:
    """A scalar's exact text (``0800`` stays ``"0800"``); lists and mappings are problems."""
    if not isinstance(node, ScalarNode) or node.tag.endswith(":null"):
        raise Bad(f"expected {what}, got {describe(node)}")
    return str(node.value)


def scalar_list(doc: Doc, node: Node, what: str) -> list[tuple[Node, str]]:
    """A list of texts, or one text standing for a list of one."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    out: list[tuple[Node, str]] = []
    for item in items:
        if not isinstance(item, ScalarNode) or item.tag.endswith(":null"):
            raise Bad(f"expected {what}, got {describe(item)}")
        out.append((item, str(item.value).strip()))
    return out
