"""The samplesheet: which samples a pipeline run imputes, read and checked before any work starts.

A samplesheet is a CSV file with a header row and one row per sample:

``sample``     (required) a name used in every output file name: letters, digits, ``.``, ``_``, ``-``;
``input``      (required) the count matrix: an .h5ad, a 10x directory, a 10x .h5, or a CSV/TSV table;
               relative paths are taken relative to the samplesheet's own folder;
``label_key``  (optional) an ``obs`` column with cell labels (used for clustering metrics);
``format``     (optional) one of graphimpute.io.FORMATS; empty or ``auto`` guesses from the name;
``layer``      (optional) h5ad inputs: the layer holding the raw counts ('raw' for ``.raw``), if not X.

Every problem is reported at once, each with its line number, so a user fixes the sheet in one go.
``assets/schema_input.json`` describes the same columns for the Nextflow pipeline.
"""

from __future__ import annotations

import csv
import io as io_module
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from graphimpute import io
from graphimpute.errors import GraphImputeError, InputError

REQUIRED = ("sample", "input")
OPTIONAL = ("label_key", "format", "layer")
COLUMNS = REQUIRED + OPTIONAL
SAMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_SAMPLE_NAME = 100  # with seeds, methods and a temporary suffix it must fit a file name (255 bytes)
_UNKNOWN_FORMAT = ("unknown format: expected .h5ad, .h5 (10x), .csv, .tsv, .txt (optionally compressed) or a "
                   f"10x directory; name it in the 'format' column ({', '.join(io.FORMATS[1:])})")
REMOTE_SCHEMES = ("s3://", "gs://", "az://", "http://", "https://", "ftp://", "file://")


class SamplesheetError(GraphImputeError):
    """A samplesheet that cannot be used; the message lists every problem found, one per line."""

    def __init__(self, path, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"samplesheet {self.path}:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Sample:
    sample: str
    input: str  # as resolved: absolute for local paths, unchanged for remote URIs
    format: str  # never 'auto'
    label_key: str = ""
    layer: str = ""


def read(path, *, check_files: bool = True, base_dir: str | None = None) -> list[Sample]:
    """Read and check a samplesheet; raise SamplesheetError listing every problem.

    Relative inputs are taken relative to ``base_dir`` (a folder or a remote URI; default: the
    samplesheet's own folder). With ``check_files`` local inputs must exist (remote URIs are never
    checked here); without it (in a Nextflow task, where inputs are not staged) only names and formats
    are checked, and Nextflow checks the files."""
    path = Path(path)
    base = base_dir or os.path.dirname(os.path.abspath(path))
    if not path.is_file():
        raise InputError(path, "samplesheet not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    rows = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not rows:
        raise SamplesheetError(path, ["the file is empty; expected a header row 'sample,input' (optional columns: "
                                      f"{', '.join(OPTIONAL)})"])

    header_line, header = rows[0]
    header = [name.strip() for name in header]
    problems = _check_header(header)
    if problems:
        raise SamplesheetError(path, problems)
    if len(rows) == 1:
        raise SamplesheetError(path, ["no samples: the file has a header row and nothing else"])

    samples, seen = [], {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            problems.append(f"line {line}: {len(row)} fields, the header has {len(header)}")
            continue
        record = {name: cell.strip() for name, cell in zip(header, row)}
        sample, found = _check_row(record, line, base=base, check_files=check_files)
        problems.extend(found)
        if record["sample"] in seen:
            problems.append(f"line {line}: sample name {record['sample']!r} is already used on line "
                            f"{seen[record['sample']]}; sample names must be unique")
        seen.setdefault(record["sample"], line)
        if sample is not None:
            samples.append(sample)
    if problems:
        raise SamplesheetError(path, problems)
    return samples


def write(samples: list[Sample], path) -> Path:
    """Write the checked samplesheet (resolved inputs and formats) as CSV, atomically."""
    buffer = io_module.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("sample", "input", "format", "label_key", "layer"))
    for s in samples:
        writer.writerow((s.sample, s.input, s.format, s.label_key, s.layer))
    return io.write_text(buffer.getvalue(), path)


def write_lines(lines, path) -> Path:
    """Write one item per line, atomically (the method list the pipeline fans out over)."""
    return io.write_text("".join(f"{line}\n" for line in lines), path)


def _check_header(header: list[str]) -> list[str]:
    problems = []
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)} (found: {', '.join(header) or 'none'}; "
                        f"expected: {', '.join(REQUIRED)}, optionally {', '.join(OPTIONAL)})")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown)}; allowed: {', '.join(COLUMNS)}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        problems.append(f"column(s) named more than once: {', '.join(repeated)}")
    return problems


def _check_row(record: dict, line: int, *, base: str, check_files: bool) -> tuple[Sample | None, list[str]]:
    problems = []
    name, given = record["sample"], record["input"]
    if not name:
        problems.append(f"line {line}: empty sample name")
    elif not SAMPLE_NAME.match(name):
        problems.append(f"line {line}: sample name {name!r} may only hold letters, digits, '.', '_' and '-' "
                        "(and must start with a letter or digit): it names the output files")
    elif len(name) > MAX_SAMPLE_NAME:
        problems.append(f"line {line}: sample name {name[:20]}... has {len(name)} characters; at most "
                        f"{MAX_SAMPLE_NAME} (it names the output files)")
    if not given:
        problems.append(f"line {line}: empty input path for sample {name!r}")
        return None, problems

    resolved = _resolve(given, base)
    remote = _is_remote(resolved)
    if check_files and not remote and not Path(resolved).exists():
        problems.append(f"line {line}: input {given!r} of sample {name!r} does not exist (looked for {resolved})")

    fmt = record.get("format") or "auto"
    if fmt not in io.FORMATS:
        problems.append(f"line {line}: unknown format {fmt!r}; use one of {', '.join(io.FORMATS)}")
    elif fmt == "auto":
        fmt, problem = _guess_format(given, resolved, remote=remote)
        if problem:
            problems.append(f"line {line}: input {given!r} of sample {name!r}: {problem}")
    if record.get("layer") and fmt != "h5ad":
        problems.append(f"line {line}: a layer ({record['layer']!r}) is only read from h5ad inputs, "
                        f"not from {fmt}")
    if problems:
        return None, problems
    return Sample(sample=name, input=resolved, format=fmt, label_key=record.get("label_key", ""),
                  layer=record.get("layer", "")), []


def _is_remote(path: str) -> bool:
    return path.lower().startswith(REMOTE_SCHEMES)


def _resolve(given: str, base: str) -> str:
    """URIs as given; local paths made absolute against ``base`` (a folder or a URI). Symbolic links
    are kept, not followed: the format is guessed from the name the user gave."""
    if _is_remote(given):
        return given
    path = os.path.expanduser(given)
    if os.path.isabs(path):
        return os.path.abspath(path)
    if _is_remote(base):
        return f"{base.rstrip('/')}/{given}"
    return os.path.abspath(os.path.join(base, path))


def _guess_format(given: str, resolved: str, *, remote: bool) -> tuple[str, str | None]:
    """io.detect_format on the path; a name without a suffix (or ending in '/') that is not here to
    look at is taken as a 10x directory."""
    local = Path(resolved)
    if not remote and local.exists():
        try:
            return io.detect_format(local), None
        except InputError:
            return "auto", _UNKNOWN_FORMAT
    name = PurePosixPath(given.rstrip("/"))
    if given.endswith("/") or not name.suffix:
        return "10x", None
    try:
        return io.detect_format(Path(name.name)), None
    except InputError:
        return "auto", _UNKNOWN_FORMAT
