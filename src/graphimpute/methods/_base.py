"""What a method is: its registry entry, what it gets to run, and what it gives back."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np

from graphimpute.errors import GraphImputeError


@dataclass(frozen=True)
class Range:
    """The values a numeric parameter may take: ``low``/``high`` bounds (None: unbounded), each
    inclusive unless ``*_open``. A parameter outside its range is a clear error before any work
    (``methods.resolve_params``): ``max_epochs=0`` must not write an untrained network's output."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"


POSITIVE = Range(0, low_open=True)  # > 0: learning rates, scales, memory limits
NON_NEGATIVE = Range(0)  # >= 0: penalties, "0 = off / automatic" settings
COUNT = Range(1)  # >= 1: epochs, layer widths, patience
FRACTION = Range(0, 1, low_open=True, high_open=True)  # (0, 1): shares of cells or entries
RATE = Range(0, 1, high_open=True)  # [0, 1): dropout rates, filters that may be off
UNIT = Range(0, 1)  # [0, 1]: weights and thresholds of probabilities


@dataclass(frozen=True)
class GraphSpec:
    """A graph a method needs, built by the GRAPH step and stored under ``key``.

    ``kind`` is one of graphimpute.graphs.BUILDERS ('knn', 'percentile', 'gene_pearson'); cell graphs
    go to ``adata.obsp[key]``, gene graphs to ``adata.varp[key]``."""

    key: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


MAX_SEED = 2**32 - 1  # every seed (the run's, the mask's): numpy's and scikit-learn's are 32-bit


@dataclass
class RunContext:
    """Settings of one run that are not hyper-parameters of the method."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    workdir: Path | None = None  # checkpoints go here; None keeps everything in memory
    checkpoint_every: int | None = None
    resume: bool = False

    def generator(self, stream: str) -> np.random.Generator:
        """A random generator of this run's seed for ``stream`` (a method's name), independent of the mask's
        ``default_rng(seed)`` and of every other stream (``SeedSequence`` spawn keys): with one integer for
        both, a method's molecular split drew the same random numbers as the benchmark's own split."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(stream.encode()),)))


@dataclass
class ImputeResult:
    """``imputed``: dense cells x genes float32 expected counts on the input's count scale.

    ``history``: the training history (train.History.to_dict()), empty for methods that do not train.
    ``info``: provenance the method wants recorded (graph fallbacks, genes left as observed, ...).
    ``varp``/``obsm``: extra results saved with the output (e.g. GraphSCI's learned gene graph).
    ``layers``: more cells x genes results on the output's scale, by suffix (graphMCV's interval:
    ``lower``, ``upper``), written next to the imputed layer as ``<imputed key>_<suffix>``."""

    imputed: np.ndarray
    history: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    varp: dict[str, Any] = field(default_factory=dict)
    obsm: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, np.ndarray] = field(default_factory=dict)


ImputeFn = Callable[..., ImputeResult]  # impute(adata, params: dict, ctx: RunContext) -> ImputeResult


def implemented_in(name: str) -> ImputeFn:
    """The ``impute`` of ``graphimpute.methods._impl.<name>``, imported only when called: a registry
    entry stays free of torch, so listing methods and checking parameters stay cheap."""

    def impute(adata, params, ctx) -> ImputeResult:
        return importlib.import_module(f"graphimpute.methods._impl.{name}").impute(adata, params, ctx)

    impute.__qualname__ = f"implemented_in({name!r})"
    return impute


@dataclass(frozen=True)
class Method:
    """A registry entry. ``impute(adata, params, ctx)`` reads raw counts from ``adata.X`` (never
    modifies ``adata``) and the graphs named in ``graphs``; ``defaults`` are the paper's values and
    ``ranges`` what each numeric parameter may be set to (lists: every element)."""

    name: str
    impute: ImputeFn
    summary: str
    citation: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    ranges: Mapping[str, Range] = field(default_factory=dict)  # every numeric default's allowed values
    graphs: tuple[GraphSpec, ...] = ()
    kind: Literal["method", "baseline"] = "method"
    trains: bool = False  # uses the training engine (and so --device)
    requires: tuple[str, ...] = ()  # optional packages (import names) beyond the core install
    install_hint: str = ""  # how to install them; quoted in the error when one is missing

    def describe(self) -> str:
        """What ``graphimpute methods NAME`` prints: the entry and every parameter with its default (the
        paper's) and the values it may take."""
        lines = [f"{self.name} ({self.kind}{', trains' if self.trains else ''}): {self.summary}",
                 f"citation: {self.citation}"]
        if self.graphs:
            lines.append("graphs: " + ", ".join(f"{g.key} ({g.kind})" for g in self.graphs))
        if self.requires:
            lines.append(f"needs: {', '.join(self.requires)}" + (f" ({self.install_hint})" if self.missing() else ""))
        if not self.defaults:
            return "\n".join([*lines, "parameters: none"])
        width = max(map(len, self.defaults))
        lines.append("parameters (--param KEY=VALUE; default, then allowed values):")
        for key, value in self.defaults.items():
            allowed = self.ranges.get(key)
            shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            lines.append(f"  {key:<{width}}  {shown!s:<10}  {allowed or type(value).__name__}")
        return "\n".join(lines)

    def missing(self) -> tuple[str, ...]:
        """The packages of ``requires`` that are not installed here (cheap: imports nothing)."""
        return tuple(p for p in self.requires if not _installed(p))

    @property
    def is_available(self) -> bool:
        return not self.missing()

    def import_required(self, package: str):
        """Import one of ``requires``, or raise GraphImputeError saying how to install it."""
        try:
            return importlib.import_module(package)
        except ImportError as err:
            raise GraphImputeError(
                f"method {self.name!r} needs the optional package {package!r}, which is not installed"
                f" ({err}); {self.install_hint or 'install it'}") from err


def _installed(package: str) -> bool:
    if package in sys.modules:  # None there means a blocked import
        return sys.modules[package] is not None
    return importlib.util.find_spec(package) is not None
