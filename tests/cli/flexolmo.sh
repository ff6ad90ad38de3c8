#!/usr/bin/env bash
# End-to-end FlexOLMo workflow on the command line, tiny preset: anchor
# training with an interrupted and resumed run, public router rows, two
# contributors training experts (one with public text mixed in, one with
# its own embedding file), assembly, and the refusals a careful operator
# relies on. Arguments: the build directory.
set -euo pipefail
build=$1
coord=$build/coordinator/flexo-coordinator
contrib=$build/contributor/flexo-contributor
bench=$build/bench/flexo-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Three small domains of distinct text.
mkdir -p "$work/public" "$work/code" "$work/verse"
for i in $(seq 1 60); do
  printf 'The consortium publishes documentation number %d for everyone. ' $i \
    | head -c 4000 > "$work/public/p$i.txt"
  for j in $(seq 1 20); do echo "int f$i$j(int x) { return x * $j + $i; }"; done \
    > "$work/code/c$i.txt"
  for j in $(seq 1 20); do echo "And the $j river flowed, and it was good $i."; done \
    > "$work/verse/v$i.txt"
done

# Every command answers --help.
for c in "$coord anchor train" "$coord anchor embed" "$coord assemble" "$coord eval" \
         "$contrib train" "$bench flexmix"; do
  $c --help | grep -q usage || fail "$c --help"
done
"$coord" --help | grep -q assemble || fail "coordinator --help lists commands"
if "$coord" nosuch 2>/dev/null; then fail "unknown command accepted"; fi

# Anchor: stop after 30 of 60 steps, resume, and compare with one straight run.
"$coord" -q anchor train --data "$work/public" --out "$work/a" --preset tiny \
  --steps 60 --ckpt-every 20 --stop-after 30 --threads 1 >/dev/null
[[ ! -f $work/a/anchor.safetensors ]] || fail "anchor written before the end"
if "$coord" -q anchor train --data "$work/public" --out "$work/a" \
     --preset tiny --steps 60 2>"$work/err"; then
  fail "an existing run was overwritten without --resume"
fi
grep -q -- "--resume" "$work/err" || fail "no hint to --resume"
"$coord" -q anchor train --data "$work/public" --out "$work/a" --preset tiny \
  --steps 60 --ckpt-every 20 --resume --threads 1 > "$work/a.txt"
"$coord" -q anchor train --data "$work/public" --out "$work/b" --preset tiny \
  --steps 60 --ckpt-every 20 --threads 1 >/dev/null
cmp "$work/a/anchor.safetensors" "$work/b/anchor.safetensors" \
  || fail "resumed anchor differs from the uninterrupted one"
grep -q "byte-unigram baseline" "$work/a.txt" || fail "no baseline printed"
anchor=$work/a/anchor.safetensors

"$coord" -q anchor embed --anchor "$anchor" --data "$work/public" \
  --out "$work/rpub.safetensors" --windows 8

# Contributor 1 with public text mixed in; contributor 2 with its own embedding.
"$contrib" -q train --anchor "$anchor" --router-pub "$work/rpub.safetensors" \
  --data "$work/code" --domain code --out "$work/code.expert" --steps 20 \
  --public "$work/public" --public-mix 2 --batch 4 --threads 1 >/dev/null
# An owner's own embedding: a safetensors file with one tensor "embedding".
# Made here from the public rows file by renaming its tensor in place (the
# names have the same length, so the header stays valid).
sed 's/"router\.pub"/"embedding" /' "$work/rpub.safetensors" > "$work/emb.raw"
"$contrib" -q train --anchor "$anchor" --router-pub "$work/rpub.safetensors" \
  --data "$work/verse" --domain verse --out "$work/verse.expert" --steps 20 \
  --batch 4 --threads 1 --embedding "$work/emb.raw" >/dev/null \
  || fail "training with an embedding file"

"$coord" -q assemble --anchor "$anchor" --router-pub "$work/rpub.safetensors" \
  --out "$work/merged.safetensors" --top-k 2 "$work/code.expert" \
  "$work/verse.expert" > "$work/digest1"
