#!/usr/bin/env bash
# Whole-process benchmark: packets per second and peak memory of `classify`
# beside the read-only floor (the same binary reading the capture through
# libpcap and doing nothing), on one capture, back to back, from the page
# cache. Public tools only: /usr/bin/time -v, and hyperfine when installed.
#
#   bash benches/scripts/whole_process.sh [CAPTURE] [THREADS...]
#
# Without CAPTURE it makes a 10-million-packet synthetic mixed capture in
# $TMPDIR (about 3.3 GB, 10 s). THREADS (default "1 2") are the --threads
# values to time.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --examples -q
tmp=${TMPDIR:-/tmp}
cap=${1:-}
if [ -z "$cap" ]; then
  cap="$tmp/skype-dpi-mixed-10M.pcap"
  if [ ! -f "$cap" ]; then
    ./target/release/examples/synth --seed 42 --flows-per-profile 400 --call-seconds 120 --spread-seconds 60 \
      --signalling-clients 50 --peers 100 --bulk-seconds 2 --packets 10000000 \
      --out "$cap" --labels "$tmp/skype-dpi-mixed-10M.csv"
  fi
fi
shift || true
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
bin=./target/release/examples/classify
frames=$($bin --read-only "$cap" 2>&1 | sed -n 's/.*, \([0-9]*\) frames,.*/\1/p')
cat "$cap" > /dev/null   # into the page cache
echo "capture: $cap ($frames frames); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
run() {  # label, args...
  local label=$1; shift
  local out
  out=$( { /usr/bin/time -v "$bin" "$@" "$cap" > /dev/null; } 2>&1 )
  local secs rss
  secs=$(printf '%s\n' "$out" | sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(printf '%s\n' "$out" | sed -n 's/.*Maximum resident set size (kbytes): //p')
  awk -v l="$label" -v s="$secs" -v f="$frames" -v r="$rss" 'BEGIN { printf "%-28s %8.2f s %12.0f frames/s %8.1f MiB peak\n", l, s, f/s, r/1024 }'
}
for round in 1 2; do
  echo "round $round:"
  run "read-only (floor)" --read-only
  for t in "${threads[@]}"; do
    run "classify --threads $t" --format jsonl --threads "$t"
  done
done
if command -v hyperfine >/dev/null 2>&1; then
  args=(-w 1 -r 3 -N "$bin --read-only $cap")
  for t in "${threads[@]}"; do args+=("$bin --format jsonl --threads $t $cap"); done
  hyperfine "${args[@]}" --export-markdown "$tmp/skype-dpi-hyperfine.md" >/dev/null 2>&1 && cat "$tmp/skype-dpi-hyperfine.md"
fi
