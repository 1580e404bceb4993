"""Reading count matrices in the formats facilities hand over, validating them, writing h5ad atomically.

Whatever the format, ``read`` returns cells x genes with raw counts in ``X`` as float32 CSR, unique
cell and gene names, and raises :class:`InputError` (one line naming the file and the problem) for
anything that is not a usable count matrix.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from graphimpute.errors import InputError

log = logging.getLogger(__name__)

FORMATS = ("auto", "h5ad", "10x", "10x-h5", "csv", "tsv")
_TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}
_BARCODE = re.compile(r"^[ACGTN]{8,}(-\d+)?$")


def read(path, *, fmt: str = "auto", transpose: bool = False, allow_non_integer: bool = False,
         label_key: str | None = None, layer: str | None = None) -> AnnData:
    """Read and validate a count matrix (h5ad, 10x directory, 10x h5, CSV/TSV).

    ``transpose`` is for genes x cells tables. ``layer`` takes an h5ad's counts from
    ``layers[layer]`` (or ``raw`` for ``adata.raw``) instead of ``X``. Non-integer values are refused
    unless ``allow_non_integer``; ``label_key`` must name an ``obs`` column when given."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if not os.access(path, os.R_OK):
        raise InputError(path, "cannot be read (permission denied)")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise InputError(path, f"unknown format {fmt!r}; use one of {', '.join(FORMATS[1:])}")
    try:
        adata = _READERS[fmt](path)
    except InputError:
        raise
    except Exception as err:  # the libraries' own errors say little about which file broke
        raise InputError(path, f"not a readable {fmt} file ({type(err).__name__}: {_first_line(err)})") from None
    if fmt in ("csv", "tsv"):
        adata = _orient_table(adata, path, transpose)
    elif transpose:
        log.warning("%s: --transpose only applies to CSV/TSV tables; ignored for %s", path, fmt)
    if layer is not None:
        adata = _counts_from_layer(adata, path, fmt, layer)
    validate(adata, path, allow_non_integer=allow_non_integer, label_key=label_key)
    return adata


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "10x"
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".zip"):
        name = name.removesuffix(suffix)
    suffix = Path(name).suffix
    if suffix == ".h5ad":
        return "h5ad"
    if suffix == ".h5":
        return "10x-h5"
    if suffix in _TABLE_SUFFIXES:
        return _TABLE_SUFFIXES[suffix]
    raise InputError(path, "unknown format (expected .h5ad, .h5, .csv, .tsv, .txt or a 10x directory); "
                           "name it with --format")


