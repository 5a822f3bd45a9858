"""The workers' job keys: ``on:`` (the labels a worker must have) and ``priority:``."""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode

from supertask.timetable.yamldoc import Bad, Doc, describe
from supertask.workers.labels import problem_of


def labels(doc: Doc, node: Node) -> dict[str, str]:
    """``on: {gpu: "1", region: eu}``: the labels a worker must have (values as text)."""
    if not isinstance(node, MappingNode):
        raise Bad(f"expected a mapping of labels such as {{gpu: \"1\", region: eu}}, got {describe(node)}")
    out: dict[str, str] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or not isinstance(value_node, ScalarNode) \
                or value_node.tag.endswith(":null"):
            raise Bad(f"expected label: value pairs of plain words such as gpu: \"1\", got {describe(value_node)}")
        key, value = str(key_node.value), str(value_node.value)
        problem = problem_of(key, value)
        if problem:
            raise Bad(problem)
        out[key] = value
    return out


def priority(doc: Doc, node: Node) -> int:
    value = doc.value(node) if isinstance(node, ScalarNode) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Bad(f"expected a whole number (higher runs first; default 0), got {describe(node)}")
    return value
