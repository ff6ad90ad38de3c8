#!/usr/bin/env bash
# Shell-level test of the signing tools with the built binaries:
# keygen -> roster (2-of-2 roots) -> anchor release -> contributor fetch,
# then the refusals a contributor relies on: rollback, tampered anchor,
# expired release, release by a key outside the roster; and the key-file
# refusals: wrong passphrase, group-readable key.
#   usage: sign_flow_test.sh FLEXO_KEYS FLEXO_COORDINATOR FLEXO_CONTRIBUTOR
set -euo pipefail
keys=$1 coord=$2 contrib=$3
work=$(mktemp -d /tmp/fx_sign_flow.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
fails=0

ok()   { echo "ok   $*"; }
bad()  { echo "FAIL $*"; fails=$((fails + 1)); }
# expect STATUS PATTERN CMD...: runs CMD, wants exit STATUS and PATTERN in
# its stderr.
expect() {
  local want=$1 pat=$2; shift 2
  local got=0
  "$@" >out.txt 2>err.txt || got=$?
  if [[ $got -eq $want ]] && grep -q -- "$pat" err.txt; then
    ok "$want '$pat': ${*:1:2}"
  else
    bad "wanted exit $want and '$pat', got $got: $* :: $(cat err.txt)"
  fi
}

# A safetensors file with one F32 tensor NAME of shape [2,4] (all 1.0)
# and the metadata a flexo anchor carries.
write_st() {
  local path=$1 name=$2 header len pad
  header="{\"__metadata__\":{\"hidden_size\":\"4\",\"num_hidden_layers\":\"2\"},\"$name\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]}}"
  pad=$(( (8 - ${#header} % 8) % 8 ))
  header="$header$(printf '%*s' "$pad" '')"
  len=${#header}
  {
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((len & 255)) $((len >> 8 & 255)) $((len >> 16 & 255)) $((len >> 24 & 255)))"
    printf '\x00\x00\x00\x00'
    printf '%s' "$header"
    for _ in 1 2 3 4 5 6 7 8; do printf '\x00\x00\x80\x3f'; done
  } >"$path"
}

export Q=-q
export ROOT1_PASS=correct-horse
for k in root0 coordk alice evil; do "$keys" -q keygen --out $k.key >/dev/null; done
"$keys" -q keygen --out root1.key --passphrase-env ROOT1_PASS >/dev/null

"$keys" -q roster init --out roster.bin --consortium flow --expires +30d \
  --threshold 2 --root root0=root0.key.pub --root root1=root1.key.pub
"$keys" -q roster add --roster roster.bin --name coord --role coordinator --pub coordk.key.pub
"$keys" -q roster add --roster roster.bin --name alice --role contributor --pub alice.key.pub
expect 1 "0 valid signature" "$keys" roster verify --roster roster.bin
"$keys" -q roster sign --roster roster.bin --key root0.key
expect 1 "wrong passphrase" env ROOT1_PASS=nope "$keys" roster sign --roster roster.bin --key root1.key --passphrase-env ROOT1_PASS
expect 1 "sealed with a passphrase" "$keys" roster sign --roster roster.bin --key root1.key
expect 1 "1 valid signature" "$keys" roster verify --roster roster.bin
"$keys" -q roster sign --roster roster.bin --key root1.key --passphrase-env ROOT1_PASS
if "$keys" roster verify --roster roster.bin >out.txt 2>&1 && grep -q "v1 OK" out.txt; then
  ok "roster verifies with 2 of 2 roots"
else bad "roster verify: $(cat out.txt)"; fi

write_st anchor.safetensors model.embed_tokens.weight
write_st router.safetensors router.pub
echo '{"version":"1.0"}' >tokenizer.json

release() { # VERSION DIR [extra args]
  local v=$1 dir=$2; shift 2
  "$coord" -q release --anchor anchor.safetensors --router-pub router.safetensors \
    --tokenizer tokenizer.json --key coordk.key --roster roster.bin \
    --version "$v" --expires +7d --out "$dir" "$@" >/dev/null
}
release 1 rel1
release 2 rel2
release 3 rel3 --expires +1h
expect 1 "needs a higher --version" "$coord" release --anchor anchor.safetensors \
  --router-pub router.safetensors --tokenizer tokenizer.json --key coordk.key \
  --roster roster.bin --version 2 --expires +7d --out rel3

fetch() { "$contrib" -q fetch --verify --roster roster.bin --state state "$@"; }
if fetch --from rel1 >/dev/null && grep -q "version 1" state/release.state &&
   cmp -s state/release-v1/anchor.safetensors anchor.safetensors &&
   cmp -s state/release-v1/router.pub.safetensors router.safetensors &&
   cmp -s state/release-v1/tokenizer.json tokenizer.json; then
  ok "fetch v1 installs the anchor"
else bad "fetch v1"; fi
fetch --from rel1 >/dev/null && ok "re-fetching the same release is fine" || bad "refetch v1"
fetch --from rel2 >/dev/null && ok "fetch v2" || bad "fetch v2"
expect 5 "rollback" fetch --from rel1
grep -q "version 2" state/release.state && ok "state still at v2" || bad "state moved"

cp -r rel2 rel2bad
printf '\x01' | dd of=rel2bad/anchor.safetensors bs=1 seek=$(( $(stat -c %s rel2bad/anchor.safetensors) - 1 )) conv=notrunc 2>/dev/null
expect 6 "digest mismatch" fetch --from rel2bad
echo '{"version":"2.0"}' >rel2bad/tokenizer.json
expect 6 "tokenizer" fetch --from rel2bad

expect 4 "expired" fetch --from rel3 --now +2h
fetch --from rel3 >/dev/null && ok "fetch v3 before it expires" || bad "fetch v3"

# A release signed by a coordinator of another roster (same consortium
# name, other roots): the contributor's roster does not know the key.
"$keys" -q roster init --out evil-roster.bin --consortium flow --expires +30d --root evil=evil.key.pub
"$keys" -q roster add --roster evil-roster.bin --name coord --role coordinator --pub alice.key.pub
"$keys" -q roster sign --roster evil-roster.bin --key evil.key
"$coord" -q release --anchor anchor.safetensors --router-pub router.safetensors \
  --tokenizer tokenizer.json --key alice.key --roster evil-roster.bin \
  --version 9 --expires +7d --out evil-rel >/dev/null
expect 3 "bad signature" fetch --from evil-rel
# ... and a contributor key is refused by the release command itself.
expect 1 "not a coordinator" "$coord" release --anchor anchor.safetensors \
  --router-pub router.safetensors --tokenizer tokenizer.json --key alice.key \
  --roster roster.bin --version 10 --expires +7d --out x
# A substituted roster that is not a signed rotation of the kept one.
expect 5 "not higher than the trusted" fetch --from rel3 --roster evil-roster.bin

# Rotation: v2 revokes the coordinator key. Signed by both v1 roots it is
# accepted; from then on the old roster is a rollback and releases signed
# by the revoked key are refused.
"$keys" -q roster init --out roster2.bin --from roster.bin --expires +30d
"$keys" -q roster remove --roster roster2.bin --name coord
"$keys" -q roster sign --roster roster2.bin --key root0.key
expect 3 "1 valid signature" fetch --from rel3 --roster roster2.bin
"$keys" -q roster sign --roster roster2.bin --key root1.key --passphrase-env ROOT1_PASS
expect 3 "not signed by any coordinator" fetch --from rel3 --roster roster2.bin
expect 5 "not higher" fetch --from rel3 --roster roster.bin

# The real pipeline: a tiny anchor and its r_pub, released, fetched into a
# fresh state, an expert trained from the installed files, its manifest
# signed; an expert of another anchor is refused before signing.
mkdir -p public code
for i in $(seq 1 60); do
  printf 'Public documentation number %d for everyone. ' "$i" | head -c 2000 >public/p$i.txt
  for j in $(seq 1 10); do echo "int f$i$j(int x) { return x * $j + $i; }"; done >code/c$i.txt
done
"$coord" -q anchor train --data public --out a --preset tiny --steps 10 --threads 1 >/dev/null
"$coord" -q anchor embed --anchor a/anchor.safetensors --data public --out rpub.safetensors --windows 4
"$coord" -q release --anchor a/anchor.safetensors --router-pub rpub.safetensors \
  --key coordk.key --roster roster.bin --version 1 --expires +7d --out real >/dev/null
"$contrib" -q fetch --verify --from real --roster roster.bin --state cstate >/dev/null \
  && ok "fetch of a real anchor release" || bad "fetch real"
"$contrib" -q train --anchor cstate/release-v1/anchor.safetensors \
  --router-pub cstate/release-v1/router.pub.safetensors --data code --domain code \
  --out code.expert --steps 3 --batch 2 --threads 1 >/dev/null
if "$contrib" -q manifest --expert code.expert --key alice.key --state cstate >digest.txt &&
   [[ $(wc -c <digest.txt) -eq 65 ]] && [[ -s code.expert.manifest ]] &&
   grep -q '^1$' cstate/sequence; then
  ok "manifest signed (sequence 1)"
else bad "manifest: $(cat digest.txt)"; fi
"$contrib" -q manifest --expert code.expert --key alice.key --state cstate --out m2 >/dev/null &&
  grep -q '^2$' cstate/sequence && ok "sequence advances" || bad "sequence"
"$coord" -q anchor train --data public --out other --preset tiny --steps 3 --seed 9 --threads 1 >/dev/null
"$contrib" -q train --anchor other/anchor.safetensors --router-pub rpub.safetensors \
  --data code --domain code --out other.expert --steps 2 --batch 2 --threads 1 >/dev/null
expect 1 "trained from anchor" "$contrib" manifest --expert other.expert --key alice.key --state cstate
expect 1 "not in roster" "$contrib" manifest --expert code.expert --key evil.key --state cstate

chmod 644 coordk.key
expect 1 "mode 0644" "$coord" release --anchor anchor.safetensors \
  --router-pub router.safetensors --tokenizer tokenizer.json --key coordk.key \
  --roster roster.bin --version 4 --expires +7d --out rel4

for cmd in "$keys keygen" "$keys pubkey" "$keys fingerprint" "$keys roster init" \
           "$keys roster add" "$keys roster remove" "$keys roster sign" \
           "$keys roster verify" "$keys roster show" "$coord release" "$contrib fetch" \
           "$contrib manifest"; do
  if $cmd --help >/dev/null; then ok "--help: ${cmd##*/}"; else bad "--help: $cmd"; fi
done

[[ $fails -eq 0 ]] && echo "all ok" || { echo "$fails failed"; exit 1; }