def validate(adata: AnnData, path, *, allow_non_integer: bool = False, label_key: str | None = None) -> None:
    """Check that ``adata.X`` is a usable raw count matrix and normalise its storage in place:
    float32 CSR, unique names. Raises InputError; warns for duplicated names."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(path, f"empty matrix ({adata.n_obs} cells x {adata.n_vars} genes)")
    x = adata.X
    x = sp.csr_matrix(x) if not sp.issparse(x) else x.tocsr()
    values = x.data
    if not np.all(np.isfinite(values)):
        raise InputError(path, f"{int(np.sum(~np.isfinite(values)))} NaN or infinite values; counts must be finite")
    if np.any(values < 0):
        raise InputError(path, f"{int(np.sum(values < 0))} negative values; raw counts cannot be negative")
    x.eliminate_zeros()
    if x.nnz == 0:
        raise InputError(path, "empty matrix (every value is zero)")
    fractional = np.count_nonzero(values != np.round(values))
    if fractional:
        message = (f"{fractional} non-integer values (e.g. {values[values != np.round(values)][0]:.4g}); raw "
                   "counts are expected, not normalised or log values")
        if not allow_non_integer:
            raise InputError(path, message + "; use --allow-non-integer to continue anyway")
        warnings.warn(f"{path}: {message}; continuing because --allow-non-integer was given", stacklevel=2)
    adata.X = x.astype(np.float32)
    for axis, names in (("cell", adata.obs_names), ("gene", adata.var_names)):
        if names.has_duplicates:
            n = int(names.duplicated().sum())
            warnings.warn(f"{path}: {n} duplicated {axis} names made unique by appending -1, -2, ...", stacklevel=2)
            (adata.obs_names_make_unique if axis == "cell" else adata.var_names_make_unique)()
    if label_key is not None and label_key not in adata.obs.columns:
        columns = ", ".join(map(str, adata.obs.columns)) or "none"
        raise InputError(path, f"label column {label_key!r} not found in the cell annotations; columns: {columns}")


def write_h5ad(adata: AnnData, path) -> Path:
    """Write atomically: a temporary file beside the target, then a rename (no half-written output)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        adata.write_h5ad(tmp, compression="gzip")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(text: str, path) -> Path:
    """Write a small text output (samplesheet, report table) atomically, like write_h5ad."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def check_output(inputs, output) -> None:
    """Refuse an output that would overwrite one of the inputs."""
    out = Path(output).resolve()
    for inp in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        if Path(inp).resolve() == out:
            raise InputError(output, "the output path is the input path; inputs are never overwritten")


def _counts_from_layer(adata: AnnData, path: Path, fmt: str, layer: str) -> AnnData:
    """Put the counts stored in ``layer`` (or ``raw``) into X; other layers are dropped."""
    if fmt != "h5ad":
        raise InputError(path, f"--layer applies to h5ad input only, not {fmt}")
    if layer == "raw":
        if adata.raw is None:
            raise InputError(path, "--layer raw given, but the file has no .raw")
        return AnnData(X=adata.raw.X, obs=adata.obs, var=adata.raw.var, uns=adata.uns)
    if layer not in adata.layers:
        found = ", ".join(adata.layers.keys()) or "none"
        raise InputError(path, f"layer {layer!r} not found; layers: {found} (or 'raw' for .raw)")
    return AnnData(X=adata.layers[layer], obs=adata.obs, var=adata.var, uns=adata.uns, obsm=adata.obsm)


def _read_h5ad(path: Path) -> AnnData:
    import anndata
    import h5py

    if not h5py.is_hdf5(path):
        raise InputError(path, "not a valid h5ad file (not HDF5: corrupt or truncated?)")
    try:
        return anndata.read_h5ad(path)
    except Exception as err:
        raise InputError(path, f"corrupt h5ad file ({type(err).__name__}: {_first_line(err)})") from None


def _read_10x_dir(path: Path) -> AnnData:
    def find(*names):
        for n in names:
            for candidate in (path / n, path / f"{n}.gz"):
                if candidate.exists():
                    return candidate
        return None

    matrix = find("matrix.mtx")
    genes = find("features.tsv", "genes.tsv")
    barcodes = find("barcodes.tsv")
    missing = [n for n, f in (("matrix.mtx[.gz]", matrix), ("features.tsv[.gz] or genes.tsv", genes),
                              ("barcodes.tsv[.gz]", barcodes)) if f is None]
    if missing:
        raise InputError(path, f"10x directory without {', '.join(missing)}")
    return _read_mtx(matrix, genes, barcodes)


def _read_mtx(matrix: Path, genes: Path, barcodes: Path) -> AnnData:
    """CellRanger v2 (genes.tsv) or v3 (features.tsv.gz) layout, any mix of gzip (scanpy insists on one)."""
    from scipy.io import mmread

    x = sp.csr_matrix(mmread(str(matrix)).T)
    feats = pd.read_csv(genes, sep="\t", header=None)
    cells = pd.read_csv(barcodes, sep="\t", header=None)[0].astype(str)
    if len(feats) != x.shape[1] or len(cells) != x.shape[0]:
        raise InputError(matrix.parent, f"matrix is {x.shape[1]} x {x.shape[0]} (genes x cells) but there are "
                                        f"{len(feats)} features and {len(cells)} barcodes")
    names = feats[1] if feats.shape[1] > 1 else feats[0]
    var = pd.DataFrame({"gene_ids": feats[0].astype(str).values}, index=names.astype(str).values)
    if feats.shape[1] > 2:
        var["feature_types"] = feats[2].astype(str).values
    return AnnData(X=x, obs=pd.DataFrame(index=cells.values), var=var)


def _read_10x_h5(path: Path) -> AnnData:
    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return sc.read_10x_h5(path)


def _read_table(path: Path, sep: str) -> AnnData:
    frame = pd.read_csv(path, sep=sep, index_col=0)
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(path, f"empty matrix ({frame.shape[0]} rows x {frame.shape[1]} columns)")
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise InputError(path, f"{len(non_numeric)} non-numeric columns (e.g. {non_numeric[0]!r}); expected a "
                               "table of counts with names in the first column and header row")
    frame.index = frame.index.astype(str)
    frame.columns = frame.columns.astype(str)
    return AnnData(X=sp.csr_matrix(frame.to_numpy(dtype=np.float64)), obs=pd.DataFrame(index=frame.index),
                   var=pd.DataFrame(index=frame.columns))


def _orient_table(adata: AnnData, path: Path, transpose: bool) -> AnnData:
    """Tables are cells x genes unless ``transpose``; warn when the names suggest the other way."""
    if transpose:
        adata = adata.T.copy()
    if _looks_like_genes(adata.obs_names) and not _looks_like_genes(adata.var_names):
        flag = "without" if transpose else "with"
        warnings.warn(f"{path}: the rows look like genes and the columns like cells; if the table is "
                      f"genes x cells, run {flag} --transpose", stacklevel=3)
    return adata


def _looks_like_genes(names: pd.Index) -> bool:
    """Gene-like names (MT-, RPL/RPS, Ensembl ids) and no cell barcodes among ``names``."""
    names = pd.Index(names).astype(str)
    barcodes = np.mean([bool(_BARCODE.match(n)) for n in names[:500]])
    genes = sum(n.upper().startswith(("MT-", "RPL", "RPS", "ENSG", "ENSMUSG")) for n in names)
    return barcodes < 0.5 and genes >= 2


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else "no detail"


_READERS = {
    "h5ad": _read_h5ad,
    "10x": _read_10x_dir,
    "10x-h5": _read_10x_h5,
    "csv": lambda p: _read_table(p, ","),
    "tsv": lambda p: _read_table(p, "\t"),
}
