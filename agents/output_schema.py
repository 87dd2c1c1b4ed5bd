"""Output schemas (``--output-schema FILE``): a JSON Schema file or a pydantic model, with its validator.

:func:`load_output_schema` reads what the user named:

* ``path/to/schema.json``: a JSON Schema (checked against its meta-schema with ``jsonschema``);
* ``path/to/file.py:Model``: the pydantic model ``Model`` defined in that file;
* ``package.module:Model``: the pydantic model ``Model`` of an importable module.

Anything wrong with it (a missing file, module or attribute, a class that is not a pydantic model, invalid JSON, an
invalid schema) is a one-line :class:`~ponder.core.errors.ConfigError`, raised before a model is loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from referencing.exceptions import Unresolvable

from ponder.core.errors import ConfigError

#: ``package.module:Model``.
MODULE_FORM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: Validation errors listed per reply (the rest are counted).
MAX_ERRORS = 8

#: ``validate(value) -> (normalized value, errors)``: no errors means valid.
Validator = Callable[[Any], tuple[Any, list[str]]]


@dataclass(frozen=True)
class OutputSchema:
    """A loaded output schema.

    Attributes:
        name: The schema's name (the model's class name, else the schema's ``title``, else the file's stem).
        schema: The JSON Schema (a pydantic model's ``model_json_schema()``).
        source: What the user gave (``schema.json``, ``file.py:Model``, ``pkg.mod:Model``).
        validator: ``value -> (normalized value, errors)``: pydantic's ``model_validate`` (the value is then the
            model's JSON dump) when a model was given, else ``jsonschema``.
    """

    name: str
    schema: dict[str, Any]
    source: str
    validator: Validator

    def validate(self, value: Any) -> tuple[Any, list[str]]:
        """``(normalized value, [])`` when ``value`` follows the schema, else ``(None, errors)``."""
        return self.validator(value)


def load_output_schema(text: str) -> OutputSchema:
    """Load the output schema ``text`` names (see the module docstring).

    Raises:
        ConfigError: one line saying what is wrong with it.
    """
    text = text.strip()
    if not text:
        raise ConfigError("--output-schema: empty value; give a .json file, file.py:Model or package.module:Model")
    target, _, attr = text.rpartition(":")
    if target.endswith(".py") and attr:
        return _from_model(_model_from_file(Path(target), attr, text), text)
    if text.endswith(".py"):
        raise ConfigError(f"--output-schema {text!r}: name the model in the file: {text}:ClassName")
    if text.endswith(".json") or Path(text).is_file():
        return _from_json_file(Path(text))
    if MODULE_FORM.match(text):
        return _from_model(_model_from_module(target, attr, text), text)
    raise ConfigError(f"--output-schema {text!r}: give a JSON Schema file (.json), path/to/file.py:Model or "
                      "package.module:Model")


@cache
def cached_output_schema(text: str) -> OutputSchema:
    """:func:`load_output_schema`, once per process per value (``settings.output_schema`` in every run)."""
    return load_output_schema(text)


def _from_json_file(path: Path) -> OutputSchema:
    if not path.is_file():
        raise ConfigError(f"output schema {path}: no such file")
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"output schema {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"output schema {path}: not valid JSON (line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg})") from None
    if not isinstance(schema, dict):
        raise ConfigError(f"output schema {path}: a JSON Schema must be a JSON object, not {type(schema).__name__}")
    validator = _json_schema_validator(schema, str(path))
    name = schema.get("title") if isinstance(schema.get("title"), str) and schema.get("title") else path.stem
    return OutputSchema(name=name, schema=schema, source=str(path), validator=validator)


def _json_schema_validator(schema: dict[str, Any], where: str) -> Validator:
    """A ``jsonschema`` validator of ``schema`` (its draft from ``$schema``, else 2020-12), meta-schema checked."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        at = "/".join(map(str, exc.absolute_path)) or "(top)"
        raise ConfigError(f"output schema {where}: not a valid JSON Schema at {at}: {_one_line(exc.message)}") from None
    _check_references(schema, where)
    checker = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def validate(value: Any) -> tuple[Any, list[str]]:
        try:
            found = sorted(checker.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
        except Unresolvable as exc:  # a reference the load-time check could not see (inside a nested $id)
            return None, [f"the schema's $ref cannot be resolved: {_one_line(str(exc))}"]
        return (value, []) if not found else (None, _capped([f"{e.json_path}: {_one_line(e.message)}"
                                                                for e in found]))

    return validate


def _check_references(schema: dict[str, Any], where: str) -> None:
    """Fail now, not when the answer is validated, on a ``$ref`` that cannot be resolved.

    A missing ``$defs`` entry or a remote schema (nothing is fetched) is a ConfigError. Schemas with a nested
    ``$id`` (whose references resolve against it) are left to validation.
    """
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012, specification_with

    refs, nested_ids = _references(schema)
    if nested_ids:
        return
    spec = specification_with(str(schema.get("$schema", "")), default=DRAFT202012)
    resolver = Registry().resolver_with_root(spec.create_resource(schema))
    for ref in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise ConfigError(f"output schema {where}: cannot resolve $ref {ref!r} (only references inside the "
                              "file work; nothing is fetched)") from None


def _references(node: Any, top: bool = True) -> tuple[list[str], bool]:
    """The ``$ref`` strings anywhere in ``node``, and whether a subschema below the top has its own ``$id``."""
    refs: list[str] = []
    nested = False
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            refs.append(node["$ref"])
        nested = not top and "$id" in node
        children = list(node.values())
    else:
        children = list(node) if isinstance(node, list) else []
    for child in children:
        found, child_nested = _references(child, top=False)
        refs.extend(found)
        nested = nested or child_nested
    return refs, nested


def _from_model(model: type[BaseModel], source: str) -> OutputSchema:
    try:
        schema = model.model_json_schema()
    except Exception as exc:  # noqa: BLE001 - a user's model that cannot describe itself: one line
        raise ConfigError(f"output schema {source}: {model.__name__} has no JSON Schema ({_one_line(str(exc))})") \
            from None

    def validate(value: Any) -> tuple[Any, list[str]]:
        try:
            return model.model_validate(value).model_dump(mode="json"), []
        except ValidationError as exc:
            return None, _capped([f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()])

    return OutputSchema(name=model.__name__, schema=schema, source=source, validator=validate)


def _model_from_file(path: Path, attr: str, source: str) -> type[BaseModel]:
    if not path.is_file():
        raise ConfigError(f"output schema {source}: no such file {path}")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"ponder_output_schema_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"output schema {source}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the model's forward references through its module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file failed to import: say why in one line
        sys.modules.pop(name, None)
        raise ConfigError(f"output schema {source}: importing {path} failed: {type(exc).__name__}: "
                          f"{_one_line(str(exc))}") from None
    return _model_attr(module, attr, source, str(path))


def _model_from_module(module_name: str, attr: str, source: str) -> type[BaseModel]:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"output schema {source}: no module named {exc.name!r}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import: say why in one line
        raise ConfigError(f"output schema {source}: importing {module_name} failed: {type(exc).__name__}: "
                          f"{_one_line(str(exc))}") from None
    return _model_attr(module, attr, source)


def _model_attr(module: Any, attr: str, source: str, shown: str | None = None) -> type[BaseModel]:
    found = vars(module).get(attr)
    if found is None:
        raise ConfigError(f"output schema {source}: {shown or module.__name__} has no attribute {attr!r}")
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ConfigError(f"output schema {source}: {attr} is not a pydantic model (a BaseModel subclass)")
    return found


def _capped(errors: list[str]) -> list[str]:
    if len(errors) <= MAX_ERRORS:
        return errors
    return [*errors[:MAX_ERRORS], f"... and {len(errors) - MAX_ERRORS} more"]


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
