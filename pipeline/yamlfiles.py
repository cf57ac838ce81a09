"""YAML files as we read them: the settings file and the feed list.

``load`` is ``yaml.safe_load`` except that a key given twice in one mapping is an error
(YAML says keys are unique; PyYAML keeps the last silently, so a group or a feed's URL given
twice lost the first without a word). The error is a ``yaml.MarkedYAMLError`` that points at
the second key, reported like any other YAML error by the readers.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

_MERGE = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that gives a key twice (keys merged in with ``<<`` may be overridden)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise ConstructorError(
                    None, None, f"key {str(key)!r} is given twice, first on line {first_lines[key]}",
                    key_node.start_mark,
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep)


def load(text: str) -> Any:
    """The document ``text`` holds, read safely; ``yaml.YAMLError`` if it is not YAML or gives a key twice."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


__all__ = ["load"]
