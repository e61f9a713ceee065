"""The one YAML loader for files a user gives (recipes, saved recipes, YOLO data.yaml).

`yaml.safe_load` never runs code, but it keeps aliases as shared objects: a few hundred
bytes of `&a [*a, *a, ...]` nested nine deep stand for billions of values, which anything
that walks the result (validation, printing, saving) expands. So after loading, the size
of the document *as expanded* is measured without expanding it (each shared value is
measured once) and a document beyond the limits is refused, as is one that contains
itself. Messages never print the document.
"""

from __future__ import annotations

from typing import Any

import yaml

from imgsynth.core.errors import ImgsynthError, RecipeError

MAX_FILE_BYTES = 16 << 20  # a recipe is a few KB; inline text lists stay far below this
MAX_VALUES = 200_000  # mappings, lists and scalars, counting every use of an alias
MAX_TEXT = 32 << 20  # characters of all strings, counting every use of an alias
MAX_DEPTH = 64  # nesting of mappings and lists


def safe_load(text: str, file: str, error: type[ImgsynthError] = RecipeError) -> Any:
    """Parse YAML text (no tags that build objects), refusing what would expand beyond the
    limits above with `error` naming the file."""
    if len(text) > MAX_FILE_BYTES:
        raise error(f"the YAML file is {len(text):,} characters; at most {MAX_FILE_BYTES:,} are "
                    "read", file=file, fix="is this the right file?")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"invalid YAML{where}: {problem}", file=file) from None
    except RecursionError:
        raise error(f"the YAML is nested more than {MAX_DEPTH} levels deep", file=file,
                    fix="flatten the file") from None
    _Measure(file, error).size(data, 0)
    return data


class _Measure:
    def __init__(self, file: str, error: type[ImgsynthError]):
        self.file, self.error = file, error
        self.memo: dict[int, tuple[int, int]] = {}  # id -> (values, characters) once measured
        self.open: set[int] = set()  # containers being measured (a cycle comes back to one)

    def size(self, node: Any, depth: int) -> tuple[int, int]:
        if isinstance(node, str):
            return 1, len(node)
        if not isinstance(node, dict | list | set):
            return 1, 0
        if depth > MAX_DEPTH:
            raise self.error(f"the YAML is nested more than {MAX_DEPTH} levels deep",
                             file=self.file, fix="flatten the file")
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.open:
            raise self.error("a YAML alias refers to the value that contains it (an endless "
                             "value)", file=self.file, fix="remove the self-referring alias")
        self.open.add(key)
        items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        values, chars = 1, 0
        for item in items:
            v, c = self.size(item, depth + 1)
            values, chars = values + v, chars + c
            if values > MAX_VALUES or chars > MAX_TEXT:
                raise self.error(
                    f"the YAML expands to more than {MAX_VALUES:,} values or {MAX_TEXT:,} "
                    "characters once its aliases (*name) are filled in", file=self.file,
                    fix="write the values out, or use fewer nested aliases")
        self.open.discard(key)
        self.memo[key] = (values, chars)
        return values, chars
