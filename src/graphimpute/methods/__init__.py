"""The method registry: every imputation method and baseline, by name.

A method is one module in this package that defines ``METHOD = Method(...)``. Registering it means
adding its module name to ``_MODULES`` below; nothing else in the project changes.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Mapping

from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import GraphSpec, ImputeResult, Method, Range, RunContext

__all__ = ["GraphSpec", "ImputeResult", "Method", "Range", "RunContext", "available", "get", "resolve_params"]

# Module names under graphimpute.methods, in the order `graphimpute methods` lists them.
_MODULES: tuple[str, ...] = (
    "scvgae", "graphsci", "cnnimpute", "scgnn", "gnnimpute",  # the five methods
    "graphmcv",  # graphimpute's own
    "none", "gene_mean", "knn_average", "shrink_gene_mean", "shrink_knn",  # the floors
    "magic", "alra", "dca", "scvi",  # published baselines
)


def available() -> dict[str, Method]:
    """All registered methods, by name (imports every method module)."""
    return {m.name: m for m in (_load(name) for name in _MODULES)}


def get(name: str) -> Method:
    """The method registered as ``name``; a clear error listing the choices otherwise."""
    if name not in _MODULES:
        raise GraphImputeError(f"unknown method {name!r}; registered methods: {', '.join(_MODULES)}")
    return _load(name)


def names() -> tuple[str, ...]:
    return _MODULES


def parse_methods(spec: str) -> list[str]:
    """'all' or a comma-separated list, checked against the registry, duplicates dropped."""
    wanted = list(_MODULES) if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    if not wanted:
        raise GraphImputeError("no method given; use a comma-separated list or 'all'")
    if "auto" in wanted:
        raise GraphImputeError("'auto' chooses one method by itself: give --methods auto alone")
    for name in wanted:
        get(name)
    return list(dict.fromkeys(wanted))


def resolve_params(method: Method, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The method's paper defaults updated with ``overrides``, each cast to its default's type and
    checked against its ``Method.ranges`` entry.

    Unknown keys and values out of range are errors (a typo must not be silently ignored, and
    ``max_epochs=0`` must not write an untrained network's output)."""
    params = dict(method.defaults)
    for key, value in (overrides or {}).items():
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise GraphImputeError(f"method {method.name!r} has no parameter {key!r}; its parameters: {known}")
        params[key] = _cast(value, params[key], key)
        allowed = method.ranges.get(key)
        values = params[key] if isinstance(params[key], (list, tuple)) else [params[key]]
        if not all(_storable(v) for v in values):  # inf passes a range; 10**30 cannot be written to HDF5
            raise GraphImputeError(f"method {method.name!r}: parameter {key}={params[key]!r} must be a finite "
                                   "number (integers below 2**63)")
        if allowed is not None and not all(_is_number(v) and allowed.contains(v) for v in values):
            raise GraphImputeError(f"method {method.name!r}: parameter {key}={params[key]!r} must be {allowed}"
                                   f"{' (each value)' if isinstance(params[key], (list, tuple)) else ''}")
    return params


def _storable(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return abs(value) < 2**63 if isinstance(value, int) else math.isfinite(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN fails


def _cast(value: Any, default: Any, key: str) -> Any:
    """``value`` (a --param string, or a JSON value from a params file) as the type of ``default``;
    a JSON value of another type ({"max_epochs": [3]}) is an error, not a crash inside training."""
    if default is None:
        return value
    if not isinstance(value, str):
        return _cast_json(value, default, key)
    try:
        if isinstance(default, bool):
            if value.lower() in {"true", "1", "yes"}:
                return True
            if value.lower() in {"false", "0", "no"}:
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, (list, tuple)):
            return type(default)(type(default[0])(v) for v in value.split(",")) if default else value
    except ValueError:
        raise GraphImputeError(f"parameter {key}={value!r}: expected {type(default).__name__}") from None
    return value


def _cast_json(value: Any, default: Any, key: str) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = number and float(value).is_integer()
        value = int(value) if ok else value
    elif isinstance(default, float):
        ok = number
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple)) and all(not isinstance(v, (list, tuple, dict)) for v in value)
        if ok and default:
            try:
                value = type(default)(_cast_json(v, default[0], key) for v in value)
            except GraphImputeError:
                ok = False
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise GraphImputeError(f"parameter {key}={value!r}: expected {type(default).__name__}"
                               f" (the default is {default!r})")
    return value


def _load(name: str) -> Method:
    module = importlib.import_module(f"graphimpute.methods.{name}")
    return module.METHOD
