#!/usr/bin/env bash
# Throughput of an archive run: one `classify` process beside
# examples/dask_archive.py on a LocalCluster of 1 and of 2 workers, each
# run ROUNDS times (best kept), on the captures under the given folders.
#
#   bash benches/scripts/dask_throughput.sh DIR...
#
# Needs the Python package installed in $VENV (default target/py-venv, as
# `bash python/test.sh` leaves it). Prints a Markdown table: captures/s and
# frames/s, by the whole command's wall time (cluster start included) and,
# for Dask, by the time from the first task submitted to the last result.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${VENV:-target/py-venv}"
rounds="${ROUNDS:-3}"
cargo build --release --quiet --example classify
mapfile -t caps < <(find "$@" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) | sort)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
best() { sort -g | head -1; }
now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }

walls=()
for _ in $(seq "$rounds"); do
  t0=$(now)
  target/release/examples/classify --format parquet --out "$out/one.parquet" "${caps[@]}" 2>"$out/classify.err" || true
  t1=$(now)
  walls+=("$(calc "$t1 - $t0")")
done
cwall=$(printf '%s\n' "${walls[@]}" | best)
frames=$(sed -n 's/^summary: [0-9]* capture(s), \([0-9]*\) frames.*/\1/p' "$out/classify.err")
n=${#caps[@]}
printf '| run | captures | frames | wall s | captures/s | frames/s | tasks s | captures/s (tasks) | frames/s (tasks) |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
printf '| `classify` (one process) | %d | %d | %.2f | %.0f | %.0f | | | |\n' "$n" "$frames" "$cwall" "$(calc "$n / $cwall")" "$(calc "$frames / $cwall")"
for w in 1 2; do
  walls=(); tasks=()
  for _ in $(seq "$rounds"); do
    rm -rf "$out/ds"
    t0=$(now)
    "$venv/bin/python" examples/dask_archive.py --workers "$w" --out "$out/ds" "$@" 2>/dev/null || true
    t1=$(now)
    walls+=("$(calc "$t1 - $t0")")
    tasks+=("$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$out/ds/_summary.json")")
  done
  wall=$(printf '%s\n' "${walls[@]}" | best)
  task=$(printf '%s\n' "${tasks[@]}" | best)
  dframes=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["frames"])' "$out/ds/_summary.json")
  printf '| Dask, %d worker(s) | %d | %d | %.2f | %.0f | %.0f | %.2f | %.0f | %.0f |\n' "$w" "$n" "$dframes" "$wall" \
    "$(calc "$n / $wall")" "$(calc "$dframes / $wall")" "$task" "$(calc "$n / $task")" "$(calc "$dframes / $task")"
done
