"""The layers settings are read from — the config file, POKEDREAMER_* variables, the command
line — and a bad value's one-line explanation, which names the layer that supplied it."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import PydanticBaseSettingsSource

from pokedreamer.errors import Location, UserError, dotted, validation_summary

# Sections forbid unknown keys so that a typo in config.toml fails loudly instead of being ignored,
# and are frozen because constructors receive them and must not change what others see.
SECTION_CONFIG = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

ENV_PREFIX = "POKEDREAMER_"
ENV_NESTED_DELIMITER = "__"

# The parsed config file for the load in progress. Settings' sources are chosen per class, not per
# call, so this is how load_settings hands one particular file to the source that sits between the
# defaults and the environment.
file_layer: ContextVar[Mapping[str, Any] | None] = ContextVar("file_layer", default=None)


class FileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ hands over the whole parsed file at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(file_layer.get() or {})


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or a UserError naming the file and the line and column at fault."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts the position at the end of its message: "... (at line 3, column 7)".
        message = str(exc)
        where = re.search(r"\s*\(at (line \d+, column \d+)\)$", message)
        if where:
            message = f"{where.group(1)}: {message[: where.start()]}"
        raise UserError(f"{path}: {message}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None


def chosen_keys(file_data: Mapping[str, Any], overrides: Mapping[str, Any]) -> frozenset[str]:
    """The dotted keys ("agent.envs") set by choice: every key of ``file_data`` (a parsed config
    file), every POKEDREAMER_* variable in the environment, and each of ``overrides`` given (not
    None). Keys are lowercased, as the environment's are read."""
    keys = {
        f"{section}.{key}".lower()
        for section, values in file_data.items()
        if isinstance(values, Mapping)
        for key in values
    }
    keys |= {
        name[len(ENV_PREFIX) :].lower().replace(ENV_NESTED_DELIMITER, ".")
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
    }
    keys |= {key.lower() for key, value in overrides.items() if value is not None}
    return frozenset(keys)


def nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys ("env.rom") as nested sections, values of None (not given) left out."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _has(tree: Mapping[str, Any], loc: tuple[str, ...]) -> bool:
    node: Any = tree
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _env_var_for(loc: tuple[str, ...]) -> str | None:
    """The POKEDREAMER_* variable that supplied ``loc``, if any (env names are case-insensitive)."""
    by_upper = {name.upper(): name for name in os.environ}
    # The exact nested variable first, then a JSON value for an enclosing section.
    for depth in range(len(loc), 0, -1):
        wanted = ENV_PREFIX + ENV_NESTED_DELIMITER.join(loc[:depth]).upper()
        if wanted in by_upper:
            return by_upper[wanted]
    return None


def _origin(loc: tuple[str, ...], path: Path | None, overrides: Mapping[str, Any]) -> str:
    # Walk the layers from the highest priority down: the first that has the key supplied it.
    if _has(overrides, loc):
        return "command line"
    env_var = _env_var_for(loc)
    if env_var is not None:
        return f"environment variable {env_var}"
    if path is not None:
        return str(path)
    return "settings"


def describe(exc: ValidationError, path: Path | None, overrides: Mapping[str, Any]) -> str:
    """Every error of ``exc`` on one line: where the value came from, its dotted key, what is
    wrong with it and (unless it may be a secret) the value itself."""

    def where(loc: Location) -> str:
        keys = tuple(str(part) for part in loc)
        return f"{_origin(keys, path, overrides)}: {dotted(keys) or '(top level)'}"

    def got(error: ErrorDetails) -> str:
        shown = _shown_input(tuple(str(part) for part in error["loc"]), error.get("input"))
        return "" if shown is None else f" (got {shown})"

    return validation_summary(exc, where, detail=got)


def _shown_input(loc: tuple[str, ...], value: Any) -> str | None:
    # Never echo anything that may be a secret, nor whole sections (they can be long).
    if loc and loc[-1] == "api_key":
        return None
    if isinstance(value, Mapping | list | BaseModel):
        return None
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)
