#!/usr/bin/env bash
# The test profile on the real engine, as docs/usage.md shows it: the run's duration and each task's
# time from Nextflow's own trace, then a -resume (every task cached) and a -stub-run of the workflow.
# Needs `make install nextflow`. Writes bench/results/nextflow_test_profile.md (and the trace beside it).
#
#     bash bench/nextflow_test_profile.sh [WORKDIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/nextflow_test_profile}
results=$repo/bench/results
rm -rf "$work" && mkdir -p "$work" && cd "$work"
export NXF_ANSI_LOG=false NXF_HOME=${NXF_HOME:-$work/.nxf_home}
nf=$repo/.venv/bin/nextflow
# seconds LABEL COMMAND...: COMMAND's wall seconds; its output in WORK/LABEL.log (the tail on stderr if it fails)
seconds() { local label=$1 t0=$SECONDS; shift; "$@" > "$work/$label.log" 2>&1 || { tail -20 "$work/$label.log" >&2; exit 1; }; echo $((SECONDS - t0)); }
run() { "$nf" run "$repo" -profile test,local --outdir out "$@"; }
full=$(seconds full run)
cp out/pipeline_info/execution_trace_*.txt "$results/nextflow_test_profile.trace.tsv"
resume=$(seconds resume run -resume)
stub=$(seconds stub "$nf" run "$repo" -profile test,local -stub-run --outdir out_stub)
python3 - "$results/nextflow_test_profile.trace.tsv" "$full" "$resume" "$stub" "$("$nf" -version 2>/dev/null | grep -o 'version [0-9.]*' | head -1)" > "$results/nextflow_test_profile.md" <<'PY'
import csv, os, re, statistics, sys, time
trace, full, resume, stub, version = sys.argv[1:]
rows = list(csv.DictReader(open(trace), delimiter="\t"))
def secs(text):  # Nextflow's durations: "2.5s", "1m 3s", "350ms"
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)\s*(ms|s|m|h)", text):
        total += float(value) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total
by = {}
for r in rows:
    by.setdefault(r["name"].split(" ")[0].split(":")[-1], []).append(secs(r["realtime"]))
print("# The test profile on the real engine (`bash bench/nextflow_test_profile.sh`)\n")
print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end, "
      f"Nextflow {version.split()[-1]}, `-profile test,local`.\n")
print(f"- full run: {len(rows)} tasks in {full} s (the launcher's wall time, start-up included)")
print(f"- `-resume` of the finished run, every task cached: {resume} s")
print(f"- `-stub-run` of the workflow: {stub} s\n")
print("| process | tasks | realtime per task, s (min-max) |\n|---|---|---|")
for name, times in by.items():
    print(f"| {name} | {len(times)} | {min(times):.1f}-{max(times):.1f} |")
PY
cat "$results/nextflow_test_profile.md"
