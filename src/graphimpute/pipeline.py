"""The steps as file-to-file functions, and ``run``: all of them in one process.

Each ``*_step`` reads its input h5ad, calls the library, and writes its output atomically; the CLI
subcommands and the Nextflow processes call exactly these. ``run`` chains them into an output folder
laid out as the pipeline publishes it, skipping steps whose output exists with the same parameters.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import anndata

from graphimpute import _keys, graphs, io, methods, normalise, qc, runner
from graphimpute.errors import GraphImputeError, InputError, OutputError
from graphimpute.methods import RunContext
from graphimpute.runner import build_graph, extra_layer_key, extra_layers, h5ad_safe, impute_adata, store_layer

log = logging.getLogger(__name__)

AUTO = "auto"  # --methods auto: pick the method by molecular cross-validation on the input (auto.py)
_READ_DEFAULTS = dict(fmt="auto", transpose=False, allow_non_integer=False, layer=None)  # qc_step's, as it records them


# ---- one function per step: input file(s) -> output file ----------------------------------------------
# Each step records its inputs and options in uns['graphimpute']['steps'][step] (see ``_record``), which
# is what ``run`` compares to decide whether a finished output can be kept.

def qc_step(input_path, output, *, fmt="auto", transpose=False, allow_non_integer=False, label_key=None,
            layer=None, **qc_params) -> Path:
    """Read any supported format, validate, QC, write h5ad."""
    io.check_output(input_path, output, suffix=".h5ad")
    adata = io.read(input_path, fmt=fmt, transpose=transpose, allow_non_integer=allow_non_integer,
                    label_key=label_key, layer=layer)
    out = qc.run_qc(adata, source=str(input_path), **qc_params)
    _store_record(out, "qc", [input_path], dict(fmt=fmt, transpose=transpose, allow_non_integer=allow_non_integer,
                                                label_key=label_key, layer=layer, **qc_params))
    return io.write_h5ad(out, output)


def normalise_step(input_path, output, *, n_top_genes: int | None = 2000) -> Path:
    io.check_output(input_path, output, suffix=".h5ad")
    out = normalise.normalise(_read(input_path), n_top_genes=n_top_genes)
    _store_record(out, "normalise", [input_path], dict(n_top_genes=n_top_genes))
    return io.write_h5ad(out, output)


def mask_step(input_path, output, truth_output, *, scheme: str = "uniform", fraction: float = 0.1,
              seed: int = 0) -> tuple[Path, Path]:
    """Hide counts; the truth goes to its own file, which only evaluation reads."""
    from graphimpute import mask

    io.check_output(input_path, output, suffix=".h5ad")
    io.check_output(input_path, truth_output, suffix=".h5ad")
    if Path(output).resolve() == Path(truth_output).resolve():
        raise OutputError(truth_output, "--truth is the same file as -o: the hidden counts would overwrite the "
                                        "masked ones; give two names")
    masked, truth = mask.mask(_read(input_path), scheme=scheme, fraction=fraction, seed=seed)
    _store_record(masked, "mask", [input_path], dict(scheme=scheme, fraction=fraction, seed=seed))
    return io.write_h5ad(truth, truth_output), io.write_h5ad(masked, output)


def graph_step(input_path, output, *, method_names=("none",), n_pcs: int = 50, n_neighbors: int = 15,
               seed: int = 0) -> Path:
    """PCA, the general kNN graph, and every graph the given methods declare."""
    io.check_output(input_path, output, suffix=".h5ad")
    _require_normalised(input_path, "graph")
    if n_pcs < 1 or n_neighbors < 1:
        raise GraphImputeError(f"--n-pcs and --n-neighbors must be at least 1 (got {n_pcs} and {n_neighbors})")
    adata = _read(input_path)
    graphs.pca(adata, n_comps=n_pcs, seed=seed)
    graphs.knn_graph(adata, n_neighbors=n_neighbors, n_pcs=n_pcs, key_added="knn", seed=seed)
    for spec in _graph_specs(method_names):
        build_graph(adata, spec, seed=seed)
    _store_record(adata, "graph", [input_path], dict(method_names=list(method_names), n_pcs=n_pcs,
                                                     n_neighbors=n_neighbors, seed=seed))
    return io.write_h5ad(adata, output)


def impute_step(input_path, output, *, method: str, params: Mapping[str, Any] | None = None,
                ctx: RunContext | None = None, auto: Mapping[str, Any] | None = None) -> Path:
    """Run one method and write what it made: ``layers['imputed']``, its provenance and the graphs and
    results the step added (``impute_output``), not another copy of the input's matrices.

    ``method='auto'`` first picks the method by molecular cross-validation on the input (auto.select;
    ``auto``: its settings, ``params``: per-method parameters keyed by method name), then imputes with
    the winner; the provenance records the choice under ``selection``."""
    io.check_output(input_path, output, suffix=".h5ad")
    if method != AUTO:  # a bad method, parameter or missing package stops before the input is read
        entry = methods.get(method)
        resolved = methods.resolve_params(entry, params)
        _require_packages(entry)
    _require_normalised(input_path, "impute")
    ctx = ctx or RunContext()
    if ctx.resume and ctx.workdir is None:
        raise GraphImputeError("--resume needs --workdir: the folder that holds the checkpoints to resume from")
    adata = _read(input_path)
    given = _stored_keys(adata)
    selection = None
    if method == AUTO:
        from graphimpute import auto as auto_select

        per_method = dict(params or {})
        selection = auto_select.select(adata, method_params=per_method, ctx=ctx, **dict(auto or {}))
        method, params = selection.winner, per_method.get(selection.winner)
        entry = methods.get(method)
        resolved = methods.resolve_params(entry, params)
    imputed, provenance = impute_adata(adata, entry, resolved, ctx)
    if selection is not None:
        provenance["selection"] = selection.record()
    adata = impute_output(adata, imputed, provenance, given)
    _store_record(adata, "impute", [input_path], dict(method=AUTO if selection else method,
                                                      params=dict(params or {}) if selection else resolved,
                                                      seed=ctx.seed, **({"auto": dict(auto or {})} if selection else {})))
    log.info("impute: %s done in %.1f s, peak memory %.0f MB", method, provenance["wall_time_s"],
             provenance["peak_memory_mb"])
    return io.write_h5ad(adata, output)


def impute_output(adata, imputed, provenance: Mapping[str, Any], given: dict[str, set]) -> anndata.AnnData:
    """The IMPUTE step's file: the cells and genes of ``adata`` (``obs``, ``var``), ``layers['imputed']``,
    ``uns`` (the earlier steps' records, ``uns['graphimpute']['impute']`` = ``provenance``) and what the
    step itself added to ``adata`` (``obsm``/``obsp``/``varp``/``varm`` keys not in ``given``: the graphs
    it had to build, the method's own results such as GraphSCI's learned graph; the method's extra
    layers ``layers['imputed_<suffix>']``, e.g. graphMCV's interval). No ``X``: the counts
    the method read stay in the step's input (the GRAPH file), which ``graphimpute collect`` joins back."""
    out = anndata.AnnData(obs=adata.obs.copy(), var=adata.var.copy())
    out.layers[_keys.IMPUTED] = imputed
    for suffix, value in extra_layers(adata, given["layers"]).items():  # graphMCV's interval
        out.layers[extra_layer_key(_keys.IMPUTED, suffix)] = value
    for store in ("obsm", "obsp", "varp", "varm"):
        for key, value in getattr(adata, store).items():
            if key not in given[store]:
                getattr(out, store)[key] = value
    for key, value in adata.uns.items():  # scanpy's records of matrices left behind go with them
        describes = value.get("connectivities_key") if isinstance(value, Mapping) else None
        if (key == "pca" and "X_pca" not in out.obsm) or (describes is not None and describes not in out.obsp):
            continue
        out.uns[key] = value
    out.uns[_keys.UNS] = {**dict(adata.uns.get(_keys.UNS, {})), "impute": h5ad_safe(provenance)}
    return out


def collect_step(base_path, imputed_paths, output, *, key_template: str = "imputed_{method}") -> Path:
    """One AnnData with several methods' results: ``base_path`` (the file the methods imputed, e.g.
    ``graph/<sample>.h5ad``, with the counts in X) plus, for each IMPUTE output, its imputed layer as
    ``layers['imputed_<method>']`` (``store_layer``; its extra layers as ``imputed_<method>_<suffix>``) and the graphs and results it added (keys ``base``
    lacks). The outputs must have the base's cells and genes in its order, and in benchmark mode come
    from the same mask seed."""
    for path in imputed_paths:
        io.check_output(path, output, suffix=".h5ad")
    io.check_output(base_path, output, suffix=".h5ad")
    base = _read(base_path)
    base_seed = base.uns.get(_keys.UNS, {}).get("mask", {}).get("seed")
    for path in imputed_paths:
        out = anndata.read_h5ad(path)
        provenance = dict(out.uns.get(_keys.UNS, {}).get("impute", {}))
        if _keys.IMPUTED not in out.layers or "method" not in provenance:
            raise GraphImputeError(f"{path}: no layers['{_keys.IMPUTED}'] with its provenance: not an IMPUTE output")
        if not (out.obs_names.equals(base.obs_names) and out.var_names.equals(base.var_names)):
            raise GraphImputeError(f"{path}: its cells or genes differ from {base_path}'s; give the file it was "
                                   "imputed from as the base")
        seed = out.uns.get(_keys.UNS, {}).get("mask", {}).get("seed")
        if seed != base_seed:
            raise GraphImputeError(f"{path}: imputed from mask seed {seed}, but {base_path} is from mask seed "
                                   f"{base_seed}")
        key = key_template.format(method=provenance["method"])
        if key in base.layers:
            raise GraphImputeError(f"{path}: a second output of method {provenance['method']!r} ({key!r} is taken)")
        store_layer(base, key, out.layers[_keys.IMPUTED], provenance)
        for suffix, value in extra_layers(out, {_keys.IMPUTED}).items():
            base.layers[extra_layer_key(key, suffix)] = value
        for store in ("obsm", "obsp", "varp", "varm"):
            for name, value in getattr(out, store).items():
                getattr(base, store).setdefault(name, value)
        log.info("collect: %s -> layers[%r]", path, key)
    _store_record(base, "collect", [base_path, *imputed_paths], dict(key_template=key_template))
    return io.write_h5ad(base, output)


def _stored_keys(adata) -> dict[str, set]:
    return {store: set(getattr(adata, store).keys()) for store in ("obsm", "obsp", "varp", "varm", "layers")}


def evaluate_step(imputed_paths, outdir, *, truth_path=None, label_key: str | None = None,
                  sample: str | None = None, settings=None) -> Path:
    """Score every method's output of one sample (``truth_path``: one truth file, or one per mask
    seed); writes ``outdir/<sample>.*`` (see evaluate.Evaluation.write) and returns the summary.json,
    which also holds this step's record and the verdict."""
    from graphimpute import evaluate

    imputed_paths = [Path(p) for p in imputed_paths]
    if sample is not None:
        check_sample_name(sample, given=True)
    _check_one_sample(imputed_paths)
    sample = sample or sample_name(imputed_paths[0]).split(".")[0]
    result = evaluate.evaluate(imputed_paths, truth=truth_path, label_key=label_key, sample=sample,
                               settings=settings)
    for line in result.verdict()["lines"]:
        log.info("verdict: %s", line)
    record = _record(imputed_paths, _evaluate_options(truth_path, label_key, sample, settings))
    written = result.write(outdir, steps={"evaluate": json.dumps(record)})
    return next(p for p in written if p.name.endswith(".summary.json"))


def selection_step(impute_path, outdir, *, sample: str) -> Path:
    """The evidence behind ``--methods auto``'s choice, from the IMPUTE output's provenance, written as
    EVALUATE's tables (``outdir/<sample>.*``, so that REPORT shows the ranking); returns the summary.json."""
    import h5py
    import pandas as pd
    from anndata.io import read_elem

    from graphimpute.evaluate import Evaluation

    with h5py.File(impute_path, "r") as f:
        node = f.get(f"uns/{_keys.UNS}/impute/selection")
        if node is None:
            raise GraphImputeError(f"{impute_path}: no uns['{_keys.UNS}']['impute']['selection']: not made by auto")
        record = read_elem(node)
    metrics = pd.DataFrame({k: list(v) for k, v in record["metrics"].items()}).assign(sample=sample)
    runs = pd.DataFrame({k: list(v) for k, v in record["runs"].items()}).assign(sample=sample)
    settings = {"auto": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in record["settings"].items()},
                "winner": str(record["winner"]), "skipped": {k: str(v) for k, v in dict(record["skipped"]).items()},
                "mask": {"scheme": "mcv", "fraction": float(record["settings"]["fraction"])}}
    result = Evaluation.from_scores(sample, metrics, runs, settings)
    record_json = _record([impute_path], dict(sample=sample))
    written = result.write(outdir, steps={"selection": json.dumps(record_json)})
    return next(p for p in written if p.name.endswith(".summary.json"))


def report_step(inputs, outdir, *, title: str = "graphimpute benchmark", render: bool | None = None) -> Path:
    """MultiQC custom content from EVALUATE's files, rendered into ``outdir/multiqc_report.html`` when
    MultiQC is installed (``render=None``: only if it is; ``True``: an error if it is not)."""
    from graphimpute import report

    if render is None:
        render = report.multiqc_available()
        if not render:
            log.warning("report: MultiQC is not installed; custom content written to %s, no HTML report",
                        Path(outdir) / "custom_content")
    written = report.report(inputs, outdir, title=title, render_html=render)
    return written[-1]


# ---- the whole chain in one process -------------------------------------------------------------------

@dataclass
class RunOptions:
    """Everything ``run`` passes on to the steps (the CLI fills it from its options)."""

    methods: list[str] = field(default_factory=lambda: ["none"])
    sample: str | None = None
    benchmark: bool = False
    label_key: str | None = None
    force: bool = False
    read: dict[str, Any] = field(default_factory=dict)  # fmt, transpose, allow_non_integer, layer
    qc: dict[str, Any] = field(default_factory=dict)
    n_top_genes: int | None = 2000
    mask_scheme: str = "mcv"
    mask_fraction: float = 0.1
    mask_seeds: int = 3  # benchmark: masks drawn with seeds seed, seed + 1, ...; scores are mean ± sd
    evaluate: dict[str, Any] = field(default_factory=dict)  # benchmark: evaluate.Settings overrides
    n_pcs: int = 50
    n_neighbors: int = 15
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per method name
    auto: dict[str, Any] = field(default_factory=dict)  # --methods auto: auto.select's settings
    ctx: RunContext = field(default_factory=RunContext)


def run(input_path, outdir, options: RunOptions | None = None) -> dict[str, Path]:
    """QC → normalise → [mask] → graph → impute (each method) into ``outdir``; returns the outputs.

    Benchmark mode masks the normalised sample once per mask seed (``<sample>.seed<k>`` in mask/,
    graph/ and impute/), imputes each masked copy with every method, and evaluates all of them
    together (evaluate/<sample>.*: mean ± sd over seeds, ties called) before the report.
    A step whose output exists and was made from the same inputs with the same options is skipped
    (``force`` redoes everything); once a step runs, every later step runs too."""
    o = options or RunOptions()
    outdir = Path(outdir)
    sample = check_sample_name(o.sample, given=True) if o.sample else check_sample_name(sample_name(input_path),
                                                                                        given=False)
    preflight(input_path, outdir, o)
    seed = o.ctx.seed
    p = {step: outdir / step / f"{sample}.h5ad" for step in ("qc", "normalise", "graph")}
    # (name, function, input paths, output paths, keyword arguments)
    plan = [
        ("qc", qc_step, [input_path], [p["qc"]], dict(label_key=o.label_key, **{**_READ_DEFAULTS, **o.read}, **o.qc)),
        ("normalise", normalise_step, [p["qc"]], [p["normalise"]], dict(n_top_genes=o.n_top_genes)),
    ]
    graph_kwargs = dict(method_names=[m for m in o.methods if m != AUTO] or ["none"], n_pcs=o.n_pcs,
                        n_neighbors=o.n_neighbors, seed=seed)
    if AUTO in o.methods:
        if o.benchmark or len(o.methods) > 1:
            raise GraphImputeError("--methods auto runs its own molecular cross-validation and imputes with the "
                                   "winner: use it alone and without --benchmark")
        plan.append(("graph", graph_step, [p["normalise"]], [p["graph"]], graph_kwargs))
        p["impute.auto"] = outdir / "impute" / f"{sample}.auto.h5ad"
        p["evaluate"] = outdir / "evaluate" / f"{sample}.summary.json"
        p["report"] = outdir / "multiqc" / "multiqc_report.html"
        plan.append(("impute auto", impute_step, [p["graph"]], [p["impute.auto"]],
                     dict(method=AUTO, params=o.method_params, ctx=o.ctx, auto=o.auto)))
        plan.append(("selection", selection_step, [p["impute.auto"]], [outdir / "evaluate"], dict(sample=sample)))
        plan.append(("report", report_step, [[outdir / "evaluate"]], [outdir / "multiqc"],
                     dict(title="graphimpute: method chosen by --methods auto")))
        return _execute(plan, p, o.force)
    if not o.benchmark:
        plan.append(("graph", graph_step, [p["normalise"]], [p["graph"]], graph_kwargs))
        for method in o.methods:
            p[f"impute.{method}"] = out = outdir / "impute" / f"{sample}.{method}.h5ad"
            plan.append((f"impute {method}", impute_step, [p["graph"]], [out],
                         dict(method=method, params=o.method_params.get(method), ctx=o.ctx)))
        return _execute(plan, p, o.force)

    from graphimpute.evaluate import Settings

    del p["graph"]
    truths, imputed = [], []
    for mask_seed in runner.mask_seeds(seed, o.mask_seeds):
        tag = f"{sample}.seed{mask_seed}"  # one masked copy of the sample per mask seed
        masked, truth, graph = (outdir / "mask" / f"{tag}.h5ad", outdir / "mask" / f"{tag}.truth.h5ad",
                                outdir / "graph" / f"{tag}.h5ad")
        p.update({f"mask.seed{mask_seed}": masked, f"truth.seed{mask_seed}": truth, f"graph.seed{mask_seed}": graph})
        plan.append((f"mask seed {mask_seed}", mask_step, [p["normalise"]], [masked, truth],
                     dict(scheme=o.mask_scheme, fraction=o.mask_fraction, seed=mask_seed)))
        plan.append((f"graph seed {mask_seed}", graph_step, [masked], [graph], graph_kwargs))
        # each replicate trains with its mask seed: the seed spread holds the methods' randomness too
        replicate = dataclasses.replace(o.ctx, seed=mask_seed)
        for method in o.methods:
            p[f"impute.{method}.seed{mask_seed}"] = out = outdir / "impute" / f"{tag}.{method}.h5ad"
            plan.append((f"impute {method} seed {mask_seed}", impute_step, [graph], [out],
                         dict(method=method, params=o.method_params.get(method), ctx=replicate)))
            imputed.append(out)
        truths.append(truth)
    p["evaluate"] = outdir / "evaluate" / f"{sample}.summary.json"
    p["report"] = outdir / "multiqc" / "multiqc_report.html"
    plan.append(("evaluate", evaluate_step, [imputed], [outdir / "evaluate"],
                 dict(truth_path=truths, label_key=o.label_key, sample=sample,
                      settings=Settings(**{"seed": seed, **o.evaluate}))))
    plan.append(("report", report_step, [[outdir / "evaluate"]], [outdir / "multiqc"], {}))
    return _execute(plan, p, o.force)


def preflight(input_path, outdir: Path, o: RunOptions) -> None:
    """What can be known before any work: the input exists, every method and its optional packages
    are installed, ``outdir`` can be written and its file system has room for an estimate of the
    outputs. A run that fails one of these stops at once instead of after hours of work."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise InputError(input_path, "no such file or directory")
    if o.ctx.resume and o.ctx.workdir is None:
        raise GraphImputeError("--resume needs --workdir: the folder that holds the checkpoints to resume from")
    for name in o.methods:
        if name == AUTO:
            continue
        _require_packages(methods.get(name))
    if o.benchmark:
        runner.mask_seeds(o.ctx.seed, o.mask_seeds)
    if AUTO in o.methods:
        from graphimpute.auto import MASK_SEEDS

        runner.mask_seeds(o.ctx.seed, o.auto.get("mask_seeds") or MASK_SEEDS, option="--auto-seeds")
    io.check_writable(outdir)
    for sub in ("qc", "normalise", "mask", "graph", "impute", "evaluate", "multiqc", "pipeline_info"):
        if (outdir / sub).exists():
            io.check_writable(outdir / sub)
    needed = estimate_output_bytes(input_path, o)
    log.debug("run: outputs estimated at %d bytes", needed)
    io.check_free_space(outdir, needed)


def _require_packages(entry: methods.Method) -> None:
    """A method whose optional packages are missing stops before any work, not at its own step."""
    if entry.missing():
        raise GraphImputeError(f"method {entry.name!r} needs {', '.join(map(repr, entry.missing()))}, which is not "
                               f"installed; {entry.install_hint or 'install it'} (or leave the method out)")


def estimate_output_bytes(input_path, o: RunOptions) -> int:
    """A rough size of what ``run`` writes: every h5ad step output about the input's size (gzip'd
    counts), every imputation a dense float32 cells x genes layer (exact when the input's shape can
    be read from its metadata, else the input's size again)."""
    path = Path(input_path)
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if path.is_dir() else path.stat().st_size
    seeds = o.mask_seeds if o.benchmark else 1
    n_methods = 1 if AUTO in o.methods else len(o.methods)
    steps = 2 + seeds * (3 if o.benchmark else 1)  # qc, normalise, graph (benchmark: mask, truth, graph per seed)
    shape = io.peek_shape(path, o.read.get("fmt", "auto"))
    if shape is None:
        per_impute = size
    else:
        genes = shape[1] if o.n_top_genes is None else min(o.n_top_genes, shape[1])
        per_impute = shape[0] * genes * 4
    return int(steps * size + seeds * n_methods * per_impute)


def _execute(plan, p: dict[str, Path], force: bool) -> dict[str, Path]:
    """Run the plan's steps in order, skipping those whose output records the same inputs and options;
    once a step runs, every later step runs too."""
    rerun = force
    for number, (name, step, inputs, outputs, kwargs) in enumerate(plan, 1):
        label = f"[{number}/{len(plan)}] {name}"
        record_step = name.split()[0]
        done = p.get(record_step, outputs[0]) if record_step in ("evaluate", "report") else outputs[0]
        if record_step == "selection":
            done = p["evaluate"]
        if not rerun and all(out.exists() for out in outputs) and done.exists():
            expected = _record(_flat(inputs), _recorded_kwargs(record_step, kwargs))
            if _content(_stored(done, record_step)) == _content(expected):
                log.info("%s: %s is up to date, skipped (use --force to redo)", label, outputs[0])
                continue
            log.info("%s: %s was made from other inputs or options; redoing it", label, outputs[0])
        log.info("%s -> %s", label, outputs[0])
        step(*inputs, *outputs, **kwargs)
        rerun = True
    return p


def _recorded_kwargs(step: str, kwargs: dict) -> dict:
    """The options a step records, from the keyword arguments ``run`` passes it."""
    if step == "evaluate":
        return _evaluate_options(kwargs["truth_path"], kwargs["label_key"], kwargs["sample"], kwargs["settings"])
    if step == "selection":
        return dict(sample=kwargs["sample"])
    if step != "impute":
        return kwargs
    if kwargs["method"] == AUTO:
        return dict(method=AUTO, params=dict(kwargs["params"] or {}), seed=kwargs["ctx"].seed,
                    auto=dict(kwargs.get("auto") or {}))
    entry = methods.get(kwargs["method"])
    return dict(method=kwargs["method"], params=methods.resolve_params(entry, kwargs["params"]),
                seed=kwargs["ctx"].seed)


def _evaluate_options(truth_path, label_key, sample, settings) -> dict:
    from dataclasses import asdict

    truths = [truth_path] if isinstance(truth_path, (str, Path)) else list(truth_path or [])
    truth = [{k: v for k, v in fingerprint(t).items() if k != "path"} for t in truths]
    return dict(truth=truth or None, label_key=label_key, sample=sample,
                settings=asdict(settings) if settings is not None else None)


def _flat(inputs) -> list:
    """Step inputs, with evaluate's list of method outputs spread out."""
    return [q for i in inputs for q in (i if isinstance(i, (list, tuple)) else [i])]


# Cell Ranger's own folder and file names: the sample is named by the folder above them
# (sample1/outs/filtered_feature_bc_matrix, sample1/outs/filtered_gene_bc_matrices/GRCh38,
# sample1/outs/filtered_feature_bc_matrix.h5, multi: per_sample_outs/sample1/count/sample_filtered_...)
_CELLRANGER_MATRICES = {"filtered_feature_bc_matrix", "raw_feature_bc_matrix", "filtered_gene_bc_matrices",
                        "raw_gene_bc_matrices", "sample_filtered_feature_bc_matrix", "sample_raw_feature_bc_matrix"}
_CELLRANGER_NAMES = _CELLRANGER_MATRICES | {"outs", "count"}


def sample_name(path) -> str:
    """The sample name an input gives: its file name without the format's suffixes, or, for Cell
    Ranger's output folders and files, the name of the folder Cell Ranger was run for."""
    path = Path(path).absolute()
    parts = [_strip_suffixes(path.name)] + [p.name for p in path.parents]
    genome_folder = len(parts) > 1 and parts[1] in _CELLRANGER_MATRICES  # v2: <matrices>/GRCh38
    if parts[0] in _CELLRANGER_MATRICES or genome_folder:
        rest = [p for p in parts[1 if genome_folder else 0:] if p]
        while rest and rest[0] in _CELLRANGER_NAMES:
            rest.pop(0)
        if rest:
            return rest[0]
    return parts[0] or "sample"


def _strip_suffixes(name: str) -> str:
    for suffix in (".gz", ".bz2", ".h5ad", ".h5", ".csv", ".tsv", ".txt"):
        name = name.removesuffix(suffix)
    return name


def check_sample_name(name: str, *, given: bool) -> str:
    """A sample name is part of every output file name: letters, digits, '.', '_' and '-', at most
    MAX_SAMPLE_NAME characters (so '../x' cannot write outside the results folder)."""
    from graphimpute.samplesheet import MAX_SAMPLE_NAME, SAMPLE_NAME

    where = "--sample" if given else "the sample name taken from the input's name (set one with --sample)"
    if not SAMPLE_NAME.match(name):
        raise GraphImputeError(f"{where} {name!r}: may only hold letters, digits, '.', '_' and '-', and must "
                               "start with a letter or digit (it names the output files)")
    if len(name) > MAX_SAMPLE_NAME:
        raise GraphImputeError(f"{where} {name[:20]}...: {len(name)} characters; at most {MAX_SAMPLE_NAME} "
                               "(it names the output files)")
    return name


def _graph_specs(method_names) -> list[methods.GraphSpec]:
    specs: dict[str, methods.GraphSpec] = {}
    for name in method_names:
        for spec in methods.get(name).graphs:
            specs.setdefault(spec.key, spec)
    return list(specs.values())


def _read(path) -> anndata.AnnData:
    """A step output, validated again; non-integer counts pass when the QC step that made them was
    told --allow-non-integer (the choice travels with the data, so every later step honours it)."""
    qc_record = _stored(Path(path), "qc") or {}
    allowed = bool(qc_record.get("options", {}).get("allow_non_integer", False))
    return io.read(path, fmt="h5ad", allow_non_integer=allowed)


# what a step needs in its input, and the step that makes it
_NEEDS = {"graph": {"layers/lognorm": "normalise", "obs/size_factor": "normalise"},
          "impute": {"layers/lognorm": "normalise", "obs/size_factor": "normalise"}}


def _require_normalised(path, step: str) -> None:
    """GRAPH and IMPUTE work on NORMALISE's output. Given a file without it (a user's own h5ad, or
    QC's output), they stop and name the steps to run rather than run them with defaults the user
    never saw (QC filters and a subset to 2,000 genes change which cells and genes come out)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or directory")
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in _NEEDS[step] if key not in f]
    except OSError:
        return  # not HDF5: the read that follows says what is wrong with it
    if missing:
        what = ", ".join(f"{k.split('/')[0]}[{k.split('/')[1]!r}]" for k in missing)
        raise InputError(path, f"has no {what}: {step} works on the normalise step's output; run `graphimpute qc` "
                               f"and `graphimpute normalise` first (or `graphimpute run` for the whole chain)")


def _check_one_sample(paths: list[Path]) -> None:
    """EVALUATE scores the outputs of one sample: every file must hold the same cells, and where the
    files carry QC records, come from the same input and QC options."""
    import h5py
    from anndata.io import read_elem

    first = None
    for path in paths:
        if not Path(path).exists():
            raise InputError(path, "no such file or directory")
        try:
            with h5py.File(path, "r") as f:
                obs = f["obs"]
                index = read_elem(obs[obs.attrs.get("_index", "_index")])
        except (OSError, KeyError) as err:
            raise InputError(path, f"not a readable step output ({type(err).__name__}: {err})") from None
        qc_record = _stored(Path(path), "qc")
        identity = (list(map(str, index)), _content(qc_record) if qc_record else None)
        if first is None:
            first = (path, identity)
            continue
        other, (cells, record) = first
        if identity[0] != cells or (record is not None and identity[1] is not None and identity[1] != record):
            raise InputError(path, f"is not an output of the same sample as {other} (other cells or another input); "
                                   "evaluate one sample at a time")


def fingerprint(path) -> dict:
    """What a step's record says about one input: its size and a BLAKE2b hash of its content (a
    10x folder: the names and content of the files in it), so that a changed input is never taken
    for the one an output was made from, whatever its path and modification time."""
    import hashlib

    path = Path(path)
    digest = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    size = 0
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    return {"path": str(path.resolve()), "bytes": size, "blake2b": digest.hexdigest()}


def _record(inputs, options: dict) -> dict:
    return _normalised({"inputs": [fingerprint(i) for i in inputs], "options": options})


def _content(record: dict | None) -> dict | None:
    """A record without the inputs' paths: reuse depends on what the inputs hold, not where they are."""
    if not record or not isinstance(record.get("inputs"), list):
        return record
    inputs = [{k: v for k, v in i.items() if k != "path"} if isinstance(i, dict) else i for i in record["inputs"]]
    return {**record, "inputs": inputs}


def _store_record(adata, step: str, inputs, options: dict) -> None:
    adata.uns.setdefault(_keys.UNS, {}).setdefault("steps", {})[step] = json.dumps(_record(inputs, options))


def _stored(path: Path, step: str) -> dict | None:
    """The record a finished step left in its output (read with h5py: no need to load the matrix;
    EVALUATE keeps it in its summary.json; REPORT keeps none, so it always runs)."""
    import h5py

    if path.suffix == ".json":
        try:
            return json.loads(json.loads(path.read_text())["steps"][step])
        except (OSError, KeyError, ValueError):
            return None
    try:
        with h5py.File(path, "r") as f:
            node = f.get(f"uns/{_keys.UNS}/steps/{step}")
            return json.loads(node[()].decode()) if node is not None else None
    except (OSError, KeyError, ValueError):
        return None


def _normalised(params: dict) -> dict:
    return json.loads(json.dumps(params, default=str, sort_keys=True))
