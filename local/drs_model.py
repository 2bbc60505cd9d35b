"""Check DRS request and response bodies against botocore's own DRS service model.

botocore's ParamValidator checks types, required members and minimums, but not maximums,
patterns or enum values, and it never looks at responses. The walker here checks all of them,
plus unknown keys and unions, so a fake that answers with anything the real service could not
answer fails loudly. Patterns are matched whole (AWS documents them as `^...$`).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import botocore.session

SERVICE = "drs"


@cache
def service_model() -> Any:
    """botocore's DRS service model (loaded once)."""
    return botocore.session.get_session().get_service_model(SERVICE)


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def operation_model(operation_name: str) -> Any:
    """The botocore OperationModel of a DRS operation; ValueError if DRS has no such operation."""
    model = service_model()
    if operation_name not in model.operation_names:
        raise ValueError(f"DRS has no operation {operation_name!r}")
    return model.operation_model(operation_name)


def validate_response(operation_name: str, response: dict[str, Any]) -> None:
    """Raise ValueError (listing every problem with its path) unless `response` fits the output shape."""
    shape = operation_model(operation_name).output_shape
    _raise(operation_name, "response", _check(shape, response, ""))


def validate_request(operation_name: str, params: dict[str, Any]) -> None:
    """Raise ValueError (listing every problem with its path) unless `params` fit the input shape."""
    shape = operation_model(operation_name).input_shape
    _raise(operation_name, "request", _check(shape, params, ""))


def validate_shape(shape_name: str, value: Any) -> None:
    """Raise ValueError unless `value` fits the named shape of the DRS model (e.g. "Job")."""
    _raise(shape_name, "value", _check(service_model().shape_for(shape_name), value, ""))


def _raise(what: str, side: str, problems: list[str]) -> None:
    if problems:
        raise ValueError(f"{what} {side} does not match the DRS model: " + "; ".join(problems))


def _where(path: str) -> str:
    return path or "<root>"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(shape: Any, value: Any, path: str) -> list[str]:
    if shape is None:
        return [] if value in (None, {}) else [f"{_where(path)}: operation takes no body"]
    kind = shape.type_name
    if kind == "structure":
        return _check_structure(shape, value, path)
    if kind == "list":
        return _check_list(shape, value, path)
    if kind == "map":
        return _check_map(shape, value, path)
    if kind == "string":
        return _check_string(shape, value, path)
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{_where(path)}: expected {kind}, got {type(value).__name__}"]
        return _check_range(shape, value, path)
    if kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{_where(path)}: expected {kind}, got {type(value).__name__}"]
        return _check_range(shape, value, path)
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{_where(path)}: expected boolean, got {value!r}"]
    if kind == "timestamp":
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        return [] if ok else [f"{_where(path)}: expected timestamp, got {value!r}"]
    if kind == "blob":
        return [] if isinstance(value, str) else [f"{_where(path)}: expected base64 blob, got {value!r}"]
    return [f"{_where(path)}: shape {shape.name} of type {kind} is not supported by the validator"]


def _check_structure(shape: Any, value: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{_where(path)}: expected object ({shape.name}), got {type(value).__name__}"]
    problems: list[str] = []
    members = shape.members
    for key, item in value.items():
        if key not in members:
            problems.append(f"{_join(path, str(key))}: unknown key (not a member of {shape.name})")
        elif item is None:
            problems.append(f"{_join(path, key)}: null is not a value of {members[key].name}")
    for key in shape.required_members:
        if value.get(key) is None:
            problems.append(f"{_join(path, key)}: required member of {shape.name} is missing")
    present = [key for key in members if key in value and value[key] is not None]
    if shape.metadata.get("union") and len(present) != 1:
        problems.append(f"{_where(path)}: union {shape.name} must set exactly one member, got {present}")
    for key in present:
        problems.extend(_check(members[key], value[key], _join(path, key)))
    return problems


def _check_list(shape: Any, value: Any, path: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{_where(path)}: expected list ({shape.name}), got {type(value).__name__}"]
    problems = _check_size(shape, len(value), path, "items")
    for index, item in enumerate(value):
        problems.extend(_check(shape.member, item, f"{path}[{index}]"))
    return problems


def _check_map(shape: Any, value: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{_where(path)}: expected map ({shape.name}), got {type(value).__name__}"]
    problems = _check_size(shape, len(value), path, "entries")
    for key, item in value.items():
        problems.extend(_check(shape.key, key, f"{path}<key {key!r}>"))
        problems.extend(_check(shape.value, item, f"{path}[{key!r}]"))
    return problems


def _check_string(shape: Any, value: Any, path: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{_where(path)}: expected string ({shape.name}), got {value!r}"]
    enum = shape.enum
    if enum and value not in enum:
        return [f"{_where(path)}: {value!r} not in {list(enum)}"]
    problems = _check_size(shape, len(value), path, "characters")
    pattern = shape.metadata.get("pattern")
    if pattern and not _regex(pattern).fullmatch(value):
        problems.append(f"{_where(path)}: {value!r} does not match pattern {pattern!r} ({shape.name})")
    return problems


def _check_size(shape: Any, size: int, path: str, unit: str) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        return [f"{_where(path)}: {size} {unit}, fewer than the minimum {low} ({shape.name})"]
    if high is not None and size > high:
        return [f"{_where(path)}: {size} {unit}, more than the maximum {high} ({shape.name})"]
    return []


def _check_range(shape: Any, number: float, path: str) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and number < low:
        return [f"{_where(path)}: {number} is below the minimum {low} ({shape.name})"]
    if high is not None and number > high:
        return [f"{_where(path)}: {number} is above the maximum {high} ({shape.name})"]
    return []
