"""The annotated reference of every recipe key, generated from the pydantic models.

`imgsynth reference > docs/recipe-reference.md`; a test keeps the committed file in sync.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from imgsynth.core.registry import FORMATS, SOURCES, STAGES, resolve
from imgsynth.recipes.load import submodels
from imgsynth.recipes.schema import OutputConfig, Recipe


def _type_name(annotation: Any) -> str:
    """A short readable type: `list[LinesTexts | WordsTexts]`, `int | None`, `Literal[...]`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`" for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]" if args else name
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(field) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
    else:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(see below)"
    return f"`{value!r}`".replace("|", "\\|")


def _table(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
        for sub in submodels(field.annotation):
            if sub is not model:
                nested.append((f"{prefix}{name}.", sub))
    out = rows + [""]
    for sub_prefix, sub in nested:
        out += [f"#### `{sub_prefix[:-1]}` ({sub.__name__})", ""]
        if sub.__doc__:
            out += [sub.__doc__.strip().splitlines()[0], ""]
        out += _table(sub, sub_prefix)
    return out


def render_reference() -> str:
    lines = ["# Recipe reference", "",
             "Generated from the recipe schema by `imgsynth reference`; do not edit by hand.",
             "Relative paths resolve against the working directory. Unknown keys are errors.", "",
             "## Top level", ""]
    lines += _table(Recipe)
    lines += ["## output", ""] + _table(OutputConfig, "output.")
    lines += ["Label formats (`output.formats`): " + ", ".join(f"`{f}`" for f in FORMATS), ""]
    for title, registry, prefix in (("Sources (`source.type`)", SOURCES, "source."),
                                    ("Stages (`stages[].type`)", STAGES, "stages[].")):
        lines += [f"## {title}", ""]
        for name in registry:
            model = resolve(registry[name])
            lines += [f"### `{name}`", ""]
            if model.__doc__:
                lines += [model.__doc__.strip(), ""]
            lines += _table(model, prefix)
    return "\n".join(lines) + "\n"
