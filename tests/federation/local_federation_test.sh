#!/usr/bin/env bash
# Runs coordinator/local-federation.sh end to end at FLEXO_PRESET=tiny on a
# small corpus cut from text every Debian system with the build deps has
# (C headers, licence texts, copyright files, man page sources), and checks
# what it must show: four verdicts, a withdrawal, the evaluation table with
# opt-out rows, and the auditor's OK with re-assembly.
# Usage: local_federation_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d /tmp/fx-localfed-XXXXXX)
trap '[ -n "${FX_KEEP:-}" ] || rm -rf "$work"' EXIT
c=$work/corpus
mkdir -p $c/{public,code,man,legal,lit}
take() { # DEST N FILE...: the first N readable files, 8 KiB each
  local dest=$1 n=$2 i=0 f
  shift 2
  for f in "$@"; do
    [[ -f $f && -r $f ]] || continue
    case $f in *.gz) { zcat "$f" 2>/dev/null || true; } | head -c 8192 >"$dest/$i.txt" || true ;;
    *) head -c 8192 "$f" >"$dest/$i.txt" ;; esac
    [[ -s $dest/$i.txt ]] || { rm -f "$dest/$i.txt"; continue; }
    i=$((i + 1))
    ((i < n)) || break
  done
  ((i >= 10)) || { echo "only $i documents for $dest" >&2; exit 1; }
}
copyrights=(/usr/share/doc/*/copyright)
take $c/public 40 "${copyrights[@]:0:60}"
take $c/lit 30 "${copyrights[@]:60}"
take $c/code 30 /usr/include/*.h
take $c/legal 30 /usr/share/common-licenses/* "${copyrights[@]:120}"
take $c/man 30 /usr/share/man/man1/*.gz /usr/share/man/man3/*.gz
printf 'domain bytes docs\n' >$c/SIZES

out=$work/out.txt
FLEXO_PRESET=tiny FLEXO_BUILD_DIR=$build FLEXO_CORPUS=$c \
  bash "$src/coordinator/local-federation.sh" "$work/run" >"$out" 2>&1 ||
  { tail -40 "$out"; echo "FAIL: local-federation.sh exited $?"; exit 1; }
fail() { cat "$out"; echo "FAIL: $*"; exit 1; }
[ "$(grep -c ': accepted: gates' "$out")" -eq 4 ] || fail "four acceptances"
[ "$(grep -c 'receipt: verified' "$out")" -eq 5 ] || fail "five verified receipts"
grep -q "dave: withdrawn" "$out" || fail "withdrawal"
grep -q '^| .*served' "$out" || fail "evaluation table"
grep -qi 'opt' "$out" || fail "opt-out rows"
grep -q 'audit: result: *OK' "$out" || fail "audit"
grep -q 'assemblies rebuilt' "$out" || fail "re-assembly"
# a second run reuses the anchor
FLEXO_PRESET=tiny FLEXO_BUILD_DIR=$build FLEXO_CORPUS=$c \
  bash "$src/coordinator/local-federation.sh" "$work/run" >"$out" 2>&1 ||
  fail "second run"
grep -q 'reusing the tiny anchor' "$out" || fail "anchor not reused"
echo "local federation (tiny): ok"
