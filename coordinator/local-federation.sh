#!/usr/bin/env bash
# The main job (README): installs what is missing, builds flexo, assembles
# the corpora from Debian-packaged text, and runs the local federation.
# Today the federation's first stage exists: the coordinator trains the
# `small` anchor on the public corpus and reports its held-out bits-per-byte
# next to the byte-unigram baseline. Later stages (contributors, ledger,
# serving, audit) are added here as they land.
#
#   usage: coordinator/local-federation.sh [WORKDIR]   (default: ./run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$root/run}
preset=${FLEXO_PRESET:-small}
steps=${FLEXO_ANCHOR_STEPS:-}

cd "$root"
bash .ci/install-deps
echo "== building" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bin=$root/build

mkdir -p "$work"
if [[ ! -f $work/corpus/SIZES ]]; then
  echo "== assembling corpora from Debian packages" >&2
  bash coordinator/corpus/make-corpus.sh "$work/corpus"
fi
cat "$work/corpus/SIZES" >&2

echo "== training the $preset anchor on the public corpus" >&2
anchor_dir=$work/anchor-$preset
rm -rf "$anchor_dir"
"$bin/coordinator/flexo-coordinator" anchor train \
  --data "$work/corpus/public" --out "$anchor_dir" --preset "$preset" \
  ${steps:+--steps "$steps"} | tee "$work/anchor-$preset.txt"
