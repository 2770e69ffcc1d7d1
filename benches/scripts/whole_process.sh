#!/usr/bin/env bash
# Whole-process benchmark: packets per second and peak memory of `classify`
# beside the read-only floor (the same binary reading the capture through
# libpcap and doing nothing), on one capture, back to back, from the page
# cache. Public tools only: /usr/bin/time -v, and hyperfine when installed.
#
#   [ROUNDS=5] bash benches/scripts/whole_process.sh [CAPTURE] [THREADS...]
#
# Without CAPTURE it makes a 10-million-packet synthetic mixed capture in
# $TMPDIR (about 3.3 GB, 10 s). THREADS (default "1 2") are the --threads
# values to time. Each round runs the floor and every thread count back to
# back; the summary gives the best of the rounds and the ratios between
# them (these machines are noisy: compare runs of the same round set).
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
# BIN: another build of classify to time (e.g. an older commit's).
bin=${BIN:-./target/release/examples/classify}
frames=$($bin --read-only "$cap" 2>&1 | sed -n 's/.*, \([0-9]*\) frames,.*/\1/p')
cat "$cap" > /dev/null   # into the page cache
echo "capture: $cap ($frames frames); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
declare -A best
run() {  # key, label, args...
  local key=$1 label=$2; shift 2
  local out
  out=$( { /usr/bin/time -v "$bin" "$@" "$cap" > /dev/null; } 2>&1 )
  local secs rss
  secs=$(printf '%s\n' "$out" | sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(printf '%s\n' "$out" | sed -n 's/.*Maximum resident set size (kbytes): //p')
  awk -v l="$label" -v s="$secs" -v f="$frames" -v r="$rss" 'BEGIN { printf "%-28s %8.2f s %12.0f frames/s %8.1f MiB peak\n", l, s, f/s, r/1024 }'
  if [ -z "${best[$key]:-}" ] || awk -v a="$secs" -v b="${best[$key]}" 'BEGIN { exit !(a < b) }'; then
    best[$key]=$secs
  fi
}
rounds=${ROUNDS:-5}
for round in $(seq "$rounds"); do
  echo "round $round:"
  run floor "read-only (floor)" --read-only
  for t in "${threads[@]}"; do
    run "t$t" "classify --threads $t" --format jsonl --threads "$t"
  done
done
echo "best of $rounds rounds:"
fl=${best[floor]}
one=${best[t${threads[0]}]}
awk -v s="$fl" -v f="$frames" 'BEGIN { printf "%-28s %8.2f s %12.0f frames/s\n", "read-only (floor)", s, f/s }'
for t in "${threads[@]}"; do
  awk -v s="${best[t$t]}" -v fl="$fl" -v one="$one" -v f="$frames" -v t="$t" -v t0="${threads[0]}" \
    'BEGIN { printf "%-28s %8.2f s %12.0f frames/s  rate %.3f of the floor, %.2fx --threads %s\n", "classify --threads " t, s, f/s, fl/s, one/s, t0 }'
done
if command -v hyperfine >/dev/null 2>&1; then
  args=(-w 1 -r 3 -N "$bin --read-only $cap")
  for t in "${threads[@]}"; do args+=("$bin --format jsonl --threads $t $cap"); done
  hyperfine "${args[@]}" --export-markdown "$tmp/skype-dpi-hyperfine.md" >/dev/null 2>&1 && cat "$tmp/skype-dpi-hyperfine.md"
fi
