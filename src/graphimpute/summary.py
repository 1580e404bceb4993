"""One row per step output for the MultiQC report: what QC removed, how many genes normalisation kept,
what the mask hid, the graphs' sizes, each imputation's runtime, memory and training.

Reads only ``uns['graphimpute']`` and the matrix shapes (h5py; the counts are never loaded), and writes
MultiQC custom content: a TSV whose ``#`` header names the report section. Files of one step share the
section id, so MultiQC puts every sample (and every sample.method) in one table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from graphimpute import _keys, io
from graphimpute.errors import InputError

log = logging.getLogger(__name__)

STEPS = ("qc", "normalise", "mask", "graph", "impute")
_SECTIONS = {
    "qc": ("QC", "Cells and genes before and after quality control, and what each filter removed."),
    "normalise": ("Normalisation", "Genes kept (highly variable genes) for the graphs and the methods."),
    "mask": ("Benchmark mask", "The masking scheme; nonzero_counts is what the methods still see (the hidden "
                               "counts are in the truth file, read only by the evaluation)."),
    "graph": ("Graphs", "Graphs built for the chosen methods: stored entries (an undirected edge counts "
                        "twice) and mean degree."),
    "impute": ("Imputation", "Runtime, peak memory, device and training of each method on each sample."),
}


def summarise(path, *, step: str, sample: str) -> dict[str, Any]:
    """The row of numbers that describes ``step`` in the step's output file ``path``."""
    import h5py
    from anndata.io import read_elem

    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; one of {', '.join(STEPS)}")
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            # IMPUTE files hold no X (the counts stay in their input): their shape is the imputed layer's
            matrix = f["X"] if "X" in f else f["layers"][_keys.IMPUTED]
            sparse = isinstance(matrix, h5py.Group)
            n_cells, n_genes = (int(n) for n in (matrix.attrs["shape"] if sparse else matrix.shape))
            nonzero = int(matrix["data"].shape[0]) if sparse and "X" in f else None
            record = read_elem(f["uns"][_keys.UNS]) if "uns" in f and _keys.UNS in f["uns"] else {}
            nnz = {f"{where}/{key}": int(f[where][key]["data"].shape[0])
                   for where in ("obsp", "varp") if where in f for key in f[where]}
    except OSError as err:
        raise InputError(path, f"not a readable h5ad file ({err})") from None
    except KeyError:
        raise InputError(path, f"neither X nor layers['{_keys.IMPUTED}']: not a step's output") from None
    if step not in record and step != "graph":
        raise InputError(path, f"no uns['{_keys.UNS}']['{step}'] record: is this the output of the {step} step?")
    row: dict[str, Any] = {"Sample": sample, "cells": n_cells, "genes": n_genes}
    if nonzero is not None:
        row["nonzero_counts"] = nonzero
    row.update(_ROWS[step](record.get(step, {}), nnz=nnz, n_cells=n_cells, n_genes=n_genes))
    return row


def write_mqc(row: dict[str, Any], path, *, step: str) -> Path:
    """Write ``row`` as MultiQC custom content (a one-row table in the step's section)."""
    title, description = _SECTIONS[step]
    header = [
        f"# id: 'graphimpute_{step}'",
        f"# section_name: 'graphimpute: {title}'",
        f"# description: '{description}'",
        "# plot_type: 'table'",
        "# pconfig:",
        f"#     id: 'graphimpute_{step}_table'",
        f"#     title: 'graphimpute: {title}'",
    ]
    cells = [_cell(value) for value in row.values()]
    text = "\n".join(header + ["\t".join(row), "\t".join(cells)]) + "\n"
    return io.write_text(text, path)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ")


def _qc(record, **_) -> dict[str, Any]:
    row = {key: record.get(key) for key in ("cells_in", "genes_in", "cells_out", "genes_out")}
    row.update({f"removed_{reason}": count for reason, count in dict(record.get("removed", {})).items()})
    return row


def _normalise(record, **_) -> dict[str, Any]:
    return {"genes_in": record.get("genes_in"), "genes_out": record.get("genes_out"),
            "n_top_genes": record.get("n_top_genes")}


def _mask(record, **_) -> dict[str, Any]:
    # what was hidden is counted in the truth file, which only EVALUATE reads
    return {"scheme": record.get("scheme"), "fraction": record.get("fraction"), "seed": record.get("seed")}


def _graph(record, *, nnz, n_cells, n_genes, **_) -> dict[str, Any]:
    row = {}
    for name, edges in sorted(nnz.items()):
        where, key = name.split("/", 1)
        nodes = n_cells if where == "obsp" else n_genes
        row[f"{key}_edges"] = edges
        row[f"{key}_mean_degree"] = edges / max(nodes, 1)
    return row


def _impute(record, **_) -> dict[str, Any]:
    history = dict(record.get("history") or {})
    columns = history.get("epochs")  # per-epoch values, stored as columns (runner.h5ad_safe)
    last = {key: values[-1] for key, values in dict(columns).items() if len(values)} if isinstance(columns, dict) \
        else {}
    params = record.get("params", {})
    return {
        "method": record.get("method"), "device": record.get("device"), "seed": record.get("seed"),
        "wall_time_s": record.get("wall_time_s"), "peak_memory_mb": record.get("peak_memory_mb"),
        "epochs": history.get("n_epochs", 0), "best_epoch": history.get("best_epoch", "none"),
        "final_train_loss": last.get("train_loss", "none"), "final_val_loss": last.get("val_loss", "none"),
        "params": json.dumps(dict(params), sort_keys=True, default=str) if params else "",
    }


_ROWS = {"qc": _qc, "normalise": _normalise, "mask": _mask, "graph": _graph, "impute": _impute}
