"""Reading count matrices in the formats facilities hand over, validating them, writing h5ad atomically.

Whatever the format, ``read`` returns cells x genes with raw counts in ``X`` as float32 CSR, unique
cell and gene names, and raises :class:`InputError` (one line naming the file and the problem) for
anything that is not a usable count matrix.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import gzip
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from graphimpute.errors import InputError, OutputError

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
    hint = (lambda: _count_layers_hint(adata)) if fmt == "h5ad" and layer is None else None
    validate(adata, path, allow_non_integer=allow_non_integer, label_key=label_key, non_integer_hint=hint)
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


def validate(adata: AnnData, path, *, allow_non_integer: bool = False, label_key: str | None = None,
             non_integer_hint: Callable[[], str] | None = None) -> None:
    """Check that ``adata.X`` is a usable raw count matrix and normalise its storage in place:
    float32 CSR, unique names. Raises InputError; warns for duplicated names and missing labels.
    ``non_integer_hint()``, asked only when X is not counts, may replace the --allow-non-integer advice
    (e.g. "use --layer counts")."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(path, f"empty matrix ({adata.n_obs} cells x {adata.n_vars} genes)")
    x = adata.X
    if x is None:  # an h5ad with only layers (or only obs/var)
        layers = ", ".join(adata.layers) or "none"
        raise InputError(path, f"X is empty (the file stores no main matrix); give the layer that holds the raw "
                               f"counts with --layer NAME (layers: {layers}{'; or raw' if adata.raw is not None else ''})")
    dtype = getattr(x, "dtype", None)
    if dtype is None or not (np.issubdtype(dtype, np.number) or dtype == bool):
        raise InputError(path, f"X holds {dtype} values, not numbers; a count matrix is numeric")
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
            hint = non_integer_hint() if non_integer_hint is not None else ""
            raise InputError(path, message + "; " + (hint or "use --allow-non-integer to continue anyway"))
        warnings.warn(f"{path}: {message}; continuing because --allow-non-integer was given", stacklevel=2)
    adata.X = x.astype(np.float32)
    for axis, names in (("cell", adata.obs_names), ("gene", adata.var_names)):
        if names.has_duplicates:
            n = int(names.duplicated().sum())
            warnings.warn(f"{path}: {n} duplicated {axis} names made unique by appending -1, -2, ...", stacklevel=2)
            (adata.obs_names_make_unique if axis == "cell" else adata.var_names_make_unique)()
    if label_key is not None:
        if label_key not in adata.obs.columns:
            columns = ", ".join(map(str, adata.obs.columns)) or "none"
            raise InputError(path, f"label column {label_key!r} not found in the cell annotations; columns: {columns}")
        _check_labels(adata, path, label_key)


def _check_labels(adata: AnnData, path, label_key: str) -> None:
    """Missing labels (NaN, None, or the strings 'nan'/'' that a careless export leaves) are cells
    without a label, never a class of their own: they become NaN, are left out of the clustering
    scores, and are counted in a warning. Fewer than two labelled classes is an error."""
    values = adata.obs[label_key]
    text = values.astype("string").str.strip()
    missing = values.isna().to_numpy() | text.str.lower().isin(["nan", ""]).fillna(True).to_numpy()
    if missing.any():
        cleaned = values.astype(object).where(~missing, None)
        adata.obs[label_key] = pd.Categorical(cleaned)
        warnings.warn(f"{path}: {int(missing.sum())} of {adata.n_obs} cells have no {label_key!r} label; they "
                      "are kept, and left out of the clustering scores", stacklevel=3)
    classes = pd.unique(adata.obs[label_key].dropna())
    if len(classes) < 2:
        raise InputError(path, f"label column {label_key!r} has {len(classes)} labelled class(es); clustering "
                               "scores need at least two")


def write_h5ad(adata: AnnData, path) -> Path:
    """Write atomically: a temporary file beside the target, then a rename (no half-written output)."""
    return _write_atomic(path, lambda tmp: adata.write_h5ad(tmp, compression="gzip"))


