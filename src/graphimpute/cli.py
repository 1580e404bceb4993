"""The command line: one subcommand per step, plus ``run`` (the whole chain) and ``methods``.

It only wires options to ``graphimpute.pipeline``; user errors become one line on stderr and a
non-zero exit code, with nothing written.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import warnings
from pathlib import Path

# OpenMP threads that spin while waiting stall every torch operator on a shared, busy node (measured:
# SCGNN's impute step 129 s with the default vs 33 s passive, load 13-19 on 2 cores); it must be set
# before torch is first imported. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click

from graphimpute._version import __version__
from graphimpute.errors import GraphImputeError, NotEnoughMemoryError
from graphimpute.methods._base import MAX_SEED

log = logging.getLogger("graphimpute")

EXIT_USER_ERROR = 2
# The run would need more memory than it may use (--memory-gb, else the machine's free memory): the
# Nextflow pipeline retries such a task with more memory (conf/base.config), unlike EXIT_USER_ERROR.
EXIT_NEEDS_MEMORY = 75


# ---- shared options ----------------------------------------------------------------------------------

class FiniteRange(click.FloatRange):
    """click's FloatRange, without nan and inf (every comparison with nan is false, so it passes a range)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="CPU threads of torch, OpenMP, MKL, OpenBLAS and numba (a Nextflow task's cpus) [default: the "
         "libraries' own, one per core].")


def common(log_default: str):
    """--seed, --threads, --verbose, --quiet, --log-file; sets up logging and the thread limit; turns
    GraphImputeError (and a full disk or a refused write) into one line and an exit code, with nothing
    left behind: see ``_Outputs``."""

    def decorate(func):
        @click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
                      help="Random seed, 0 to 2**32 - 1 (same seed, same result on CPU).")
        @threads_option
        @click.option("-v", "--verbose", is_flag=True, help="Debug messages.")
        @click.option("--quiet", is_flag=True, help="No progress bars (log messages still go to the log file).")
        @click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help=f"Log file [default: {log_default}, removed again when the command stops on an error; a file "
                           "given here is kept and appended to].")
        @functools.wraps(func)
        def wrapper(*args, threads, verbose, quiet, log_file, **kwargs):
            from graphimpute.threads import limit_threads

            target = log_file or _default_log(kwargs)
            clash = _log_clash(target, kwargs)
            if clash:  # before the log is opened: the handler would append to that file at once
                click.echo(f"Error: --log-file {target}: {clash}; give the log a path of its own", err=True)
                sys.exit(EXIT_USER_ERROR)
            outputs = _Outputs(_output_paths(kwargs), target, explicit_log=log_file is not None,
                               keep=[kwargs.get("workdir")])
            handler = _setup_logging(target, verbose, explicit=log_file is not None)
            log.debug("graphimpute %s: %s", __version__, " ".join(sys.argv))
            try:
                # before the subcommand imports numpy, torch or numba: they start with these threads
                with limit_threads(threads), warnings.catch_warnings():
                    warnings.showwarning = _log_warning
                    return func(*args, quiet=quiet, **kwargs)
            except (GraphImputeError, OSError) as err:
                message = err if isinstance(err, GraphImputeError) else _os_error_line(err)
                if message is None:  # an OSError that is not the user's to fix: a bug, with its traceback
                    _close(handler)
                    outputs.remove_new(keep_log=True)
                    raise
                log.debug("error", exc_info=True)
                _close(handler)
                outputs.remove_new(keep_log=False)
                click.echo(f"Error: {message}", err=True)
                code = EXIT_NEEDS_MEMORY if isinstance(err, NotEnoughMemoryError) else EXIT_USER_ERROR
                if getattr(err, "exit_at_once", False):  # see io._write_atomic: HDF5 would crash on the way out
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
                sys.exit(code)
            except KeyboardInterrupt:  # finished steps stay, so that a rerun resumes after them
                _close(handler)
                raise
            except Exception:
                log.debug("error", exc_info=True)
                _close(handler)
                outputs.remove_new(keep_log=True)
                raise
            finally:
                _close(handler)

        return wrapper

    return decorate


