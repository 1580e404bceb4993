"""AnnData keys shared by every step (one place, so no step spells them differently)."""

UNS = "graphimpute"  # adata.uns[UNS] holds each step's provenance: qc, normalise, graph, impute
IMPUTED = "imputed"  # adata.layers[IMPUTED]: expected counts on the input's count scale
LOGNORM = "lognorm"  # adata.layers[LOGNORM]: log1p(counts / size_factor)
SIZE_FACTOR = "size_factor"  # adata.obs[SIZE_FACTOR]: library / median library (QC'd genes)
HVG = "highly_variable"  # adata.var[HVG]: scanpy's name
PCA = "X_pca"  # adata.obsm[PCA]
