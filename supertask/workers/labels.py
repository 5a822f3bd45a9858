"""Labels: what a worker has (``--labels gpu=1,region=eu``) and what a run needs (a
job's ``on: {gpu: "1"}``), both string -> string. A run fits a worker when every
key=value it needs is one the worker has (as Dagu's worker selectors); a run that
needs nothing (``{}``: ``--workers-only``) fits every worker. Pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

#: a label's key: letters, digits and ``_ . / -`` (as Kubernetes label keys, shorter)
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$")
#: a label's value: no comma, equals sign, space or control character
VALUE_RE = re.compile(r"^[^,=\s]{0,200}$")


class LabelError(ValueError):
    """Labels as written are not ``key=value,...``; the message says what to write."""


def parse(text: str) -> dict[str, str]:
    """``gpu=1,region=eu`` -> ``{"gpu": "1", "region": "eu"}`` (``""``: none)."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            raise LabelError(f"{part!r} is not key=value; write e.g. --labels gpu=1,region=eu")
        problem = problem_of(key, value)
        if problem:
            raise LabelError(problem)
        if key in out and out[key] != value:
            raise LabelError(f"label {key!r} is given twice ({out[key]!r} and {value!r}); give it once")
        out[key] = value
    return out


def problem_of(key: str, value: str) -> str | None:
    """What is wrong with one label (None: nothing)."""
    if not KEY_RE.match(key):
        return (f"label key {key!r} is not a key; use letters, digits and _ . / - "
                "(up to 63 characters, starting with a letter or digit)")
    if not VALUE_RE.match(value):
        return f"label value {value!r} of {key!r} has a comma, an equals sign or a space; use a plain word"
    return None


def fits(needs: Mapping[str, str], has: Mapping[str, str]) -> bool:
    """Whether a worker with labels ``has`` may take a run that ``needs`` these."""
    return all(has.get(key) == value for key, value in needs.items())


def text(labels: Mapping[str, str]) -> str:
    """``gpu=1,region=eu`` (keys sorted); ``(none)`` for no labels."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"


def dumps(labels: Mapping[str, str]) -> str:
    """The stored form: a JSON object, keys sorted (equal labels, equal text)."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def waiting_reason(needs: Mapping[str, str], live: Iterable[Mapping[str, str]]) -> str | None:
    """Why a run that ``needs`` these waits, given the labels of the live workers that
    take runs: ``no live worker has gpu=1`` (None: one has them)."""
    live = list(live)
    if any(fits(needs, has) for has in live):
        return None
    if not needs:
        return "no live worker (start one: supertask worker --store URL)"
    return f"no live worker has {text(needs)}"
