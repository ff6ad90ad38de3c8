#!/usr/bin/env bash
# Federation integration tests: a real coordinator (`serve` with the full
# admission and ledger) and contributor processes on loopback, tiny preset.
# Modes:
#   gates      an accepted expert, then one crafted submission per gate,
#              each rejected by that gate (its name in the verdict), logged
#              as a rejected entry, changing nothing else (served model
#              digest, blobs); retries of decided uploads get the same
#              verdict; a coordinator restart keeps replay protection
#   roundtrip  two experts accepted; withdrawals refused for each reason
#              (unknown contribution, not the owner, bad signature, replayed
#              sequence, not a withdrawal), each logged with its reason and
#              a verified receipt, changing nothing else (served model, no
#              assembly); a retried refused request answered from the log;
#              one expert withdrawn (re-assembled), a second withdrawal
#              refused as already withdrawn, contributor status, a roster rotation
#              logged at restart, the ledger exported and verified by
#              flexo-audit --reassemble
# Usage: fed_test.sh MODE BUILD_DIR
set -euo pipefail
mode=$1 build=$2
keys=$build/keys/flexo-keys
coord=$build/coordinator/flexo-coordinator
contrib=$build/contributor/flexo-contributor
audit=$build/auditor/flexo-audit
craft=$build/tests/federation/fx_craft

for c in "$contrib withdraw" "$contrib status" "$contrib submit" "$coord serve"; do
  $c --help | grep -q '^usage' || { echo "FAIL: $c --help" >&2; exit 1; }