class _Outputs:
    """What a command may create (its output files, output folder and default log), as it was before
    the command. ``remove_new`` takes away what the command created, and only that: files and folders
    that did not exist (a results folder that existed keeps everything it held; a log that existed is
    cut back to its old length). In a folder that existed before, only the entries the command owns
    are looked at (``run``: its step folders), never a user's other files. The --workdir
    (checkpoints, for --resume) and an explicit --log-file always stay."""

    def __init__(self, paths: list[tuple[Path, tuple[str, ...] | None]], log_file: Path, *, explicit_log: bool,
                 keep=()):
        self.paths = [(Path(p).absolute(), owned) for p, owned in paths]
        self.log_file = Path(log_file).absolute()
        self.explicit_log = explicit_log
        self.keep = [Path(k).absolute() for k in keep if k is not None]
        if explicit_log:
            self.keep.append(self.log_file)
        self.before: set[Path] = set()
        self.missing_parents: list[Path] = []
        for path, owned in [*self.paths, (self.log_file, None)]:
            if path.exists():
                self.before.add(path)
            self.before.update(self._entries(path, owned))
            for parent in [path, *path.parents]:
                if parent.exists():
                    break
                self.missing_parents.append(parent)
        self.log_size = self.log_file.stat().st_size if self.log_file.is_file() else None

    @staticmethod
    def _entries(folder: Path, owned) -> list[Path]:
        if not folder.is_dir() or folder.is_symlink():
            return []
        tops = [folder / name for name in owned] if owned is not None else list(folder.iterdir())
        found = []
        for top in tops:
            if top.exists() or top.is_symlink():
                found.append(top)
                if top.is_dir() and not top.is_symlink():
                    found.extend(top.rglob("*"))
        return found

    def _kept(self, path: Path) -> bool:
        return any(path == k or path.is_relative_to(k) or k.is_relative_to(path) for k in self.keep)

    def remove_new(self, *, keep_log: bool) -> None:
        keep_log = keep_log or self.explicit_log
        for path, owned in self.paths:
            existed = path in self.before
            for sub in sorted(self._entries(path, owned if existed else None), key=lambda q: len(q.parts),
                              reverse=True):
                self._remove(sub, keep_log)
            self._remove(path, keep_log)
        if not keep_log and self.log_size is not None and self.log_file.is_file():
            os.truncate(self.log_file, self.log_size)
        elif not keep_log:
            self._remove(self.log_file, keep_log)
        for parent in sorted(self.missing_parents, key=lambda q: len(q.parts), reverse=True):
            self._remove(parent, keep_log)

    def _remove(self, path: Path, keep_log: bool) -> None:
        if path in self.before or self._kept(path) or (keep_log and path == self.log_file):
            return
        try:
            if path.is_dir() and not path.is_symlink():
                if keep_log and self.log_file.is_relative_to(path):
                    return
                if not any(path.iterdir()):
                    path.rmdir()
            elif path.exists() or path.is_symlink():
                path.unlink()
        except OSError:
            pass  # never let the clean-up hide the error that caused it


# what `run` writes into its --outdir; a failed run removes new files there only
_RUN_FOLDERS = ("qc", "normalise", "mask", "graph", "impute", "evaluate", "multiqc", "pipeline_info")


def _output_paths(kwargs) -> list[tuple[Path, tuple[str, ...] | None]]:
    """The outputs a subcommand names: -o file(s), or the results folder (``run``: its step folders;
    evaluate, report: what they write there)."""
    found = [(Path(kwargs[k]), None) for k in ("output", "truth", "output_dir", "write_methods")
             if isinstance(kwargs.get(k), (str, Path))]  # evaluate's --truth (a tuple) is an input
    if isinstance(kwargs.get("outdir"), (str, Path)):
        found.append((Path(kwargs["outdir"]), _RUN_FOLDERS))
    return found


def _os_error_line(err: OSError) -> str | None:
    from graphimpute.io import disk_problem

    problem = disk_problem(err)
    if problem is None:
        return None
    return f"{err.filename}: {problem}" if err.filename else problem


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings go to the log (file and console) like every other message: the user's warnings (ours,
    UserWarning) as warnings, the libraries' deprecation and runtime notices at debug level."""
    level = logging.WARNING if issubclass(category, UserWarning) and not issubclass(
        category, (DeprecationWarning, FutureWarning)) else logging.DEBUG
    log.log(level, "%s", message)


