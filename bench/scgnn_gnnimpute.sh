#!/bin/bash
# Every number in bench/results/scgnn_gnnimpute.md, in order. Run from anywhere; scratch files go to
# bench/_scratch (git-ignored). OMP_WAIT_POLICY=PASSIVE: on a machine with more busy processes than
# cores, OpenMP's default spin-waiting made torch 10-100x slower (see the results page).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src
PY=${PY:-/work/main/.venv/bin/python}
DATA=${DATA:-/work/shared/data}
S=bench/_scratch
R=bench/results/scgnn_gnnimpute_recovery.tsv
CBMC_QC="--min-genes 0 --n-mads none"   # scDCC's file is already filtered to 2,000 genes: keep all 8,617 cells

# 1. hidden-entry recovery (10% of each cell's non-zeros), paper defaults, with none and the 5-NN average
$PY bench/recovery.py --data $DATA/pbmc3k_seurat.h5ad --methods none,scgnn --outdir $S/pbmc3k_scgnn --results $R
$PY bench/recovery.py --data $DATA/scdcc_cbmc_citeseq_top2000.h5ad $CBMC_QC --methods none,scgnn \
    --outdir $S/cbmc_scgnn --results $R
$PY bench/recovery.py --data $DATA/pbmc3k_seurat.h5ad --methods gnnimpute --outdir $S/pbmc3k_gnn --results $R \
    --workdir $S/pbmc3k_gnn/work --checkpoint-every 100 &   # hours on 2 cores: runs in the background

# 1b. GNNImpute's paper schedule cut at N epochs, from the running job's checkpoint (a resumed run gives
#     the uninterrupted run's weights; max_epochs=N makes it stop there, restore its best and impute)
for N in 100 200 300; do  # the same with the lr-1e-3 job: gnnlr_e150 (--param gnnimpute.lr=1e-3)
    until $PY -c "import torch,sys; sys.exit(torch.load('$S/pbmc3k_gnn/work/gnnimpute/checkpoint.pt', weights_only=False)['epoch'] < $N)" 2>/dev/null; do sleep 60; done
    mkdir -p $S/gnn_e$N/work/gnnimpute && cp $S/pbmc3k_gnn/work/gnnimpute/checkpoint.pt $S/gnn_e$N/work/gnnimpute/
    $PY bench/recovery.py --data $DATA/pbmc3k_seurat.h5ad --methods gnnimpute --param gnnimpute.max_epochs=$N \
        --outdir $S/gnn_e$N --workdir $S/gnn_e$N/work --resume --results bench/results/gnnimpute_truncated_recovery.tsv
done

# 1c. GNNImpute at the official code's learning rate (1e-3 instead of the paper's 1e-4), full schedule
$PY bench/recovery.py --data $DATA/pbmc3k_seurat.h5ad --methods gnnimpute --param gnnimpute.lr=1e-3 \
    --outdir $S/pbmc3k_gnn_lr1e-3 --workdir $S/pbmc3k_gnn_lr1e-3/work --checkpoint-every 50 \
    --results bench/results/gnnimpute_code_lr_recovery.tsv

# 2. SCGNN without its gene filter (every gene imputed): how much the filter costs in this protocol
$PY bench/recovery.py --data $DATA/pbmc3k_seurat.h5ad --methods scgnn --param scgnn.min_dispersion=0 \
    --outdir $S/pbmc3k_scgnn_allgenes --results bench/results/scgnn_allgenes_recovery.tsv

# 3. time and memory of the training runs above, and the CPU cost per epoch (load-independent)
$PY bench/training_summary.py $S/pbmc3k_scgnn/impute/pbmc3k_seurat.scgnn.h5ad \
    $S/cbmc_scgnn/impute/scdcc_cbmc_citeseq_top2000.scgnn.h5ad $S/pbmc3k_gnn/impute/pbmc3k_seurat.gnnimpute.h5ad
$PY bench/epoch_cost.py $S/pbmc3k_gnn/graph/pbmc3k_seurat.h5ad --method gnnimpute --short 2 --long 8 --profile
$PY bench/epoch_cost.py $S/cbmc_scgnn/graph/scdcc_cbmc_citeseq_top2000.h5ad --method gnnimpute --short 2 --long 8
$PY bench/epoch_cost.py $S/pbmc3k_scgnn/graph/pbmc3k_seurat.h5ad --method scgnn --short 20 --long 220
$PY bench/epoch_cost.py $S/cbmc_scgnn/graph/scdcc_cbmc_citeseq_top2000.h5ad --method scgnn --short 20 --long 220