done
work=$(mktemp -d /tmp/fx-fed-XXXXXX)
coord_pid=
cleanup() {
  if [ -n "$coord_pid" ]; then
    kill "$coord_pid" 2>/dev/null || true
    wait "$coord_pid" 2>/dev/null || true
  fi
  [ -n "${FX_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do echo "== $f" >&2; tail -15 "$f" >&2; done
  exit 1
}
cd "$work"

# --- consortium: 2 roots (threshold 2), a coordinator, 2 contributors ---
for k in root1 root2 coordk c1 c2 stranger; do
  "$keys" -q keygen --out $k.key >/dev/null
done
"$keys" -q roster init --out roster.bin --expires +1d --consortium fedtest \
  --threshold 2 --root root1=root1.key.pub --root root2=root2.key.pub >/dev/null
"$keys" -q roster add --roster roster.bin --name coord --role coordinator \
  --pub coordk.key.pub >/dev/null
for c in c1 c2; do
  "$keys" -q roster add --roster roster.bin --name $c --role contributor \
    --pub $c.key.pub >/dev/null
done
"$keys" -q roster sign --roster roster.bin --key root1.key >/dev/null
"$keys" -q roster sign --roster roster.bin --key root2.key >/dev/null

# --- tiny corpora, anchor, r_pub, release ---
mkdir -p public code legal
for i in $(seq 1 40); do
  printf 'Public documentation number %d for everyone to read. ' "$i" >public/p$i.txt
  for j in $(seq 1 8); do echo "int f$i$j(int x) { return x * $j + $i; }"; done >code/c$i.txt
  for j in $(seq 1 6); do echo "Licensee shall not sublicense clause $i.$j."; done >legal/l$i.txt
done
"$coord" -q anchor train --data public --out a --preset tiny --steps 5 \
  --threads 1 >/dev/null || fail "anchor train"
"$coord" -q anchor embed --anchor a/anchor.safetensors --data public \
  --out rpub.safetensors --windows 4 --mode per-layer --threads 1 || fail "anchor embed"
"$coord" -q release --anchor a/anchor.safetensors --router-pub rpub.safetensors \
  --key coordk.key --roster roster.bin --version 1 --expires +1d \
  --out release >/dev/null || fail "release"

port=$((14000 + (($$ + RANDOM) % 4000) * 2))
url=tcp://127.0.0.1:$port
cat >serve.conf <<CONF
listen = $url
staging = staging
release = release
roster = roster.bin
state = state
key = coordk.key
public = public
threads = 1
# A tiny, barely trained anchor barely uses its FFN, so a poisoned one moves
# public loss little: the margin is tighter than the default 2%. (The good
# expert measures -0.1% and 40% capture; the crafted ones +1.6% and 88%.)
max-public-loss-rise = 0.005
max-public-capture = 0.6
CONF

start_coord() { # LOG
  "$coord" serve --config serve.conf >"$1" 2>&1 &
  coord_pid=$!
  for _ in $(seq 1 200); do
    grep -q "listening on" "$1" 2>/dev/null && return 0
    kill -0 "$coord_pid" 2>/dev/null || fail "coordinator exited: $(tail -3 "$1")"
    sleep 0.05
  done
  fail "coordinator did not start"
}
stop_coord() { # the coordinator must stop cleanly (a leak fails ASan builds)
  kill "$coord_pid"
  wait "$coord_pid" || fail "coordinator exited $? on SIGTERM"
  coord_pid=
}

# A contributor's whole side up to a signed manifest: download, verify,
# train, sign. NAME DOMAIN
contributor() {
  local n=$1 dom=$2
  mkdir -p $n
  "$contrib" -q download --coordinator "$url" --out $n/dl 2>$n.log || fail "$n download"
  "$contrib" -q fetch --verify --from $n/dl --roster roster.bin --state $n/state \
    >/dev/null 2>>$n.log || fail "$n fetch"
  "$contrib" -q train --anchor $n/state/release-v1/anchor.safetensors \
    --router-pub $n/state/release-v1/router.pub.safetensors --data $dom \
    --domain $dom --out $n/expert --steps 2 --batch 2 --threads 1 \
    >/dev/null 2>>$n.log || fail "$n train"
  "$contrib" -q manifest --expert $n/expert --key $n.key --state $n/state \
    >/dev/null 2>>$n.log || fail "$n manifest"
}

submit() { # NAME ENVELOPE PAYLOAD -> prints the verdict lines; sets rc
  set +e
  out=$("$contrib" submit --coordinator "$url" --state "$1/state" \
    --envelope "$2" --payload "$3" --timeout-ms 20000 2>>"$1.log")
  rc=$?
  set -e
}

ledger_size() { "$coord" ledger status --db state/ledger.db | sed -n 's/^size: *//p'; }
served() { b2sum state/served/model.safetensors | cut -c1-64; }
blobs() { ls state/blobs | wc -l; }
assemblies() { grep -c 'assembly (entry' coord.log || true; }

start_coord coord.log
contributor c1 code
submit c1 c1/expert.manifest c1/expert
[ $rc -eq 0 ] && grep -q '^accepted: gates' <<<"$out" || fail "good expert: rc $rc: $out"
grep -q '^receipt: verified' <<<"$out" || fail "receipt not verified: $out"
[ -f state/served/model.safetensors ] || fail "no served model"

case "$mode" in
gates)
  good_out=$out
  seq=10
  expect_reject() { # GATE ENVELOPE PAYLOAD
    local gate=$1 size0 served0 blobs0
    size0=$(ledger_size) served0=$(served) blobs0=$(blobs)
    submit c1 "$2" "$3"
    [ $rc -eq 3 ] || fail "$gate: exit $rc ($out)"
    grep -q "^rejected: $gate: " <<<"$out" || fail "$gate: verdict: $out"
    [ "$(ledger_size)" -eq $((size0 + 1)) ] || fail "$gate: ledger grew by $(($(ledger_size) - size0))"
    [ "$(served)" = "$served0" ] || fail "$gate: served model changed"
    [ "$(blobs)" -eq "$blobs0" ] || fail "$gate: a blob was stored"
    echo "gate $gate: rejected and logged" >&2
  }
  craft_sign() { # FROM PAYLOAD KEY OUT [MODE]
    seq=$((seq + 1))
    "$craft" sign "$1" "$2" "$3" release roster.bin $seq "$4" ${5:-normal} || fail "craft sign"
  }
  # signature: a flipped signature bit
  craft_sign c1/expert c1/expert c1.key sig.env flip-sig
  expect_reject signature sig.env c1/expert
  # roster: a key outside the roster
  craft_sign c1/expert c1/expert stranger.key roster.env
  expect_reject roster roster.env c1/expert
  # anchor: another release digest
  craft_sign c1/expert c1/expert c1.key anchor.env other-release
  expect_reject anchor anchor.env c1/expert
  # replay: a new manifest with the sequence already used (1)
  "$craft" sign c1/expert c1/expert c1.key release roster.bin 1 replay.env || fail craft
  expect_reject replay replay.env c1/expert
  # payload: the manifest's router rows are not the payload's
  "$craft" mutate c1/expert rows.x router-pub 1.5 rpub.safetensors || fail craft
  craft_sign c1/expert rows.x c1.key rows.env
  expect_reject payload rows.env rows.x
  # payload: trained from another anchor
  "$craft" mutate c1/expert other.x anchor-digest || fail craft
  craft_sign other.x other.x c1.key other.env
  expect_reject payload other.env other.x
  # finite: a NaN in the FFN
  "$craft" mutate c1/expert nan.x nan || fail craft
  craft_sign c1/expert nan.x c1.key nan.env
  expect_reject finite nan.env nan.x
  # norms: FFN weights 10x the anchor's
  "$craft" mutate c1/expert big.x scale-ffn 10 || fail craft
  craft_sign big.x big.x c1.key big.env
  expect_reject norms big.env big.x
  # public-loss: an FFN that pushes against the anchor, routed to
  "$craft" mutate c1/expert neg0.x router-pub 1.2 rpub.safetensors || fail craft
  "$craft" mutate neg0.x neg.x negate-down 2.5 || fail craft
  craft_sign neg.x neg.x c1.key neg.env
  expect_reject public-loss neg.env neg.x
  # routing-capture: a router row that takes public text from r_pub
  "$craft" mutate c1/expert cap.x router-pub 3 rpub.safetensors || fail craft
  craft_sign cap.x cap.x c1.key cap.env
  expect_reject routing-capture cap.env cap.x

  # Retries of decided uploads: the same verdicts, nothing new logged.
  size0=$(ledger_size)
  submit c1 c1/expert.manifest c1/expert
  [ $rc -eq 0 ] || fail "retry of the accepted upload: $out"
  [ "$(sed -n 's/^ledger index //p' <<<"$out" | cut -d, -f1)" = \
    "$(sed -n 's/^ledger index //p' <<<"$good_out" | cut -d, -f1)" ] ||
    fail "retry got another ledger index: $out vs $good_out"
  submit c1 nan.env nan.x
  grep -q '^rejected: finite' <<<"$out" || fail "retry of a rejected upload: $out"
  [ "$(ledger_size)" -eq "$size0" ] || fail "retries were logged again"

  # After a restart: replay protection and retries come from the ledger.
  stop_coord
  start_coord coord2.log
  submit c1 nan.env nan.x
  grep -q '^rejected: finite' <<<"$out" || fail "retry after restart: $out"
  "$craft" sign c1/expert c1/expert c1.key release roster.bin 5 replay2.env || fail craft
  submit c1 replay2.env c1/expert
  grep -q '^rejected: replay' <<<"$out" || fail "replay after restart: $out"
  ;;
