"""YAML -> typed Recipe, with `--set` overrides and messages that teach the fix.

Every error names the dotted key path (`stages.0.transforms.1.p`), what was
expected, and a did-you-mean for typos. Validation never writes anything.
"""

from __future__ import annotations

import reprlib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from imgsynth.core.errors import RecipeError, did_you_mean
from imgsynth.core.registry import SOURCES, STAGES, lookup
from imgsynth.core.safe_yaml import MAX_FILE_BYTES, safe_load
from imgsynth.recipes.schema import Recipe

# Shows a value in a message without building the whole repr of a big one.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 60, 60

# Keys that choose how a run executes, not what it produces: not saved in DIR/recipe.yaml.
EXECUTION_KEYS = ("workers", "engine")


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as fh:  # at most one byte past the limit: safe_load refuses it
            text = fh.read(MAX_FILE_BYTES + 1).decode("utf-8")
    except FileNotFoundError:
        raise RecipeError("recipe file not found", file=str(path),
                          fix="check the path; recipes shipped with imgsynth are in recipes/") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe: {exc}", file=str(path)) from None
    data = safe_load(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe is a mapping of keys, got {type(data).__name__}", file=str(path),
                          fix="start the file with keys such as 'source:' and 'stages:'")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides; values are parsed as YAML (`3`, `true`, `[a, b]`)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set expects dotted.key=value, got '{item}'",
                              fix="for example --set output.image_format=jpg")
        try:
            value = safe_load(raw, f"--set {key}") if raw.strip() else ""
        except RecipeError as exc:
            if "invalid YAML" not in exc.message:
                raise
            value = raw
        parts = key.strip().split(".")
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: depth + 1]), create=True)
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, key)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise RecipeError(f"cannot set a key inside a {type(node).__name__}", key=key)
    return data


def _child(node: Any, part: str, path: str, *, create: bool) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, path)]
    if isinstance(node, dict):
        if part not in node or node[part] is None:
            if not create:
                raise RecipeError("no such key", key=path)
            node[part] = {}
        return node[part]
    raise RecipeError(f"cannot descend into a {type(node).__name__}", key=path)


def _list_index(node: list, part: str, path: str) -> int:
    try:
        i = int(part)
    except ValueError:
        raise RecipeError(f"'{part}' is not a list index", key=path) from None
    if not -len(node) <= i < len(node):
        raise RecipeError(f"index {i} out of range (the list has {len(node)} items)", key=path)
    return i


def validation_message(exc: ValidationError, model: type[BaseModel] | None = None,
                       prefix: str = "") -> str:
    """One line per problem: `key.path: what is wrong (got X). Did you mean 'y'?`"""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join([prefix] + loc if prefix else loc) or "(top level)"
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            allowed = _field_names(model, err["loc"][:-1]) if model else []
            msg = "unknown key." + did_you_mean(loc[-1], allowed)
            if allowed:
                msg += f" Allowed here: {', '.join(allowed)}."
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
            msg += f" (got {_SHORT.repr(err['input'])})"
        lines.append(f"{key}: {msg}")
    return "\n  ".join(lines)


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model found at `loc`, for did-you-mean."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        models = submodels(fields[part].annotation)
        if not models:
            return []
        current = models[0]
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def submodels(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a field's annotation (`list[A | B]` -> [A, B])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in submodels(arg)]


def validate_model(model: type[BaseModel], data: Any, *, prefix: str = "", file: str | None = None):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecipeError("invalid recipe:\n  " + validation_message(exc, model, prefix),
                          file=file) from None


def _stage_config(entry: Any, registry: dict[str, str], key: str, what: str, file: str | None):
    if not isinstance(entry, dict):
        raise RecipeError(f"expected a mapping with a 'type' key, got {type(entry).__name__}",
                          key=key, file=file)
    if "type" not in entry:
        raise RecipeError(f"missing 'type' (one of: {', '.join(sorted(registry))})", key=key, file=file)
    cls = lookup(registry, str(entry["type"]), key=f"{key}.type", what=what)
    return validate_model(cls, entry, prefix=key, file=file)


def parse_recipe(data: dict[str, Any], *, file: str | None = None, prefix: str = "") -> Recipe:
    """Validate a recipe mapping into a Recipe whose source/stages are typed configs.

    `prefix` is the key path of this recipe inside a bigger one (`parts.scenes`)."""
    at = f"{prefix}." if prefix else ""
    recipe = validate_model(Recipe, data, prefix=prefix, file=file)
    source = _stage_config(recipe.source, SOURCES, f"{at}source", "source type", file)
    stages = [_stage_config(s, STAGES, f"{at}stages.{i}", "stage type", file)
              for i, s in enumerate(recipe.stages)]
    output = recipe.output
    if output.png_deflate == "auto":
        output = output.model_copy(update={"png_deflate": source.png_deflate})
    return recipe.model_copy(update={"source": source, "stages": stages, "output": output})


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    data = apply_overrides(load_yaml(path), list(overrides))
    data.pop("imgsynth", None)  # versions recorded by a previous run
    return parse_recipe(data, file=str(path))


def stage_names(recipe: Recipe) -> tuple[str, list[str]]:
    """Names that key the per-sample rng: the source's type, and `<i>.<type>` per stage,
    prefixed by the part name in a multi-part recipe."""
    prefix = f"{recipe.name}/" if recipe.name else ""
    return (prefix + recipe.source.type,
            [f"{prefix}{i}.{s.type}" for i, s in enumerate(recipe.stages)])


def resolved_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as saved in DIR/recipe.yaml: defaults filled, execution keys left out."""
    data = recipe.model_dump(mode="json", exclude=set(EXECUTION_KEYS) | {"imgsynth"},
                             exclude_none=False)
    if data.get("name") is None:
        data.pop("name", None)
    data["source"] = recipe.source.model_dump(mode="json")
    data["stages"] = [s.model_dump(mode="json") for s in recipe.stages]
    return data


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
