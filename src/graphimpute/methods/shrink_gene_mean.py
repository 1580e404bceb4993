"""The shrinkage floor towards the cell-agnostic profile: each cell's own observed profile blended with
the ``gene_mean`` profile, x̂_i = L_i ((1 - a) p + a x_i / L_i), with one weight a for the dataset.

Why it is here: molecular cross-validation (the benchmark's MCV Poisson) scores how well an output
predicts the molecules of the same cell it has not seen. For overdispersed counts a shrinkage of the
cell's own counts towards a prior mean is close to the Bayes estimate of that cell's own rate, so a
fixed blend with no learning already scores well (0.7 own + 0.3 gene_mean reached the score of the
project's own method on simulated counts, issue 26). A method that does not beat this floor has not
shown that it imputes anything beyond shrinking each cell's counts.

The weight a is chosen on the input alone, as graphMCV chooses its own: ``validation_fraction`` of
every count's molecules is held back (Binomial thinning, the method's own random stream), the profile
p comes from the rest, and a is the value of a 21-point grid on [0, 1] that minimises the Poisson loss
of the held-back molecules (methods/_shrinkage.py). The output uses p and the profiles of all counts.

Reads ``adata.X`` (raw integer counts); writes nothing to ``adata``. Provenance: ``own_weight`` and the
loss at every grid value.
"""

from __future__ import annotations

from graphimpute.methods._base import FRACTION, ImputeResult, Method
from graphimpute.methods._baseline import gene_profile
from graphimpute.methods._shrinkage import FLOOR_DEFAULTS, shrinkage

NAME = "shrink_gene_mean"


def impute(adata, params, ctx) -> ImputeResult:
    imputed, info = shrinkage(NAME, adata, lambda counts: gene_profile(counts)[None, :], params, ctx)
    return ImputeResult(imputed=imputed, info=info)


METHOD = Method(
    name=NAME,
    impute=impute,
    summary="each cell's own profile shrunk towards gene_mean's, the weight chosen on a molecular split of the "
            "input (the shrinkage floor: what MCV rewards without imputation)",
    citation="-",
    defaults=FLOOR_DEFAULTS,
    ranges={key: FRACTION for key in FLOOR_DEFAULTS},
    kind="baseline",
)
