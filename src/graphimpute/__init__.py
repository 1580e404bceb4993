"""graphimpute: graph deep-learning imputation of scRNA-seq dropout, with a benchmark."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("graphimpute")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.1.0"

__all__ = ["__version__"]
