"""``--methods auto``: choose the method for this dataset with the benchmark's own judge.

On the user's normalised sample (or a random subsample of ``max_cells`` cells above that size), every
candidate method imputes the input half of a molecular cross-validation split (Binomial(n, 0.9)),
drawn with ``mask_seeds`` seeds; the method with the lowest mean MCV Poisson loss of the held-out
molecules wins (differences that the verdict's paired test does not find are reported as ties; the best mean still decides),
and the caller imputes the whole sample with it. Nothing here looks at labels or at any evaluation
split of a benchmark: the choice uses the input alone.

A candidate that cannot run here (an optional package missing, a memory refusal, a method that
refuses the data) is skipped with a notice, recorded in the selection.
"""

from __future__ import annotations


import logging
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import numpy as np
from anndata import AnnData

from graphimpute import _keys, mask, methods
from graphimpute.errors import GraphImputeError
from graphimpute.methods import RunContext

log = logging.getLogger(__name__)

MAX_CELLS = 2000  # above this, the choice is made on a random subsample of this many cells
MASK_SEEDS = 2  # MCV splits per candidate: the least that shows a spread


@dataclass
class Selection:
    """The choice and the evidence for it. ``evaluation``: evaluate.Evaluation of every candidate
    on the MCV splits; ``skipped``: candidate -> why it did not run."""

    winner: str
    evaluation: Any
    verdict: dict[str, Any]
    settings: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What the IMPUTE output keeps (uns['graphimpute']['impute']['selection'])."""
        metrics = self.evaluation.metrics
        runs = self.evaluation.runs
        return {
            "winner": self.winner,
            "settings": self.settings,
            "skipped": dict(self.skipped),
            "verdict": list(self.verdict["lines"]),
            "ranking": _columns(self.verdict["ranking"]),
            "metrics": {c: metrics[c].tolist() for c in ("method", "seed", "metric", "value")},
            "runs": {c: runs[c].tolist() for c in ("method", "mask_seed", "device", "wall_time_s", "peak_memory_mb")},
        }


def select(adata: AnnData, *, candidates: Iterable[str] | None = None,
           method_params: Mapping[str, Mapping[str, Any]] | None = None, ctx: RunContext | None = None,
           max_cells: int = MAX_CELLS, mask_seeds: int = MASK_SEEDS, fraction: float = 0.1) -> Selection:
    """Score each candidate by MCV on ``adata`` (raw counts in X, as the NORMALISE step leaves them)
    and return the winner; ``adata`` is not modified."""
    from graphimpute import evaluate

    ctx = ctx or RunContext()
    if mask_seeds < 1 or max_cells < 50:
        raise GraphImputeError(f"auto needs at least 1 mask seed and 50 cells, got {mask_seeds} and {max_cells}")
    names = list(candidates) if candidates is not None else list(methods.names())
    skipped = {}
    for name in names:
        missing = methods.get(name).missing()
        if missing:
            skipped[name] = f"not installed: {', '.join(missing)}"
    names = [n for n in names if n not in skipped]
    if not names:
        raise GraphImputeError("auto: no candidate method can run here")
    params = {name: methods.resolve_params(methods.get(name), (method_params or {}).get(name)) for name in names}
    sample = _subsample(adata, max_cells, ctx.seed)
    log.info("auto: choosing among %s by MCV on %d of %d cells, %d mask seed(s)", ", ".join(names),
             sample.n_obs, adata.n_obs, mask_seeds)
    quiet = RunContext(seed=ctx.seed, device=ctx.device, progress=ctx.progress)  # no checkpoints for trials
    evaluation = cross_validate(sample, names, params, quiet, scheme="mcv", fraction=fraction, mask_seeds=mask_seeds,
                                skipped=skipped, sample="auto", settings=evaluate.Settings(umap=False))
    verdict = evaluation.verdict()
    for line in verdict["lines"]:
        log.info("auto: %s", line)
    if not verdict["beat_none"]:
        log.warning("auto: no candidate beats `none` (the observed counts) beyond the seed spread: imputation "
                    "does not predict unseen molecules better than the input on this dataset")
    if "gene_mean" in params and not verdict["beat_gene_mean"]:
        log.warning("auto: no candidate beats the cell-agnostic `gene_mean` beyond the seed spread")
    settings = dict(candidates=names, max_cells=max_cells, cells_used=int(sample.n_obs), cells=int(adata.n_obs),
                    mask_seeds=mask_seeds, fraction=fraction, metric=verdict["metric"])
    log.info("auto: imputing all %d cells with %s", adata.n_obs, verdict["winner"])
    return Selection(verdict["winner"], evaluation, verdict, settings, skipped)


def cross_validate(adata: AnnData, names: Iterable[str], params: Mapping[str, Mapping[str, Any]], ctx: RunContext,
                   *, scheme: str = "mcv", fraction: float = 0.1, mask_seeds: int = MASK_SEEDS,
                   label_key: str | None = None, skipped: dict[str, str] | None = None, sample: str = "sample",
                   settings=None):
    """The benchmark in memory: mask ``adata`` (raw counts in X, normalised) once per mask seed (``ctx.seed``,
    ``ctx.seed`` + 1, ...), impute each masked copy with every method of ``names``, each replicate with its
    mask seed as the methods' seed (``params``: resolved,
    by name) and score all outputs against their seed's truth with ``evaluate.evaluate`` (``label_key``:
    clustering too). ``adata`` is not modified; nothing is written. Returns the ``evaluate.Evaluation``.

    ``skipped``: a dict that records each method that fails (an optional package, a memory refusal, a
    method that refuses the data) and leaves it out; without it, the first failure is raised."""
    from tqdm.auto import tqdm

    from graphimpute import evaluate, runner

    outputs, truths = [], []
    bar = tqdm(total=mask_seeds * len(names), desc=f"{sample}: methods x mask seeds", unit="run",
               disable=not ctx.progress, leave=False)
    for mask_seed in runner.mask_seeds(ctx.seed, mask_seeds):
        masked, truth = mask.mask(adata, scheme=scheme, fraction=fraction, seed=mask_seed)
        truths.append(truth)
        for name in names:
            if skipped is not None and name in skipped:
                continue
            log.info("%s: %s on mask seed %d", sample, name, mask_seed)
            bar.set_postfix_str(f"{name}, seed {mask_seed}")
            try:
                imputed, provenance = runner.impute_adata(masked, methods.get(name), params[name],
                                                          replace(ctx, seed=mask_seed))
            except (GraphImputeError, RuntimeError, MemoryError) as err:
                if skipped is None:
                    raise
                skipped[name] = f"{type(err).__name__}: {err}"
                log.warning("%s: %s skipped: %s", sample, name, skipped[name])
                bar.update()
                continue
            out = AnnData(X=masked.X, obs=masked.obs[[label_key] if label_key else []], var=masked.var[[]],
                          uns={_keys.UNS: {"mask": dict(masked.uns[_keys.UNS]["mask"]),
                                           "impute": runner.h5ad_safe(provenance)}})
            out.layers[_keys.IMPUTED] = imputed
            outputs.append(out)
            bar.update()
    bar.close()
    outputs = [o for o in outputs if o.uns[_keys.UNS]["impute"]["method"] not in (skipped or {})]
    if not outputs:
        raise GraphImputeError(f"{sample}: every method failed ({'; '.join(f'{k}: {v}' for k, v in (skipped or {}).items())})")
    return evaluate.evaluate(outputs, truth=truths, label_key=label_key, sample=sample,
                             settings=settings or evaluate.Settings(umap=False, seed=ctx.seed))


def _subsample(adata: AnnData, max_cells: int, seed: int) -> AnnData:
    """Raw counts and what the mask step refreshes (size factors, lognorm) of up to ``max_cells``
    random cells; the graphs are rebuilt on the masked copies."""
    keep = np.arange(adata.n_obs)
    if adata.n_obs > max_cells:
        keep = np.sort(np.random.default_rng(seed).choice(adata.n_obs, max_cells, replace=False))
    part = AnnData(X=adata.X[keep].copy(), obs=adata.obs.iloc[keep].copy(), var=adata.var.copy())
    if _keys.LOGNORM in adata.layers:
        part.layers[_keys.LOGNORM] = adata.layers[_keys.LOGNORM][keep].copy()
    return part


def _columns(records: list[dict[str, Any]]) -> dict[str, list]:
    keys = list(dict.fromkeys(k for r in records for k in r))
    return {k: [r.get(k) for r in records] for k in keys}