def _close(handler) -> None:
    """The command's end: its file and console handlers come off the package logger (a command run from
    Python, e.g. click's test runner or a notebook, would otherwise leave its console behind for gi.impute)."""
    package = logging.getLogger("graphimpute")
    for attached in list(package.handlers):
        package.removeHandler(attached)
    if handler is not None:
        handler.close()


def _log_clash(log_file: Path, kwargs) -> str | None:
    """What the log would overwrite: an input or an output file of the command (also through a symlink)."""
    target = Path(log_file).resolve()
    for key, value in kwargs.items():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(path, Path) and (path.resolve() == target or (
                    path.exists() and target.exists() and os.path.samefile(path, target))):
                return f"that is the command's {key.replace('_path', '').replace('_', ' ')} ({path})"
    return None


def _default_log(kwargs) -> Path:
    if "outdir" in kwargs and kwargs["outdir"] is not None:
        return Path(kwargs["outdir"]) / "pipeline_info" / "graphimpute.log"
    if kwargs.get("output_dir") is not None:  # evaluate, report: inside their output folder
        return Path(kwargs["output_dir"]) / "graphimpute.log"
    if "output" in kwargs and kwargs["output"] is not None:
        return Path(kwargs["output"]).with_suffix(".log")
    return Path("graphimpute.log")


def _setup_logging(path: Path, verbose: bool, *, explicit: bool = True):
    """Console and log file handlers; returns the file handler (None when the file cannot be
    written: a warning when the user named it, else the command's own check says why)."""
    from rich.logging import RichHandler

    root = logging.getLogger("graphimpute")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.handlers.clear()
    console = RichHandler(console=_stderr_console(), show_path=False, show_time=False, markup=False)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(console)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.DEBUG)
        root.addHandler(handler)
        return handler
    except OSError as err:
        if explicit:
            root.warning("cannot write the log file %s (%s); logging to the console only", path, err)
        return None


@functools.cache
def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _n_top_genes(value: str) -> int | None:
    if value == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter("a positive whole number, or 'all'") from None
    if number <= 0:
        raise click.BadParameter("a positive whole number, or 'all'")
    return number


