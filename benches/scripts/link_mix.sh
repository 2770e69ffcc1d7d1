#!/usr/bin/env bash
# Whole-process figures on link-like traffic (issue 19): many short flows,
# and floods of new flows. Public tools only: /usr/bin/time -v, and
# ndpiReader side by side when it is installed.
#
#   [ROUNDS=3] [FLOWS=133000] [FLOODS="1000000 10000000"] bash benches/scripts/link_mix.sh
#
# Makes, in $TMPDIR, a link-like mix of FLOWS flows (`synth --mix link`:
# heavy-tailed sizes, mean about 20 packets, two flows in three of one or
# two packets, random payloads, UDP and TCP; about 2.7 million frames for
# 133,000 flows) and floods of one-message UDP flows (`synth --mix flood`).
# Each round times, back to back from the page cache: the read floor
# (`classify --read-only`: libpcap reading the file in the blocks classify
# uses), libpcap reading it in its own 4 KiB blocks (`--read-buffer 0`, a
# yardstick), the floor of following the flows (`classify --flows-only`:
# reading, decoding and the flow table, nothing classified),
# `classify --format jsonl` and `--format csv`, and
# `--format jsonl --reader-thread` (two threads) to /dev/null on the mix,
# and `classify --format jsonl --max-flows 100000`
# on each flood, with peak memory. The summary gives the best of the
# rounds and each run's rate as a share of the floor's.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --examples -q
tmp=${TMPDIR:-/tmp}
flows=${FLOWS:-133000}
floods=(${FLOODS:-1000000 10000000})
bin=${BIN:-./target/release/examples/classify}
mix="$tmp/skype-dpi-link-$flows.pcap"
[ -f "$mix" ] || ./target/release/examples/synth --mix link --flows "$flows" --out "$mix"
for n in "${floods[@]}"; do
  [ -f "$tmp/skype-dpi-flood-$n.pcap" ] || ./target/release/examples/synth --mix flood --flows "$n" --out "$tmp/skype-dpi-flood-$n.pcap"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
declare -A best rss_of frames_of
run() {  # key, capture, command...
  local key=$1 cap=$2; shift 2
  cat "$cap" > /dev/null
  local out secs rss
  out=$( { /usr/bin/time -v "$@" "$cap" > /dev/null; } 2>&1 )
  secs=$(printf '%s\n' "$out" | sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(printf '%s\n' "$out" | sed -n 's/.*Maximum resident set size (kbytes): //p')
  printf '  %-44s %8.2f s %8.1f MiB peak\n' "$key" "$secs" "$(awk -v r="$rss" 'BEGIN { print r/1024 }')"
  if [ -z "${best[$key]:-}" ] || awk -v a="$secs" -v b="${best[$key]}" 'BEGIN { exit !(a < b) }'; then
    best[$key]=$secs
  fi
  rss_of[$key]=$rss
}
frames_of[mix]=$($bin --read-only "$mix" 2>&1 | sed -n 's/.*, \([0-9]*\) frames,.*/\1/p')
echo "link-like mix: $mix, ${frames_of[mix]} frames, $flows flows"
ndpi=$(command -v ndpiReader || true)
rounds=${ROUNDS:-3}
for round in $(seq "$rounds"); do
  echo "round $round:"
  run "mix: read-only (floor)" "$mix" "$bin" --read-only
  run "mix: read-only, libpcap's 4 KiB reads" "$mix" "$bin" --read-only --read-buffer 0
  run "mix: flows-only (flow table, no method)" "$mix" "$bin" --flows-only
  run "mix: classify --format jsonl" "$mix" "$bin" --format jsonl
  run "mix: classify --format csv" "$mix" "$bin" --format csv
  run "mix: classify --format jsonl --reader-thread" "$mix" "$bin" --format jsonl --reader-thread
  [ -z "$ndpi" ] || run "mix: ndpiReader -q" "$mix" "$ndpi" -q -i
  for n in "${floods[@]}"; do
    f="$tmp/skype-dpi-flood-$n.pcap"
    run "flood $n: read-only (floor)" "$f" "$bin" --read-only
    run "flood $n: classify --max-flows 100000" "$f" "$bin" --format jsonl --max-flows 100000
  done
done
echo "best of $rounds rounds (rate as a share of the floor's rate on the same capture; peak memory of the last round):"
fl=${best["mix: read-only (floor)"]}
for key in "mix: read-only (floor)" "mix: read-only, libpcap's 4 KiB reads" "mix: flows-only (flow table, no method)" "mix: classify --format jsonl" "mix: classify --format csv" "mix: classify --format jsonl --reader-thread" ${ndpi:+"mix: ndpiReader -q"}; do
  awk -v k="$key" -v s="${best[$key]}" -v fl="$fl" -v f="${frames_of[mix]}" -v r="${rss_of[$key]}" \
    'BEGIN { printf "%-44s %8.2f s %10.0f frames/s  %.3f of the floor  %7.1f MiB\n", k, s, f/s, fl/s, r/1024 }'
done
for n in "${floods[@]}"; do
  fl=${best["flood $n: read-only (floor)"]}
  for key in "flood $n: read-only (floor)" "flood $n: classify --max-flows 100000"; do
    awk -v k="$key" -v s="${best[$key]}" -v fl="$fl" -v f="$n" -v r="${rss_of[$key]}" \
      'BEGIN { printf "%-44s %8.2f s %10.0f flows/s   %.3f of the floor  %7.1f MiB\n", k, s, f/s, fl/s, r/1024 }'
  done
done
