#!/bin/bash
# graphMCV's ablations (issue #16, item 5) with the honest benchmark: each variant is a registered
# parameter setting of the same method, run by bench/accuracy.py on the masks of an earlier run
# (OUTDIR's qc/normalise/mask/graph folders are linked, so every variant sees the same seeds), then
# collected with the variant's name in the method column and summarised by bench/graphmcv_summary.py.
#   bench/graphmcv_ablations.sh OUTDIR DATASETS [RESULTS]
# RESULTS (default bench/results/graphmcv_ablations.tsv) gets the rows of DATASETS; rows of other
# datasets already there are kept.
set -euo pipefail
base=$1; datasets=$2; out=${3:-bench/results/graphmcv_ablations.tsv}
py="${PYTHON:-python}"
declare -A variants=(
  [graphmcv_nograph]="graphmcv.graph=false"
  [graphmcv_nosplit]="graphmcv.molecular_split=false"
  [graphmcv_knnonly]="graphmcv.architecture=knn_average"
  [graphmcv_nocalib]="graphmcv.calibrate=false"
)
: > "$out.tmp"
for tag in graphmcv_nograph graphmcv_nosplit graphmcv_knnonly graphmcv_nocalib; do
  dir="$base.$tag"
  mkdir -p "$dir/mcv"
  for step in qc normalise mask graph; do
    [ -e "$dir/mcv/$step" ] || ln -s "$(realpath "$base/mcv/$step")" "$dir/mcv/$step"
  done
  "$py" bench/accuracy.py --datasets "$datasets" --methods graphmcv --schemes mcv --mask-seeds 3 \
      --outdir "$dir" --results "$dir/results.tsv" --no-umap --no-report --param "${variants[$tag]}"
  "$py" - "$dir/results.tsv" "$tag" "$out.tmp" <<'PY'
import sys, pandas as pd
t = pd.read_csv(sys.argv[1], sep="\t").assign(method=sys.argv[2])
t.to_csv(sys.argv[3], sep="\t", index=False, mode="a", header=not open(sys.argv[3]).read())
PY
done
"$py" - "$out" "$datasets" <<'PY'
import sys, os, pandas as pd
out, datasets = sys.argv[1], sys.argv[2].split(",")
new = pd.read_csv(out + ".tmp", sep="\t")
if os.path.exists(out):
    old = pd.read_csv(out, sep="\t")
    new = pd.concat([old[~old["dataset"].isin(datasets)], new], ignore_index=True)
new.to_csv(out, sep="\t", index=False, float_format="%.6g")
os.remove(out + ".tmp")
PY