def write_text(text: str, path) -> Path:
    """Write a small text output (samplesheet, report table) atomically, like write_h5ad."""
    return _write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def remove_stale_temporaries(path: Path) -> list[Path]:
    """The temporary files an earlier write of ``path`` left when its process was killed (a signal or the
    out-of-memory killer skips the clean-up): removed before this write makes its own."""
    stale = [p for p in Path(path).parent.glob(f".{glob.escape(Path(path).name)}.*.tmp") if p.is_file()]
    for leftover in stale:
        log.info("removing %s, left by an interrupted write of %s", leftover, path)
        leftover.unlink(missing_ok=True)
    return stale


def _write_atomic(path, write) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, then rename it into place.

    mkstemp creates its file 0600; the output gets the permissions any new file gets under the umask
    (0644 under the usual 022), so that a facility's group can read results. A full disk or a quota
    (ENOSPC, EDQUOT) and a refused write (EACCES, EROFS) are the user's to fix: one line naming the
    file, and no temporary file left."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        with _quiet_hdf5_cleanup():
            write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        problem = disk_problem(err)
        if problem is None:
            raise
        error = OutputError(path, problem)
        # HDF5 cannot close a file whose write failed for want of space, and then crashes while
        # shutting down with the interpreter (exit code 139 instead of the clean error): the CLI
        # ends such a process at once, after its clean-up and its one line
        error.exit_at_once = "file write failed" in str(err)
        raise error from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextlib.contextmanager
