"""YAML loading that remembers where every key came from.

Error messages must name the file, the line and the key path, so the loader keeps a map
from key paths (tuples of keys and list indices) to 1-based line numbers alongside the
plain data it returns.
"""

from __future__ import annotations

from typing import Any

import yaml

from arcjobs.errors import SpecError

Path_ = tuple[Any, ...]


class Located:
    """Plain YAML data plus the line of every key path in it."""

    def __init__(self, file: str, data: Any, lines: dict[Path_, int]):
        self.file, self.data, self.lines = file, data, lines

    def line(self, path: Path_) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def error(self, path: Path_, message: str) -> SpecError:
        return SpecError(self.file, self.line(path), format_path(path), message)


def format_path(path: Path_) -> str:
    """('steps', 'learn', 'with', 'lora_rank') → 'steps.learn.with.lora_rank'; indices as [i]."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def load(text: str, file: str) -> Located:
    """Parse `text`; YAML syntax errors and duplicate keys become SpecErrors with a line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(file, line, "", f"invalid YAML: {problem}") from None
    lines: dict[Path_, int] = {}
    constructor = yaml.constructor.SafeConstructor()

    def convert(node: yaml.Node, path: Path_) -> Any:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            inherited: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise SpecError(
                        file,
                        key_node.start_mark.line + 1,
                        format_path(path),
                        "keys must be plain scalars",
                    )
                if key_node.tag == "tag:yaml.org,2002:merge":
                    # `<<: *anchor` (or a list of them): keys not written here come from it
                    sources = (
                        value_node.value
                        if isinstance(value_node, yaml.SequenceNode)
                        else [value_node]
                    )
                    for source in sources:
                        merged = convert(source, path)
                        if not isinstance(merged, dict):
                            raise SpecError(
                                file,
                                key_node.start_mark.line + 1,
                                format_path(path),
                                "a merge key (<<) takes a mapping or a list of mappings",
                            )
                        inherited.update({k: v for k, v in merged.items() if k not in inherited})
                    continue
                key = constructor.construct_object(key_node)
                if not isinstance(key, (str, int, float, bool)):
                    raise SpecError(
                        file,
                        key_node.start_mark.line + 1,
                        format_path(path),
                        "keys must be strings",
                    )
                key = str(key) if not isinstance(key, str) else key
                if key in out:
                    raise SpecError(
                        file,
                        key_node.start_mark.line + 1,
                        format_path((*path, key)),
                        "duplicate key",
                    )
                lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = convert(value_node, (*path, key))
            return {**{k: v for k, v in inherited.items() if k not in out}, **out}
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return constructor.construct_object(node)
        except yaml.YAMLError as e:
            raise SpecError(
                file,
                node.start_mark.line + 1,
                format_path(path),
                f"invalid value: {getattr(e, 'problem', e)}",
            ) from None

    data = convert(root, ()) if root is not None else None
    return Located(file, data, lines)