[[ -s $work/merged.safetensors ]] || fail "no merged model"
# Assembly is a pure function of its inputs: same files, same bytes.
"$coord" -q assemble --anchor "$anchor" --router-pub "$work/rpub.safetensors" \
  --out "$work/merged2.safetensors" --top-k 2 "$work/code.expert" \
  "$work/verse.expert" > "$work/digest2"
cmp "$work/merged.safetensors" "$work/merged2.safetensors" \
  || fail "assembly is not reproducible"
[[ $(cut -d' ' -f1 "$work/digest1") == $(b2sum -l 256 "$work/merged.safetensors" | cut -d' ' -f1) ]] \
  || fail "printed digest is not the file's BLAKE2b-256"

# Evaluation: opting both experts out of the merged model gives the anchor's
# numbers exactly (masking = removal), and a single opt-out row per expert.
"$coord" -q eval --corpus "$work" --domains public,code,verse \
  --eval-tokens 2048 "$anchor" "$work/merged.safetensors" > "$work/table"
grep -q "merged.safetensors, code opted out" "$work/table" || fail "no opt-out row"
grep -q "merged.safetensors, verse opted out" "$work/table" || fail "no opt-out row"
anchor_row=$(grep "^| anchor.safetensors" "$work/table" | cut -d'|' -f3-)
[[ -n $anchor_row ]] || fail "no anchor row"

# An expert trained from another anchor is refused, naming the digest.
"$coord" -q anchor train --data "$work/public" --out "$work/other" \
  --preset tiny --steps 5 --seed 9 --threads 1 >/dev/null
if "$coord" -q assemble --anchor "$work/other/anchor.safetensors" \
     --router-pub "$work/rpub.safetensors" --out "$work/bad.safetensors" \
     "$work/code.expert" 2>"$work/err"; then
  fail "an expert of another anchor was merged"
fi
grep -q "trained from anchor" "$work/err" || fail "refusal does not say why"
[[ ! -e $work/bad.safetensors ]] || fail "a refused merge left a file"

# A truncated expert file is refused with a reason.
head -c 1000 "$work/code.expert" > "$work/trunc.expert"
if "$coord" -q assemble --anchor "$anchor" --router-pub "$work/rpub.safetensors" \
     --out "$work/bad.safetensors" "$work/trunc.expert" 2>"$work/err"; then
  fail "a truncated expert was merged"
fi
grep -q "trunc.expert" "$work/err" || fail "refusal does not name the file"
# The whole experiment in one command, tiny: experts, merge, opt-outs, both
# router tunings, soup and BTM, with a table row for each.
"$bench" -q flexmix --anchor "$anchor" --corpus "$work" --domains code,verse \
  --steps 6 --batch 4 --public-mix 2 --bias-init -2 --tune-steps 3 \
  --own-tune-steps 3 --eval-tokens 512 --embed-windows 4 --threads 1 \
  > "$work/flexmix" 2>/dev/null || fail "flexmix"
for row in "anchor" "2-expert code" "2-expert verse" "merged (top-2)" \
           "merged, code opted out" "merged + router tuning (top-2)" \
           "tuned, verse opted out" "merged + own-text row tuning (top-2)" \
           "own-tuned, code opted out" "own-tuned, verse opted out" \
           "model soup" "BTM ensemble (2 models)"; do
  grep -qF "| $row |" "$work/flexmix" || fail "flexmix has no row '$row'"
done
grep -Eq '^flexmix_closed_gain_vs_anchor: -?[0-9.]+$' "$work/flexmix" \
  || fail "flexmix gives no closed gain"
if "$bench" -q flexmix --anchor "$anchor" --corpus "$work" \
     --own-tune-steps -1 2>"$work/err"; then
  fail "a negative --own-tune-steps was accepted"
fi
grep -q -- "--own-tune-steps" "$work/err" || fail "refusal does not name the flag"
echo "flexolmo workflow: ok"