def _params(pairs: tuple[str, ...], params_file: Path | None) -> dict:
    params: dict = {}
    if params_file is not None:
        try:
            content = json.loads(params_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise GraphImputeError(f"{params_file}: not a readable JSON object of parameters ({err})") from None
        if not isinstance(content, dict):
            raise GraphImputeError(f"{params_file}: expected a JSON object of parameters, "
                                   f'{{"max_epochs": 50, ...}}, not a {type(content).__name__}')
        params.update(content)
    for pair in pairs:
        if "=" not in pair:
            raise GraphImputeError(f"--param {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        params[key.strip()] = value.strip()
    return params


def _ctx(seed, device, quiet, checkpoint_every=None, resume=False, workdir=None):
    from graphimpute.methods import RunContext

    if resume and workdir is None:
        raise GraphImputeError("--resume needs --workdir: the folder that holds the checkpoints to resume from")
    if device != "cpu":  # refuse cuda where there is none before any work is done (cpu needs no torch: ~3 s)
        from graphimpute.train import resolve_device

        resolve_device(device)
    return RunContext(seed=seed, device=device, progress=not quiet, checkpoint_every=checkpoint_every,
                      resume=resume, workdir=workdir)


input_file = click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
output_file = click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
                           help="Output .h5ad (written atomically; never the input).")


def read_options(func):
    for option in reversed([
        click.option("--format", "fmt", type=click.Choice(["auto", "h5ad", "10x", "10x-h5", "csv", "tsv"]),
                     default="auto", show_default=True, help="Input format (auto: from the name)."),
        click.option("--transpose", is_flag=True, help="The CSV/TSV table is genes x cells."),
        click.option("--allow-non-integer", is_flag=True, help="Accept non-integer values (counts are expected)."),
        click.option("--label-key", default=None, help="Cell annotation column with cell types (checked to exist)."),
        click.option("--layer", default=None,
                     help="h5ad: read counts from this layer ('raw' for .raw) instead of X."),
    ]):
        func = option(func)
    return func


def qc_options(func):
    for option in reversed([
        click.option("--min-genes", type=click.IntRange(min=0), default=200, show_default=True, help="Minimum detected genes per cell."),
        click.option("--min-cells", type=click.IntRange(min=0), default=3, show_default=True, help="Minimum cells a gene is detected in."),
        click.option("--max-pct-mt", type=FiniteRange(0, 100), default=20.0, show_default=True,
                     help="Maximum % of counts in mitochondrial genes (MT-/mt-)."),
        click.option("--n-mads", type=FiniteRange(0, min_open=True), default=5.0, show_default=True,
                     help="Remove cells whose log total count is this many MADs from the median."),
    ]):
        func = option(func)
    return func


def _qc_kwargs(kwargs) -> dict:
    return {k: kwargs.pop(k) for k in ("min_genes", "min_cells", "max_pct_mt", "n_mads")}


n_top_genes_option = click.option("--n-top-genes", default="2000", show_default=True,
                                  help="Highly variable genes to keep, or 'all'.")
graph_options = [
    click.option("--n-pcs", type=click.IntRange(min=1), default=50, show_default=True,
                 help="Principal components for cell graphs."),
    click.option("--n-neighbors", type=click.IntRange(min=1), default=15, show_default=True,
                 help="k of the general kNN cell graph."),
]
impute_options = [
    click.option("--param", "param_pairs", multiple=True, metavar="KEY=VALUE",
                 help="Override a method hyper-parameter (repeatable)."),
    click.option("--params-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="JSON object of hyper-parameters; for `run`, keyed by method name to tune several."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                 help="Where neural methods train; cuda without a GPU is an error."),
    click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Save a training checkpoint every N epochs."),
    click.option("--resume", is_flag=True, help="Resume training from the checkpoint in --workdir."),
    click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Folder for checkpoints (default: none kept)."),
    click.option("--memory-gb", type=FiniteRange(0, min_open=True), default=None,
                 help="Memory this run may use, in GB (a Nextflow task's memory): memory estimates are checked "
                      f"against it instead of the machine's free memory; over it, exit code {EXIT_NEEDS_MEMORY}."),
]


def _apply(options, func):
    for option in reversed(options):
        func = option(func)
    return func


# ---- commands ----------------------------------------------------------------------------------------

class _OneLineGroup(click.Group):
    """click's usage errors in one line, as every other refusal of this tool (click's own are three:
    Usage, Try --help, Error), naming the subcommand whose --help lists its options."""

    def main(self, args=None, prog_name=None, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            result = super().main(args, prog_name, **kwargs)
        except click.exceptions.NoArgsIsHelpError as err:  # `graphimpute` alone: its help, as click shows it
            click.echo(err.format_message(), err=True)
            sys.exit(err.exit_code)
        except click.UsageError as err:
            command = err.ctx.command_path if err.ctx is not None else (prog_name or "graphimpute")
            click.echo(f"Error: {err.format_message()} (`{command} --help` lists the options)", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group("graphimpute", cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="graphimpute")
def main():
    """Impute dropout in scRNA-seq counts with graph deep-learning methods, and benchmark them."""


@main.command("qc")
@input_file
@output_file
@read_options
@qc_options
@common("OUTPUT with the suffix .log")
def qc_command(input_path, output, fmt, transpose, allow_non_integer, label_key, layer, seed, quiet, **kwargs):
    """Read INPUT (h5ad, 10x directory, 10x h5, CSV/TSV), validate it and filter cells and genes."""
    from graphimpute import pipeline

    pipeline.qc_step(input_path, output, fmt=fmt, transpose=transpose, allow_non_integer=allow_non_integer,
                     label_key=label_key, layer=layer, **_qc_kwargs(kwargs))
    log.info("wrote %s", output)


@main.command("normalise")
@input_file
@output_file
@n_top_genes_option
@common("OUTPUT with the suffix .log")
def normalise_command(input_path, output, n_top_genes, seed, quiet):
    """Size factors, log-normalised layer and highly variable genes of a QC'd h5ad."""
    from graphimpute import pipeline

    pipeline.normalise_step(input_path, output, n_top_genes=_n_top_genes(n_top_genes))
    log.info("wrote %s", output)


@main.command("mask")
@input_file
@output_file
@click.option("--truth", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where the hidden counts go (read only by evaluate).")
@click.option("--scheme", type=click.Choice(["uniform", "low-count", "mcv"]), default="uniform", show_default=True,
              help="uniform / low-count: hide entries (low-count: weighted toward low counts); "
                   "mcv: molecular cross-validation split.")
@click.option("--fraction", type=FiniteRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True,
              help="Share of each cell's non-zeros hidden (mcv: share of molecules held out).")
@common("OUTPUT with the suffix .log")
def mask_command(input_path, output, truth, scheme, fraction, seed, quiet):
    """Benchmark mode: hide a share of the counts, keeping the truth in a separate file."""
    from graphimpute import pipeline

    pipeline.mask_step(input_path, output, truth, scheme=scheme, fraction=fraction, seed=seed)
    log.info("wrote %s and %s", output, truth)


@main.command("graph")
@input_file
@output_file
@click.option("--methods", "method_list", default="none", show_default=True,
              help="Build the graphs these methods need (comma-separated, or 'all').")
@functools.partial(_apply, graph_options)
@common("OUTPUT with the suffix .log")
def graph_command(input_path, output, method_list, n_pcs, n_neighbors, seed, quiet):
    """PCA, kNN cell graph and the graphs the chosen methods need."""
    from graphimpute import methods, pipeline

    pipeline.graph_step(input_path, output, method_names=methods.parse_methods(method_list), n_pcs=n_pcs,
                        n_neighbors=n_neighbors, seed=seed)
    log.info("wrote %s", output)


@main.command("impute")
@input_file
@output_file
@click.option("--method", required=True, help="A registered method (see `graphimpute methods`).")
@functools.partial(_apply, impute_options)
@common("OUTPUT with the suffix .log")
def impute_command(input_path, output, method, param_pairs, params_file, device, checkpoint_every, resume,
                   workdir, memory_gb, seed, quiet):
    """Impute with one method; writes layers['imputed'] (expected counts) and its provenance."""
    from graphimpute import methods
    from graphimpute.monitor import memory_budget

    params = _params(param_pairs, params_file)
    if method != "auto" and _keyed_by_method(params) and not param_pairs:  # a pipeline-style params file
        if method not in params:
            raise GraphImputeError(f"{params_file}: parameters by method name ({', '.join(params)}), none for "
                                   f"{method!r}; give {method}'s own parameters")
        params = params[method]
    if method != "auto":  # a bad method or parameter fails before torch, anndata or the input is loaded
        methods.resolve_params(methods.get(method), params)
    from graphimpute import pipeline  # anndata, numpy, torch: after the cheap checks

    ctx = _ctx(seed, device, quiet, checkpoint_every, resume, workdir)
    with memory_budget(memory_gb):
        pipeline.impute_step(input_path, output, method=method, params=params, ctx=ctx)
    log.info("wrote %s", output)


@main.command("collect")
@click.argument("base_path", metavar="BASE", type=click.Path(path_type=Path))
@click.argument("imputed", metavar="IMPUTED...", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_file
@common("OUTPUT with the suffix .log")
def collect_command(base_path, imputed, output, seed, quiet):
    """One h5ad with several methods' results: BASE (the file they imputed, e.g. graph/<sample>.h5ad,
    counts in X) plus layers['imputed_<method>'] and their provenance from each IMPUTE output."""
    from graphimpute import pipeline

    pipeline.collect_step(base_path, list(imputed), output)
    log.info("wrote %s", output)


@main.command("run")
@click.option("-i", "--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="Count matrix: h5ad, 10x directory, 10x h5 or CSV/TSV.")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results folder (one subfolder per step).")
@click.option("--methods", "method_list", default="none", show_default=True,
              help="Comma-separated methods, 'all', or 'auto' (choose the method by molecular cross-validation "
                   "on this input, then impute with it).")
@click.option("--auto-candidates", default="all", show_default=True,
              help="--methods auto: the methods to choose from (comma-separated, or 'all' that are installed).")
@click.option("--auto-max-cells", type=click.IntRange(min=50), default=2000, show_default=True,
              help="--methods auto: choose on a random subsample of this many cells above it.")
@click.option("--auto-seeds", type=click.IntRange(min=1), default=2, show_default=True,
              help="--methods auto: MCV splits per candidate (mean ± sd; ties reported).")
@click.option("--sample", default=None, help="Sample name used in file names [default: the input's name].")
@click.option("--benchmark", is_flag=True,
              help="Hide counts after normalise, then evaluate the methods and write a MultiQC report.")
@click.option("--mask-scheme", type=click.Choice(["uniform", "low-count", "mcv"]), default="mcv",
              show_default=True, help="Benchmark: mcv (molecular cross-validation, the ranking metric) or "
                                      "uniform / low-count (hidden-entry recovery; see `graphimpute mask`).")
@click.option("--mask-fraction", type=FiniteRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True, help="Benchmark: share hidden.")
@click.option("--mask-seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Benchmark: masks drawn with seeds SEED, SEED+1, ...; every score is mean ± sd over them "
                   "and differences within the spread are ties.")
@click.option("--force", is_flag=True, help="Redo every step even when its output is up to date.")
@read_options
@qc_options
@n_top_genes_option
@functools.partial(_apply, graph_options + impute_options)
@common("OUTDIR/pipeline_info/graphimpute.log")
def run_command(input_path, outdir, method_list, auto_candidates, auto_max_cells, auto_seeds, sample, benchmark, mask_scheme, mask_fraction, mask_seeds, force, fmt, transpose,
                allow_non_integer, label_key, layer, n_top_genes, n_pcs, n_neighbors, param_pairs, params_file, device,
                checkpoint_every, resume, workdir, memory_gb, seed, quiet, **kwargs):
    """The whole chain in one process: QC, normalise, [mask], graph, impute (each method), [evaluate, report]."""
    from graphimpute import methods

    auto = method_list.strip() == "auto"
    names = ["auto"] if auto else methods.parse_methods(method_list)
    # 'all' means every method that can run here; a method named outright whose package is missing is
    # an error before any work (pipeline.preflight)
    if method_list.strip() == "all":
        for name in [n for n in names if methods.get(n).missing()]:
            log.warning("--methods all: %s skipped, %s not installed (%s)", name,
                        ", ".join(methods.get(name).missing()), methods.get(name).install_hint)
            names.remove(name)
    candidates = methods.parse_methods(auto_candidates) if auto else []
    method_params = _method_params(candidates if auto else names, param_pairs, params_file)
    from graphimpute import pipeline  # anndata, numpy, torch: after the cheap checks

    ctx = _ctx(seed, device, quiet, checkpoint_every, resume, workdir)
    options = pipeline.RunOptions(
        methods=names, sample=sample, benchmark=benchmark, label_key=label_key, force=force,
        read=dict(fmt=fmt, transpose=transpose, allow_non_integer=allow_non_integer, layer=layer), qc=_qc_kwargs(kwargs),
        n_top_genes=_n_top_genes(n_top_genes), mask_scheme=mask_scheme, mask_fraction=mask_fraction, mask_seeds=mask_seeds, n_pcs=n_pcs, n_neighbors=n_neighbors,
        method_params=method_params, ctx=ctx,
        auto=dict(candidates=candidates, max_cells=auto_max_cells, mask_seeds=auto_seeds) if auto else {})
    if outdir.exists() and Path(input_path).resolve().is_relative_to(outdir.resolve()):
        raise GraphImputeError(f"{input_path}: the input lies inside --outdir {outdir}; choose another folder")
    from graphimpute.monitor import memory_budget

    with memory_budget(memory_gb):
        paths = pipeline.run(input_path, outdir, options)
    for name, path in paths.items():
        log.debug("%s: %s", name, path)
    report = paths.get("report")
    if report is not None and report.exists():
        log.info("done: results in %s; report: %s", outdir, report)
    else:
        log.info("done: results in %s", outdir)


@main.command("check-samplesheet")
@click.argument("samplesheet_path", metavar="SAMPLESHEET", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The checked samplesheet, inputs and formats resolved (sample,input,format,label_key,layer).")
@click.option("--methods", "method_list", default=None,
              help="Also check these methods (comma-separated, or 'all') against the registry.")
@click.option("--write-methods", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the checked methods there as TSV with a header: method, trains (true/false); "
                   "'all' expanded.")
@click.option("--method-params", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also check a JSON file of hyper-parameters keyed by method name (the pipeline's "
                   "--method_params): every method and parameter name must exist.")
@click.option("--base-dir", default=None,
              help="Folder or URI that relative inputs are relative to [default: the samplesheet's folder].")
@click.option("--check-files/--no-check-files", default=True, show_default=True,
              help="Check that local inputs exist (off in a pipeline task, where inputs are not staged).")
@common("OUTPUT with the suffix .log")
def check_samplesheet_command(samplesheet_path, output, method_list, write_methods, method_params, base_dir,
                              check_files, seed, quiet):
    """Check a pipeline samplesheet (sample,input[,label_key,format,layer]); every problem is reported."""
    from graphimpute import io, methods, samplesheet

    if write_methods is not None and method_list is None:
        raise GraphImputeError("--write-methods needs --methods")
    for target in (output, write_methods):
        if target is not None:
            io.check_output(samplesheet_path, target)
    names = methods.parse_methods(method_list) if method_list is not None else None
    if method_params is not None:
        _check_method_params(method_params)
    samples = samplesheet.read(samplesheet_path, check_files=check_files, base_dir=base_dir)
    samplesheet.write(samples, output)
    if write_methods is not None:
        rows = [f"{name}\t{str(methods.get(name).trains).lower()}" for name in names]
        samplesheet.write_lines(["method\ttrains", *rows], write_methods)
    log.info("%s: %d sample(s) checked%s", samplesheet_path, len(samples),
             f"; methods: {', '.join(names)}" if names else "")


def _check_method_params(path: Path) -> dict[str, dict]:
    """A JSON object of objects keyed by method name; every method and parameter must exist (a typo is an
    error, never silently ignored)."""
    from graphimpute import methods

    try:
        content = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise GraphImputeError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(content, dict) or not all(isinstance(v, dict) for v in content.values()):
        raise GraphImputeError(f"{path}: expected a JSON object of objects keyed by method name, "
                               '{"scgnn": {"max_epochs": 50}, ...}')
    for name, values in content.items():
        try:
            methods.resolve_params(methods.get(name), values)
        except GraphImputeError as err:
            raise GraphImputeError(f"{path}: {err}") from None
    return content


@main.command("summarise")
@input_file
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="MultiQC custom content (name it *_mqc.tsv).")
@click.option("--step", required=True, type=click.Choice(["qc", "normalise", "mask", "graph", "impute"]),
              help="The step whose output INPUT is.")
@click.option("--sample", default=None, help="Row name in the report [default: the input's name].")
@threads_option
def summarise_command(input_path, output, step, sample, threads):
    """One report row (MultiQC custom content) from a step's output h5ad; the counts are not loaded."""
    from graphimpute import io, summary
    from graphimpute.threads import limit_threads

    try:
        with limit_threads(threads):
            io.check_output(input_path, output)
            row = summary.summarise(input_path, step=step, sample=sample or Path(input_path).name.split(".")[0])
            summary.write_mqc(row, output, step=step)
    except GraphImputeError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(EXIT_USER_ERROR)


@main.command("evaluate")
@click.argument("imputed", metavar="IMPUTED...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--outdir", "output_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <sample>.metrics.tsv, .summary.tsv, .summary.json and the report's inputs.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), multiple=True,
              help="The mask step's truth file (hidden-entry recovery or MCV metrics); repeat it once per mask "
                   "seed: each output is scored against the truth of its own seed.")
@click.option("--label-key", default=None, help="obs column with cell types (clustering metrics).")
@click.option("--sample", default=None, help="Sample name [default: from the first file's name].")
@click.option("--rescale", type=click.Choice(["library", "none"]), default="library", show_default=True,
              help="Rescale each output's cells to their unmasked library before scoring hidden entries.")
@click.option("--n-pcs", type=click.IntRange(min=1), default=50, show_default=True,
              help="PCs of the evaluation representation.")
@click.option("--n-neighbors", type=click.IntRange(min=1), default=15, show_default=True,
              help="k of the evaluation kNN graph.")
@click.option("--kmeans-seeds", type=click.IntRange(min=1), default=5, show_default=True, help="k-means runs averaged.")
@click.option("--leiden-resolution", type=FiniteRange(0, min_open=True), default=1.0, show_default=True)
@click.option("--umap/--no-umap", default=True, show_default=True, help="UMAP coordinates for the report.")
@common("graphimpute.log in the output folder")
def evaluate_command(imputed, output_dir, truth, label_key, sample, rescale, n_pcs, n_neighbors, kmeans_seeds,
                     leiden_resolution, umap, seed, quiet):
    """Benchmark mode: score every method's output (IMPUTED h5ad files) of one sample."""
    from graphimpute import pipeline
    from graphimpute.evaluate import Settings

    for path in imputed:
        if any(Path(path).resolve() == Path(t).resolve() for t in truth):
            raise GraphImputeError(f"{path}: the truth file is not a method output")
    settings = Settings(rescale=rescale, n_pcs=n_pcs, n_neighbors=n_neighbors, kmeans_seeds=kmeans_seeds,
                        leiden_resolution=leiden_resolution, umap=umap, seed=seed)
    summary = pipeline.evaluate_step(list(imputed), output_dir, truth_path=list(truth) or None, label_key=label_key,
                                     sample=sample, settings=settings)
    log.info("wrote %s (and its tables beside it)", summary)


@main.command("report")
@click.argument("inputs", metavar="EVALUATED...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--outdir", "output_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the MultiQC report and its custom_content/.")
@click.option("--title", default="graphimpute benchmark", show_default=True)
@click.option("--render/--no-render", default=True, show_default=True,
              help="Run MultiQC (needs multiqc installed); --no-render writes only the custom content.")
@common("graphimpute.log in the output folder")
def report_command(inputs, output_dir, title, render, seed, quiet):
    """Benchmark mode: MultiQC report from evaluate's folders or files (several samples allowed)."""
    from graphimpute import pipeline

    out = pipeline.report_step(list(inputs), output_dir, title=title, render=render)
    log.info("wrote %s", out)


def _keyed_by_method(content: dict) -> bool:
    from graphimpute import methods

    return bool(content) and all(k in methods.names() and isinstance(v, dict) for k, v in content.items())


def _method_params(names: list[str], pairs, params_file) -> dict[str, dict]:
    """--param/--params-file for `run`: a params file whose keys are all method names gives each method
    its own parameters (e.g. assets/test_method_params.json); otherwise they apply to the one method."""
    from graphimpute import methods

    if params_file is not None and not pairs:
        content = _params((), params_file)
        if _keyed_by_method(content):
            for name, params in content.items():
                methods.resolve_params(methods.get(name), params)  # unknown keys fail before any work
            unused = [name for name in content if name not in names]
            if unused:  # a shared file (the pipeline's) may hold more methods than this run has
                log.warning("%s: parameters for %s, which this run does not run; not used", params_file,
                            ", ".join(unused))
            return {name: params for name, params in content.items() if name in names}
    overrides = _params(pairs, params_file)
    if overrides and len(names) > 1:
        raise GraphImputeError("--param applies to one method; with several methods give a --params-file "
                               "whose keys are method names ({\"scgnn\": {\"max_epochs\": 50}, ...})")
    if overrides:
        methods.resolve_params(methods.get(names[0]), overrides)
    return {names[0]: overrides} if overrides else {}


@main.command("methods")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def methods_command(name, as_json):
    """List the registered methods and baselines; with NAME, that method's parameters, defaults and ranges."""
    from graphimpute import methods

    try:
        entries = {name: methods.get(name)} if name else methods.available()
    except GraphImputeError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(EXIT_USER_ERROR)
    if name and not as_json:
        click.echo(entries[name].describe())
        return
    if as_json:
        click.echo(json.dumps({name: {"kind": m.kind, "summary": m.summary, "citation": m.citation,
                                      "trains": m.trains, "defaults": dict(m.defaults),
                                      "ranges": {k: str(r) for k, r in m.ranges.items()},
                                      "graphs": [g.key for g in m.graphs], "available": m.is_available,
                                      "missing": list(m.missing())}
                               for name, m in entries.items()}, indent=2, default=str))
        return
    width = max(map(len, entries))
    for name, m in entries.items():
        missing = f"  (not installed: {', '.join(m.missing())}; {m.install_hint})" if m.missing() else ""
        click.echo(f"{name:<{width}}  {m.kind:<8}  {m.summary}  [{m.citation}]{missing}")


if __name__ == "__main__":
    main()