def _quiet_hdf5_cleanup():
    """When a write fails inside HDF5 for want of space, h5py frees the half-written file's objects
    and prints each failure again, tracebacks included, straight to the stderr file descriptor,
    around the one error that matters. Hold back what the write prints; pass it on unless the write
    failed that way."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: hook(unraisable) if "h5py" not in repr(unraisable.object) else None
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr descriptor to hold back (embedded interpreters)
        saved = None
    held = tempfile.TemporaryFile() if saved is not None else None
    if held is not None:
        os.dup2(held.fileno(), 2)
    failed_for_space = False
    try:
        yield
    except OSError as err:
        failed_for_space = disk_problem(err) is not None
        raise
    finally:
        sys.unraisablehook = hook
        if held is not None:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read()
            held.close()
            if text and not failed_for_space:
                os.write(2, text)


def disk_problem(err: OSError) -> str | None:
    """A user-fixable reason an output could not be written, or None for anything else. HDF5 reports
    a full disk as an OSError whose errno may be missing but whose text says 'errno = 28'."""
    code = err.errno
    if code is None:
        match = re.search(r"errno = (\d+)", str(err))
        code = int(match.group(1)) if match else None
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device (or over quota); free some space or choose another --outdir"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EROFS:
        return "read-only file system"
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(inputs, output, *, suffix: str | None = None) -> None:
    """Refuse an output that would overwrite one of the inputs or land inside an input folder (a 10x
    directory), that does not end in ``suffix`` (what is written is that format, whatever the name
    says), or that cannot be written (checked before any work, not after it)."""
    out = Path(output).resolve()
    if suffix is not None and out.suffix.lower() != suffix:
        raise OutputError(output, f"the output is written as {suffix}; name it so (e.g. {Path(output).stem}{suffix})")
    for inp in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        source = Path(inp).resolve()
        if source == out:
            raise InputError(output, "the output path is the input path; inputs are never overwritten")
        if source.is_dir() and source in out.parents:
            raise InputError(output, f"is inside the input folder {inp}; inputs are never changed: write it elsewhere")
    if out.is_dir():
        raise OutputError(output, "is a folder; give a file name")
    check_writable(out.parent)


def check_writable(folder) -> None:
    """Raise OutputError unless files can be created in ``folder`` (or, when it does not exist yet, in
    the nearest folder above it that does, where it will be created)."""
    folder = Path(folder)
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(existing, "is a file, not a folder: the outputs cannot go there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(existing, "is not writable (permission denied or read-only file system); "
                                    "choose another output folder")


def check_free_space(folder, needed_bytes: int) -> None:
    """Raise OutputError when the file system that will hold ``folder`` has less free space than an
    estimate of what a run writes (a full disk otherwise shows up only after the work, or as a crash
    inside HDF5)."""
    existing = _nearest_existing(Path(folder))
    free = shutil.disk_usage(existing).free
    if free < needed_bytes:
        raise OutputError(folder, f"{_size(free)} free on its file system, but this run writes about "
                                  f"{_size(needed_bytes)}; free some space or choose another output folder")


def peek_shape(path, fmt: str = "auto") -> tuple[int, int] | None:
    """(cells, genes) of an input, read from its metadata without loading the matrix; None when the
    format does not tell without reading it all (tables) or the file is unreadable."""
    import h5py

    path = Path(path)
    try:
        fmt = detect_format(path) if fmt == "auto" else fmt
        if fmt == "h5ad":
            with h5py.File(path, "r") as f:
                x = f["X"]
                shape = x.attrs["shape"] if isinstance(x, h5py.Group) else x.shape
                return int(shape[0]), int(shape[1])
        if fmt == "10x-h5":
            with h5py.File(path, "r") as f:
                genes, cells = f["matrix/shape"][()]
                return int(cells), int(genes)
        if fmt == "10x":
            with open(_find_10x(path, "matrix.mtx"), "rb") as raw:
                handle = gzip.open(raw) if raw.read(2) == b"\x1f\x8b" else None
                raw.seek(0)
                for line in handle or raw:
                    if not line.startswith(b"%"):
                        genes, cells = map(int, line.split()[:2])
                        return cells, genes
    except (OSError, KeyError, ValueError, InputError, TypeError):
        return None
    return None


def _nearest_existing(folder: Path) -> Path:
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


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


def _find_10x(path: Path, *names: str) -> Path | None:
    for n in names:
        for candidate in (path / n, path / f"{n}.gz"):
            if candidate.exists():
                return candidate
    return None


def _read_10x_dir(path: Path) -> AnnData:
    matrix = _find_10x(path, "matrix.mtx")
    genes = _find_10x(path, "features.tsv", "genes.tsv")
    barcodes = _find_10x(path, "barcodes.tsv")
    missing = [n for n, f in (("matrix.mtx[.gz]", matrix), ("features.tsv[.gz] or genes.tsv", genes),
                              ("barcodes.tsv[.gz]", barcodes)) if f is None]
    if missing:
        raise InputError(path, f"10x directory without {', '.join(missing)}")
    gzipped = {f.suffix == ".gz" for f in (matrix, genes, barcodes)}
    adata = None
    if gzipped == {genes.name.startswith("features")}:  # the layouts scanpy reads: Cell Ranger v3 all gzipped, v2 none
        import scanpy as sc

        try:
            with warnings.catch_warnings():  # duplicated names: validate() warns once, in its words
                warnings.simplefilter("ignore", UserWarning)
                adata = sc.read_10x_mtx(path, var_names="gene_symbols", make_unique=False, gex_only=False)
            adata.X = sp.csr_matrix(adata.X)
        except (ValueError, IndexError, KeyError, pd.errors.ParserError):
            adata = None  # names and matrix disagree: the reader below says how
    if adata is None:
        adata = _read_mtx(matrix, genes, barcodes)
    return _gene_expression_only(adata, path)


def _read_mtx(matrix: Path, genes: Path, barcodes: Path) -> AnnData:
    """Cell Ranger v2 (genes.tsv) or v3 (features.tsv) files with any mix of gzip, which scanpy's
    reader refuses (it takes v3 all gzipped, v2 none)."""
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


def _gene_expression_only(adata: AnnData, path: Path) -> AnnData:
    """Cell Ranger v3 lists antibody, CRISPR and custom features beside the genes; like scanpy's
    ``gex_only`` and the .h5 reader here, keep gene expression only (so the same matrix gives the same
    genes and library sizes whichever format it comes in), and say what was left out."""
    if "feature_types" not in adata.var:
        return adata
    types = adata.var["feature_types"].astype(str)
    gex = (types == "Gene Expression").to_numpy()
    if not gex.any():
        raise InputError(path, f"no 'Gene Expression' features among {adata.n_vars} (types: "
                               f"{', '.join(sorted(types.unique()))})")
    if gex.all():
        return adata
    dropped = types[~gex].value_counts()
    log.info("%s: %d features that are not gene expression left out (%s)", path, int((~gex).sum()),
             ", ".join(f"{k}: {v}" for k, v in dropped.items()))
    return adata[:, gex].copy()


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
    # pandas renames duplicated header names silently ('A', 'A.1'); take the header as written, so
    # that validate() warns about them and makes them unique like every other duplicated name
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    if header.shape[1] == frame.shape[1] + 1:
        frame.columns = header.iloc[0, 1:].astype(str).to_numpy()
    frame.index = frame.index.astype(str)
    frame.columns = frame.columns.astype(str)
    return AnnData(X=sp.csr_matrix(frame.to_numpy(dtype=np.float64)), obs=pd.DataFrame(index=frame.index),
                   var=pd.DataFrame(index=frame.columns))


def _orient_table(adata: AnnData, path: Path, transpose: bool) -> AnnData:
    """Tables are cells x genes unless ``transpose``. When the names say the table lies the other way
    (the cells' names look like genes, or the genes' names like barcodes) the read stops: a
    genes x cells table read as cells x genes runs to the end and imputes genes as if they were cells."""
    if transpose:
        adata = adata.T.copy()
    cells_like_genes = _looks_like_genes(adata.obs_names) and not _looks_like_genes(adata.var_names)
    genes_like_barcodes = _looks_like_barcodes(adata.var_names) and not _looks_like_barcodes(adata.obs_names)
    if cells_like_genes or genes_like_barcodes:
        what = "the rows look like genes" if cells_like_genes else "the columns look like cell barcodes"
        flag = "without" if transpose else "with"
        orientation = "cells x genes" if transpose else "genes x cells"
        raise InputError(path, f"{what} (rows: {_examples(adata.obs_names)}; columns: {_examples(adata.var_names)}): the "
                               f"table seems to be {orientation}; run {flag} --transpose")
    return adata


def _looks_like_genes(names: pd.Index) -> bool:
    """Gene-like names (MT-, RPL/RPS, Ensembl ids) and no cell barcodes among ``names``."""
    names = pd.Index(names).astype(str)
    genes = sum(n.upper().startswith(("MT-", "RPL", "RPS", "ENSG", "ENSMUSG")) for n in names)
    return not _looks_like_barcodes(names) and genes >= 2


def _looks_like_barcodes(names: pd.Index) -> bool:
    """Most names are cell barcodes (8 or more of ACGTN, optionally '-1')."""
    names = pd.Index(names).astype(str)[:500]
    return len(names) > 0 and float(np.mean([bool(_BARCODE.match(n)) for n in names])) >= 0.5


def _examples(names: pd.Index) -> str:
    return ", ".join(map(str, list(names[:2])))


def _count_layers_hint(adata: AnnData) -> str:
    """When X is not counts, the advice that fits a processed h5ad: the layer (or .raw) that holds
    whole non-negative numbers, e.g. scanpy's habit of keeping them in layers['counts']."""
    for name in [*adata.layers.keys(), "raw"]:
        if name == "raw":
            if adata.raw is None:
                continue
            matrix = adata.raw.X
        else:
            matrix = adata.layers[name]
        values = matrix.data if sp.issparse(matrix) else np.asarray(matrix).ravel()
        if values.size and np.all(np.isfinite(values)) and values.min() >= 0 and np.all(values == np.round(values)):
            where = ".raw" if name == "raw" else f"layers[{name!r}]"
            return f"{where} holds whole counts: use --layer {name}"
    return ""


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
