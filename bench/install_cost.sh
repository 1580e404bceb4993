#!/usr/bin/env bash
# What `make install nextflow` costs from a clean clone: wall time, the size of .venv, of its nvidia-* CUDA
# wheels and of .nextflow-dist. Clones HEAD of this repository into CLONE (default /tmp/install_cost;
# removed first), installs there, and writes bench/results/install_cost.md in this checkout.
#
#     bash bench/install_cost.sh [CLONE]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
clone=${1:-/tmp/install_cost}
if [ -e "$clone" ] && [ ! -f "$clone/.install_cost" ]; then
    echo "$clone exists and is not an earlier clone of this script's: give a new folder" >&2; exit 2
fi
rm -rf "$clone" && git clone -q "$repo" "$clone" && touch "$clone/.install_cost" && cd "$clone"
t0=$SECONDS
make install > install.log 2>&1 || { tail -20 install.log; exit 1; }
t_install=$((SECONDS - t0)); t0=$SECONDS
make nextflow > nextflow.log 2>&1 || { tail -20 nextflow.log; exit 1; }
t_nextflow=$((SECONDS - t0))
venv=$(du -sh .venv | cut -f1)
nvidia=$( (du -shc .venv/lib/python3*/site-packages/nvidia* 2>/dev/null || echo "0 none") | tail -1 | cut -f1)
dist=$(du -sh .nextflow-dist | cut -f1)
cat > "$repo/bench/results/install_cost.md" <<MD
# Install cost from a clean clone (\`bash bench/install_cost.sh\`)

$(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) CPUs, commit $(git rev-parse --short HEAD), pip's cache already holding the wheels (a first install also downloads them: several GB).

| step | wall time | size |
|---|---|---|
| \`make install\` (.venv: torch, requirements.txt, this package, the Groovy parser) | ${t_install} s | .venv ${venv}, of which nvidia-* wheels ${nvidia} |
| \`make nextflow\` (the pinned engine and the oldest admitted one, through Maven) | ${t_nextflow} s | .nextflow-dist ${dist} |
MD
cat "$repo/bench/results/install_cost.md"