roundtrip)
  contributor c2 legal
  submit c2 c2/expert.manifest c2/expert
  [ $rc -eq 0 ] || fail "c2: $out"
  digest1=$(served)
  c1d=$(sed -n 's/^contribution //p' c1/state/submissions | head -1 | cut -d' ' -f1)
  c2d=$(sed -n 's/^contribution //p' c2/state/submissions | head -1 | cut -d' ' -f1)
  vkey=$("$coord" ledger status --db state/ledger.db | sed -n 's/^log key: *//p')
  [ -n "$vkey" ] || fail "no log key"
  # Every refused withdrawal is logged with its reason and answered with a
  # receipt the contributor verifies (the entry logs exactly its request)
  # and records; nothing else changes: same served model, no assembly.
  expect_refusal() { # GATE NAME KEY STATE CONTRIBUTION
    local size0 served0 asm0
    size0=$(ledger_size) served0=$(served) asm0=$(assemblies)
    set +e
    "$contrib" withdraw --coordinator "$url" --key "$3" --state "$4" \
      --contribution "$5" >wd.out 2>>"$2.log"
    rc=$?
    set -e
    [ $rc -eq 3 ] || fail "$1: exit $rc $(cat wd.out)"
    grep -q "^refused: $1: " wd.out || fail "$1: verdict: $(cat wd.out)"
    grep -q '^receipt: verified' wd.out || fail "$1: receipt: $(cat wd.out)"
    [ "$(ledger_size)" -eq $((size0 + 1)) ] || fail "$1: ledger grew by $(($(ledger_size) - size0))"
    [ "$(served)" = "$served0" ] || fail "$1: served model changed"
    [ "$(assemblies)" -eq "$asm0" ] || fail "$1: an assembly was logged"
    grep -q "^refusal $5 refused $1 $size0\$" "$4/submissions" ||
      fail "$1: not recorded: $(cat "$4/submissions")"
    echo "withdrawal refused at $1: logged, receipt verified" >&2
  }
  expect_refusal unknown-contribution c1 c1.key c1/state "$(printf '7%.0s' $(seq 64))"
  expect_refusal not-owner c2 c2.key c2/state "$c1d"
  expect_refusal signature c2 stranger.key c2/state "$c2d"
  # replay: a state whose counter was reset signs a used sequence number
  mkdir -p c2old && cp -r c2/state c2old/ && echo 0 >c2old/state/sequence
  expect_refusal replay c2 c2.key c2old/state "$c2d"
  # format: bytes that are no withdrawal; the receipt checked by the auditor
  size0=$(ledger_size) served0=$(served) asm0=$(assemblies)
  printf 'not a withdrawal' >junk.req
  out=$("$craft" send "$url" junk.req junk.receipt) || fail "send: $out"
  grep -q '^2 format ' <<<"$out" || fail "format: $out"
  "$audit" receipt junk.receipt --key "$vkey" >/dev/null || fail "format receipt"
  [ "$(ledger_size)" -eq $((size0 + 1)) ] && [ "$(served)" = "$served0" ] &&
    [ "$(assemblies)" -eq "$asm0" ] ||
    fail "format: not logged once, or the model changed"
  # over 16 KiB: logged by size and digest only
  head -c 20000 /dev/zero >big.req
  out=$("$craft" send "$url" big.req big.receipt) || fail "send: $out"
  grep -q '^2 format .*20000 bytes' <<<"$out" || fail "big format: $out"
  "$audit" receipt big.receipt --key "$vkey" >/dev/null || fail "big receipt"
  [ "$(stat -c %s big.receipt)" -lt 16384 ] || fail "the big request was kept whole"
  # a retry of a refused request gets its logged verdict back, logged once
  "$craft" withdrawal c2.key roster.bin "$c2d" 1 old.req || fail "craft withdrawal"
  out=$("$craft" send "$url" old.req r1.bin) || fail "send: $out"
  grep -q '^2 replay ' <<<"$out" || fail "replay: $out"
  size0=$(ledger_size)
  out2=$("$craft" send "$url" old.req r2.bin) || fail "send: $out2"
  [ "$out2" = "$out" ] && [ "$(ledger_size)" -eq "$size0" ] ||
    fail "retry of a refused request: $out2 (was $out), size $(ledger_size) (was $size0)"
  "$audit" receipt r2.bin --key "$vkey" >/dev/null || fail "retry receipt"
  [ "$(served)" = "$digest1" ] || fail "refusals changed the served model"

  "$contrib" withdraw --coordinator "$url" --key c1.key --state c1/state \
    --contribution "$c1d" --reason "test" >wd.out 2>>c1.log || fail "withdraw: $(cat wd.out)"
  grep -q '^withdrawn' wd.out || fail "withdraw: $(cat wd.out)"
  grep -q '^receipt: verified' wd.out || fail "withdraw receipt: $(cat wd.out)"
  [ "$(served)" != "$digest1" ] || fail "served model not re-assembled"
  # a second withdrawal of the same contribution is refused, and logged
  expect_refusal already-withdrawn c1 c1.key c1/state "$c1d"
  "$contrib" status --state c1/state >status.out || fail "status"
  # A roster rotation: the restarted coordinator logs roster v2 (checked by
  # the ledger as a rotation of v1) and the auditor follows it.
  "$keys" -q roster init --from roster.bin --out roster2.bin --expires +2d >/dev/null
  "$keys" -q roster sign --roster roster2.bin --key root1.key >/dev/null
  "$keys" -q roster sign --roster roster2.bin --key root2.key >/dev/null
  stop_coord
  sed -i 's/^roster = roster.bin$/roster = roster2.bin/' serve.conf
  start_coord coord2.log
  grep -q 'logged roster v2' coord2.log || fail "roster v2 not logged"
  # the restarted coordinator rebuilt its memory of refusals from the log
  size0=$(ledger_size)
  out3=$("$craft" send "$url" old.req r3.bin) || fail "send: $out3"
  [ "$out3" = "$out" ] && [ "$(ledger_size)" -eq "$size0" ] ||
    fail "retry after restart: $out3 (was $out)"
  grep -q 'withdrawn' status.out && grep -q 'accepted' status.out || fail "status: $(cat status.out)"
  "$coord" ledger export exp --db state/ledger.db --blobs state/blobs \
    --key coordk.key >/dev/null 2>export.log || fail "export"
  vkey=$("$coord" ledger status --db state/ledger.db | sed -n 's/^log key: *//p')
  [ -n "$vkey" ] || vkey=$(cat exp/log.vkey)
  "$audit" verify exp --key "$vkey" --reassemble >audit.out 2>&1 || fail "audit: $(cat audit.out)"
  grep -q 'result: *OK' audit.out || fail "audit: $(cat audit.out)"
  grep -q 'refused withdrawals *8$' audit.out || fail "audit counts: $(cat audit.out)"
  ;;
*)
  echo "unknown mode $mode" >&2
  exit 2
  ;;
esac
stop_coord
echo "federation $mode: ok"
