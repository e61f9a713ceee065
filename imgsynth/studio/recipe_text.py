"""Edits of a recipe's YAML text that keep the user's comments and layout.

A form edit changes one key: the value's characters are replaced in place (found through
the positions PyYAML's composer records; composing builds no objects, so it runs no code),
or a missing key gets a line of its own under its mapping. The caller checks that the edited
text loads to exactly the data it expects and otherwise falls back to dumping the data,
so a case this module does not handle costs the comments, never a wrong recipe.
"""

from __future__ import annotations

import json
import math
import shlex
from typing import Any

import yaml


def flow_yaml(value: Any) -> str:
    """One line of YAML for a value (`[4, 4]`, `0.5`, `{hard: 1}`, `'007'`)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False,
                          width=math.inf)
    text = text.strip()
    if text.endswith("\n..."):  # a lone scalar ends the document explicitly
        text = text[: -len("\n...")].strip()
    elif text.endswith("..."):
        text = text[: -len("...")].strip()
    return text


def replace_value(text: str, path: list[str], value: Any) -> str | None:
    """`text` with the value at `path` (keys, or list indices as digits) set to `value`;
    None when the text's shape is one this does not edit (flow mappings on the way,
    aliases, a missing list item)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if root is None:
        return None
    node, key = root, None
    for depth, part in enumerate(path):
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value
                         if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if pair is None:
                return _insert_key(text, node, path[depth:], value)
            key, node = pair
        elif isinstance(node, yaml.SequenceNode) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(node.value) <= i < len(node.value):
                return None
            key, node = None, node.value[i]
        else:
            return None
    end = _end_of(text, node)
    if key is not None and not isinstance(node, yaml.ScalarNode) and not node.flow_style:
        # a block list or mapping becomes `key: [...]` on the key's line
        return text[:key.end_mark.index] + ": " + flow_yaml(value) + text[end:]
    return text[:node.start_mark.index] + flow_yaml(value) + text[end:]


def _end_of(text: str, node: yaml.Node) -> int:
    """Where a node's own characters end: a block collection's end mark can lie past the
    blank lines and comments that follow it, which belong to what comes next."""
    end = node.end_mark.index
    if isinstance(node, yaml.ScalarNode):
        return end
    last = node.value[-1] if node.value else None
    if isinstance(last, tuple):  # a mapping's (key, value) pair
        last = last[1]
    return min(end, _end_of(text, last)) if last is not None and not node.flow_style else end


def _insert_key(text: str, mapping: yaml.MappingNode, path: list[str], value: Any) -> str | None:
    """A new `key: value` line (nested keys as a flow mapping) at the end of a block mapping."""
    if mapping.flow_style or not mapping.value or any(p.lstrip("-").isdigit() for p in path):
        return None
    for part in reversed(path[1:]):
        value = {part: value}
    first_key = mapping.value[0][0]
    indent = " " * first_key.start_mark.column
    after = _end_of(text, mapping.value[-1][1])
    line_end = text.find("\n", after)
    line_end = len(text) if line_end < 0 else line_end
    line = f"{indent}{flow_yaml(path[0])}: {flow_yaml(value)}"
    if line_end == len(text):
        return text + ("" if text.endswith("\n") else "\n") + line + "\n"
    return text[:line_end + 1] + line + "\n" + text[line_end + 1:]


def set_flags(before: Any, after: Any, path: str = "") -> tuple[list[str], bool]:
    """`--set key=value` arguments that turn `before` into `after`, and whether they do it
    completely (a removed key has no --set)."""
    if isinstance(before, dict) and isinstance(after, dict):
        flags, complete = [], True
        for key, value in after.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in before:
                flags.append(f"{where}={flow_yaml(value)}")
            elif _differ(before[key], value):
                more, done = set_flags(before[key], value, where)
                flags += more
                complete = complete and done
        return flags, complete and all(key in after for key in before)
    if (isinstance(before, list) and isinstance(after, list) and len(before) == len(after)
            and path and all(isinstance(item, dict) for item in before + after)):
        # item by item only for lists of mappings (transforms); [4, 4] is set whole
        flags, complete = [], True
        for i, (old, new) in enumerate(zip(before, after, strict=True)):
            if _differ(old, new):
                more, done = set_flags(old, new, f"{path}.{i}")
                flags += more
                complete = complete and done
        return flags, complete
    if not path:
        return [], False
    return [f"{path}={flow_yaml(after)}"], True


def _differ(a: Any, b: Any) -> bool:
    # 1 and 1.0, True and 1 are equal in Python but not in the recipe's YAML
    return json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str)


def run_command(recipe: str, flags: list[str], out: str) -> str:
    """The shell command that runs the recipe with the flags (each argument quoted)."""
    words = ["imgsynth", "run", recipe] + [w for flag in flags for w in ("--set", flag)] + ["--out", out]
    return " ".join(shlex.quote(w) for w in words)
