"""graphimpute: graph deep-learning imputation of scRNA-seq dropout, with a benchmark.

The Python API (``docs/api.md``), in scanpy's style::

    import graphimpute as gi
    gi.impute(adata, "scgnn")                 # adata.layers['imputed_scgnn']
    table = gi.benchmark(adata, ["scgnn"])    # one row per method, the baselines included

``impute`` and ``benchmark`` are loaded on first use (module ``__getattr__``), so that ``import
graphimpute`` and the command line's start stay cheap (no torch, scanpy or anndata until needed).
"""

from graphimpute._version import __version__

__all__ = ["__version__", "benchmark", "impute"]

_API = ("impute", "benchmark")


def __getattr__(name: str):
    if name in _API:
        from graphimpute import api

        return getattr(api, name)
    raise AttributeError(f"module 'graphimpute' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
