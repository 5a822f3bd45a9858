"""The ``docker:`` keys of a job (``volumes``, ``cpus``, ``memory``) -> model values.

Each converter takes a :class:`~supertask.timetable.yamldoc.Doc` and a value node and
returns the value ``docker run`` is given, or raises
:class:`~supertask.timetable.yamldoc.Bad` saying what to write instead.
"""

from __future__ import annotations

import re

from yaml.nodes import Node, ScalarNode

from supertask.timetable.yamldoc import Bad, Doc, describe, scalar_list

#: the options ``docker run -v HOST:CONTAINER:OPTIONS`` takes (comma-separated)
VOLUME_OPTIONS = ("ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated",
                  "shared", "rshared", "slave", "rslave", "private", "rprivate")


def volumes(doc: Doc, node: Node) -> tuple[str, ...]:
    out = []
    for _, value in scalar_list(doc, node, "a list of HOST:CONTAINER[:ro] volumes"):
        parts = value.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise Bad(f"{value!r} is not a volume; use HOST_PATH:CONTAINER_PATH[:ro]")
        unknown = [o for o in parts[2].split(",") if o not in VOLUME_OPTIONS] if len(parts) == 3 else []
        if unknown:
            raise Bad(f"{value!r}: unknown volume option {', '.join(map(repr, unknown))}; "
                      f"use HOST_PATH:CONTAINER_PATH[:ro], options: {', '.join(VOLUME_OPTIONS)}")
        out.append(value)
    return tuple(out)


def cpus(doc: Doc, node: Node) -> float:
    value = doc.value(node) if isinstance(node, ScalarNode) else None
    try:
        cpus = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Bad(f"expected a number of CPUs such as 0.5 or 2, got {describe(node)}") from None
    if cpus <= 0:
        raise Bad("cpus must be more than 0, e.g. 0.5")
    return cpus


#: Docker refuses a memory limit under 6 MiB ("Minimum memory limit allowed is 6MB")
MIN_MEMORY = 6 * 2**20
_MEMORY_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def memory(doc: Doc, node: Node) -> str:
    value = str(doc.value(node) if isinstance(node, ScalarNode) else "").strip().lower()
    match = re.match(r"^(\d+(?:\.\d+)?)([bkmg]?)$", value)
    if not match:
        raise Bad(f"{value!r} is not a memory limit; use e.g. 512m or 2g")
    number, unit = match.groups()
    if float(number) * _MEMORY_UNITS[unit] < MIN_MEMORY:
        hint = f"; for {number} MiB write {number}m" if not unit or unit == "b" else ""
        raise Bad(f"memory {value!r} is under Docker's least limit of 6m (a number alone is bytes{hint})")
    return value
