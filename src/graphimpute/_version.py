"""The package's version, in a module of its own so that any module can read it without importing the
package's front door (``__init__`` loads the API)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("graphimpute")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.1.0"
