"""The command line: one subcommand per step, plus ``run`` (the whole chain) and ``methods``.

It only wires options to ``graphimpute.pipeline``; user errors become one line on stderr and a
non-zero exit code, with nothing written.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

import click

from graphimpute import __version__
from graphimpute.errors import GraphImputeError

log = logging.getLogger("graphimpute")

EXIT_USER_ERROR = 2


# ---- shared options ----------------------------------------------------------------------------------

def common(log_default: str):
    """--seed, --verbose, --quiet, --log-file; sets up logging; turns GraphImputeError into one line."""

    def decorate(func):
        @click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same result on CPU).")
        @click.option("-v", "--verbose", is_flag=True, help="Debug messages.")
        @click.option("--quiet", is_flag=True, help="No progress bars (log messages still go to the log file).")
        @click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help=f"Log file [default: {log_default}].")
        @functools.wraps(func)
        def wrapper(*args, verbose, quiet, log_file, **kwargs):
            target = log_file or _default_log(log_default, kwargs)
            _setup_logging(target, verbose)
            log.debug("graphimpute %s: %s", __version__, " ".join(sys.argv))
            try:
                return func(*args, quiet=quiet, **kwargs)
            except GraphImputeError as err:
                log.debug("error", exc_info=True)
                click.echo(f"Error: {err}", err=True)
                sys.exit(EXIT_USER_ERROR)

        return wrapper

    return decorate


def _default_log(template: str, kwargs) -> Path:
    if "outdir" in kwargs and kwargs["outdir"] is not None:
        return Path(kwargs["outdir"]) / "pipeline_info" / "graphimpute.log"
    if "output" in kwargs and kwargs["output"] is not None:
        return Path(kwargs["output"]).with_suffix(".log")
    return Path(template)


def _setup_logging(path: Path, verbose: bool) -> None:
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
    except OSError as err:
        root.warning("cannot write the log file %s (%s); logging to the console only", path, err)


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
            params.update(json.loads(params_file.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise GraphImputeError(f"{params_file}: not a readable JSON object of parameters ({err})") from None
    for pair in pairs:
        if "=" not in pair:
            raise GraphImputeError(f"--param {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        params[key.strip()] = value.strip()
    return params


def _ctx(seed, device, quiet, checkpoint_every=None, resume=False, workdir=None):
    from graphimpute.methods import RunContext
    from graphimpute.train import resolve_device

    resolve_device(device)  # refuse cuda where there is none before any work is done
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
        click.option("--min-genes", type=int, default=200, show_default=True, help="Minimum detected genes per cell."),
        click.option("--min-cells", type=int, default=3, show_default=True, help="Minimum cells a gene is detected in."),
        click.option("--max-pct-mt", type=float, default=20.0, show_default=True,
                     help="Maximum % of counts in mitochondrial genes (MT-/mt-)."),
        click.option("--n-mads", type=float, default=5.0, show_default=True,
                     help="Remove cells whose log total count is this many MADs from the median."),
    ]):
        func = option(func)
    return func


def _qc_kwargs(kwargs) -> dict:
    return {k: kwargs.pop(k) for k in ("min_genes", "min_cells", "max_pct_mt", "n_mads")}


n_top_genes_option = click.option("--n-top-genes", default="2000", show_default=True,
                                  help="Highly variable genes to keep, or 'all'.")
graph_options = [
    click.option("--n-pcs", type=int, default=50, show_default=True, help="Principal components for cell graphs."),
    click.option("--n-neighbors", type=int, default=15, show_default=True, help="k of the general kNN cell graph."),
]
impute_options = [
    click.option("--param", "param_pairs", multiple=True, metavar="KEY=VALUE",
                 help="Override a method hyper-parameter (repeatable)."),
    click.option("--params-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="JSON object of hyper-parameters."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                 help="Where neural methods train; cuda without a GPU is an error."),
    click.option("--checkpoint-every", type=int, default=None, help="Save a training checkpoint every N epochs."),
    click.option("--resume", is_flag=True, help="Resume training from the checkpoint in --workdir."),
    click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Folder for checkpoints (default: none kept)."),
]


def _apply(options, func):
    for option in reversed(options):
        func = option(func)
    return func


# ---- commands ----------------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="graphimpute")
def main():
    """Impute dropout in scRNA-seq counts with graph deep-learning methods, and benchmark them."""


@main.command("qc")
@input_file
@output_file
@read_options
@qc_options
@common("graphimpute.log")
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
@common("graphimpute.log")
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
@click.option("--fraction", type=float, default=0.1, show_default=True, help="Share of each cell's non-zeros hidden.")
@common("graphimpute.log")
def mask_command(input_path, output, truth, fraction, seed, quiet):
    """Benchmark mode: hide a share of the counts, keeping the truth in a separate file."""
    from graphimpute import pipeline

    pipeline.mask_step(input_path, output, truth, fraction=fraction, seed=seed)
    log.info("wrote %s and %s", output, truth)


@main.command("graph")
@input_file
@output_file
@click.option("--methods", "method_list", default="none", show_default=True,
              help="Build the graphs these methods need (comma-separated, or 'all').")
@functools.partial(_apply, graph_options)
@common("graphimpute.log")
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
@common("graphimpute.log")
def impute_command(input_path, output, method, param_pairs, params_file, device, checkpoint_every, resume,
                   workdir, seed, quiet):
    """Impute with one method; writes layers['imputed'] (expected counts) and its provenance."""
    from graphimpute import pipeline

    ctx = _ctx(seed, device, quiet, checkpoint_every, resume, workdir)
    pipeline.impute_step(input_path, output, method=method, params=_params(param_pairs, params_file), ctx=ctx)
    log.info("wrote %s", output)


@main.command("run")
@click.option("-i", "--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="Count matrix: h5ad, 10x directory, 10x h5 or CSV/TSV.")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results folder (one subfolder per step).")
@click.option("--methods", "method_list", default="none", show_default=True,
              help="Comma-separated methods, or 'all'.")
@click.option("--sample", default=None, help="Sample name used in file names [default: the input's name].")
@click.option("--benchmark", is_flag=True, help="Hide counts before imputing and evaluate the methods on them.")
@click.option("--mask-fraction", type=float, default=0.1, show_default=True, help="Benchmark: share hidden.")
@click.option("--force", is_flag=True, help="Redo every step even when its output is up to date.")
@read_options
@qc_options
@n_top_genes_option
@functools.partial(_apply, graph_options + impute_options)
@common("OUTDIR/pipeline_info/graphimpute.log")
def run_command(input_path, outdir, method_list, sample, benchmark, mask_fraction, force, fmt, transpose,
                allow_non_integer, label_key, layer, n_top_genes, n_pcs, n_neighbors, param_pairs, params_file, device,
                checkpoint_every, resume, workdir, seed, quiet, **kwargs):
    """The whole chain in one process: QC, normalise, [mask], graph, impute (each method)."""
    from graphimpute import methods, pipeline

    names = methods.parse_methods(method_list)
    overrides = _params(param_pairs, params_file)
    if overrides and len(names) > 1:
        raise GraphImputeError("--param/--params-file apply to one method; run methods separately to tune them")
    ctx = _ctx(seed, device, quiet, checkpoint_every, resume, workdir)
    options = pipeline.RunOptions(
        methods=names, sample=sample, benchmark=benchmark, label_key=label_key, force=force,
        read=dict(fmt=fmt, transpose=transpose, allow_non_integer=allow_non_integer, layer=layer), qc=_qc_kwargs(kwargs),
        n_top_genes=_n_top_genes(n_top_genes), mask_fraction=mask_fraction, n_pcs=n_pcs, n_neighbors=n_neighbors,
        method_params={names[0]: overrides} if overrides else {}, ctx=ctx)
    if outdir.exists() and Path(input_path).resolve().is_relative_to(outdir.resolve()):
        raise GraphImputeError(f"{input_path}: the input lies inside --outdir {outdir}; choose another folder")
    paths = pipeline.run(input_path, outdir, options)
    log.info("done: results in %s", outdir)
    for name, path in paths.items():
        log.debug("%s: %s", name, path)


@main.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def methods_command(as_json):
    """List the registered methods and baselines."""
    from graphimpute import methods

    entries = methods.available()
    if as_json:
        click.echo(json.dumps({name: {"kind": m.kind, "summary": m.summary, "citation": m.citation,
                                      "trains": m.trains, "defaults": dict(m.defaults),
                                      "graphs": [g.key for g in m.graphs]}
                               for name, m in entries.items()}, indent=2, default=str))
        return
    width = max(map(len, entries))
    for name, m in entries.items():
        click.echo(f"{name:<{width}}  {m.kind:<8}  {m.summary}  [{m.citation}]")


if __name__ == "__main__":
    main()
