#!/usr/bin/env bash
# Transport integration tests, one mode per ctest entry: the coordinator
# (`serve`) and contributors (`submit`, `fetch`) as separate processes on
# loopback. Modes:
#   roundtrip   tcp and tls+tcp submissions accepted, a tampered payload
#               rejected, a wrong CA refused, a release fetched over TLS
#   drop        a relay cuts the connection mid-upload; the upload resumes
#   sigkill     the coordinator is SIGKILLed mid-upload and restarted; the
#               upload resumes from its checkpoint, nothing lost or doubled
#               (the admission re-hashes nothing: the streamed digest must
#               match the signed manifest)
#   concurrent  20 contributors submit at once; all get verdicts
#   pipeline    the real thing over TLS: a tiny anchor released, served,
#               downloaded, verified (fetch --verify), an expert trained,
#               its manifest signed, submitted and accepted
# Manifests are signed by fx_mkcontrib (contrib.h over random payloads).
# Usage: net_test.sh MODE FLEXO_KEYS FLEXO_COORDINATOR FLEXO_CONTRIBUTOR
#                    FX_RELAY FX_MKCONTRIB
set -euo pipefail
mode=$1 keys=$2 coord=$3 contrib=$4 relay=$5 mkcontrib=$6

work=$(mktemp -d /tmp/fx-net-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "== $f" >&2; tail -20 "$f" >&2; done; exit 1; }

# Ports below the ephemeral range (outgoing connections take those), from
# the PID and $RANDOM; start_coord picks again if they are taken.
pick_ports() {
  local base=$((12000 + (($$ + RANDOM) % 4500) * 4))
  port_tcp=$base port_tls=$((base + 1)) port_relay=$((base + 2))
}
pick_ports

cd "$work"
"$keys" -q keygen --out root.key >/dev/null
"$keys" -q roster init --out roster.bin --expires +1d --consortium testnet \
  --root root=root.key.pub >/dev/null
n_contrib=1
[ "$mode" = concurrent ] && n_contrib=20
for i in $(seq 1 "$n_contrib"); do
  "$keys" -q keygen --out "c$i.key" >/dev/null
  "$keys" -q roster add --roster roster.bin --name "c$i" --role contributor \
    --pub "c$i.key.pub" >/dev/null
done
"$keys" -q keygen --out stranger.key >/dev/null
"$keys" -q roster sign --roster roster.bin --key root.key >/dev/null

mkdir -p release
head -c 1000 /dev/urandom >release/release.bin
head -c 2500000 /dev/urandom >release/anchor.safetensors
head -c 3000 /dev/urandom >release/tokenizer.json

# Throwaway CA and a server certificate for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout ca.key -out ca.pem -days 1 -subj /CN=flexo-test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >srv.ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out srv.pem -days 1 -extfile srv.ext 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout other.key -out other-ca.pem -days 1 -subj /CN=other-ca 2>/dev/null

write_conf() {
  cat >serve.conf <<CONF
# coordinator config for the tests; flags on the command line win
listen = tcp://127.0.0.1:$port_tcp
listen = tls+tcp://localhost:$port_tls
tls-cert = srv.pem
tls-key = srv.key
staging = staging
release = release
roster = roster.bin
checkpoint = 256K
signature-only
CONF
}
write_conf

coord_pid=
coord_starts=0
start_coord() { # $1: log file
  local attempt
  for attempt in 1 2 3 4 5; do
    "$coord" serve --config serve.conf >"$1" 2>&1 &
    coord_pid=$!
    pids+=("$coord_pid")
    for _ in $(seq 1 100); do
      if grep -q "listening on tls" "$1" 2>/dev/null; then
        coord_starts=$((coord_starts + 1))
        return 0
      fi
      kill -0 "$coord_pid" 2>/dev/null || break
      sleep 0.05
    done
    # Someone else holds a port: only the first start may move (a restart
    # must come back where the contributor dials).
    if [ "$coord_starts" -eq 0 ] && grep -q "Address in use" "$1"; then
      pick_ports
      write_conf
      continue
    fi
    fail "coordinator did not start"
  done
  fail "no free ports"
}

submit() { # KEY PAYLOAD SEQ URL [extra...]: signs, then uploads
  local key=$1 payload=$2 seq=$3 url=$4
  shift 4
  "$mkcontrib" "$key" "$payload" "$seq" "$payload.$seq.env"
  "$contrib" submit --coordinator "$url" --envelope "$payload.$seq.env" \
    --payload "$payload" --timeout-ms 3000 "$@"
}

case "$mode" in
roundtrip)
  start_coord coord.log
  head -c 3000000 /dev/urandom >p1.bin
  out=$(submit c1.key p1.bin 1 "tcp://127.0.0.1:$port_tcp" --chunk 1048576 2>sub1.log) ||
    fail "tcp submit exited $?"
  grep -q '^accepted: payload' <<<"$out" || fail "tcp: $out"
  grep -q '^contribution [0-9a-f]\{64\}$' <<<"$out" || fail "no digest: $out"

  head -c 2000000 /dev/urandom >p2.bin
  out=$(submit c1.key p2.bin 2 "tls+tcp://localhost:$port_tls" --ca ca.pem \
    2>sub2.log) || fail "tls submit exited $?"
  grep -q '^accepted' <<<"$out" || fail "tls: $out"

  # A manifest signed for one file, another file's bytes (same size).
  head -c 3000000 /dev/urandom >p3.bin
  "$mkcontrib" c1.key p3.bin 3 e3.bin
  set +e
  out=$("$contrib" submit --coordinator "tcp://127.0.0.1:$port_tcp" \
    --envelope e3.bin --payload p1.bin 2>sub3.log)
  rc=$?
  set -e
  [ $rc -eq 3 ] || fail "tampered payload: exit $rc ($out)"
  grep -q '^rejected: payload: payload BLAKE2b-256' <<<"$out" || fail "tampered: $out"

  # A key outside the roster is refused before any payload moves.
  set +e
  out=$(submit stranger.key p1.bin 1 "tcp://127.0.0.1:$port_tcp" 2>sub4.log)
  rc=$?
  set -e
  [ $rc -eq 3 ] && grep -q '^rejected: signature' <<<"$out" ||
    fail "stranger: exit $rc ($out)"

  # The wrong CA: the TLS handshake fails, nothing is sent.
  set +e
  submit c1.key p1.bin 5 "tls+tcp://localhost:$port_tls" --ca other-ca.pem \
    --retries 1 --timeout-ms 1500 >/dev/null 2>sub5.log
  rc=$?
  set -e
  [ $rc -eq 1 ] && grep -q "TLS handshake refused" sub5.log ||
    fail "wrong CA: exit $rc: $(cat sub5.log)"

  # (Random bytes, not a real release: named explicitly, since the default
  # list comes from release.bin's manifest.)
  "$contrib" download --coordinator "tls+tcp://localhost:$port_tls" --ca ca.pem \
    --out fetched --file release.bin --file anchor.safetensors \
    --file tokenizer.json 2>fetch.log || fail "download"
  set +e
  "$contrib" download --coordinator "tcp://127.0.0.1:$port_tcp" \
    --out fetched2 2>fetch2.log
  rc=$?
  set -e
  [ $rc -eq 1 ] && grep -q 'release.bin' fetch2.log ||
    fail "a malformed release.bin was not refused (exit $rc)"
  for f in release.bin anchor.safetensors tokenizer.json; do
    cmp -s "release/$f" "fetched/$f" || fail "fetched $f differs"
  done
  ;;
drop)
  start_coord coord.log
  "$relay" "$port_relay" "$port_tcp" 1500000 2>relay.log &
  pids+=($!)
  sleep 0.2
  head -c 4000000 /dev/urandom >p.bin
  out=$(submit c1.key p.bin 1 "tcp://127.0.0.1:$port_relay" --chunk 262144 \
    2>sub.log) || fail "submit through the relay exited $?"
  grep -q '^accepted' <<<"$out" || fail "drop: $out"
  grep -q dropped relay.log || fail "the relay never cut the connection"
  grep -Eq 'resum|continuing' sub.log || fail "no resume in the client log"
  ;;
sigkill)
  start_coord coord1.log
  head -c 8000000 /dev/urandom >p.bin
  submit c1.key p.bin 1 "tcp://127.0.0.1:$port_tcp" --chunk 131072 \
    --max-rate 4000000 >sub.out 2>sub.log &
  sub_pid=$!
  pids+=("$sub_pid")
  sleep 1
  kill -KILL "$coord_pid"
  wait "$coord_pid" 2>/dev/null || true
  grep -q 'upload .* begun' coord1.log || fail "upload had not begun"
  start_coord coord2.log
  wait "$sub_pid" || fail "submit after restart exited $?"
  grep -q '^accepted' sub.out || fail "sigkill: $(cat sub.out)"
  # The restarted coordinator finished the very session the first one
  # began (reloaded from its checkpoint), and began none from zero.
  sid=$(sed -n 's/.*upload \([0-9a-f]*\): begun.*/\1/p' coord1.log)
  grep -q "upload $sid: accepted" coord2.log ||
    fail "the restarted coordinator did not finish session $sid"
  ! grep -q 'begun at 0' coord2.log || fail "the upload started over"
  ;;
concurrent)
  start_coord coord.log
  subs=()
  for i in $(seq 1 20); do
    head -c $((100000 + i * 1000)) /dev/urandom >"p$i.bin"
    submit "c$i.key" "p$i.bin" 1 "tcp://127.0.0.1:$port_tcp" --chunk 65536 \
      >"sub$i.out" 2>"sub$i.log" &
    subs+=($!)
    pids+=($!)
  done
  for i in $(seq 1 20); do
    wait "${subs[$((i - 1))]}" || fail "contributor $i exited $?"
    grep -q '^accepted' "sub$i.out" || fail "contributor $i: $(cat "sub$i.out")"
  done
  [ "$(grep -c 'accepted' coord.log)" -eq 20 ] || fail "coordinator logged $(grep -c accepted coord.log) verdicts"
  ;;
pipeline)
  "$keys" -q keygen --out coordk.key >/dev/null
  "$keys" -q roster add --roster roster.bin --name coord --role coordinator \
    --pub coordk.key.pub >/dev/null
  "$keys" -q roster sign --roster roster.bin --key root.key >/dev/null
  mkdir -p public code
  for i in $(seq 1 40); do
    printf 'Public documentation number %d for everyone. ' "$i" >public/p$i.txt
    for j in $(seq 1 8); do echo "int f$i$j(int x) { return x * $j + $i; }"; done >code/c$i.txt
  done
  "$coord" -q anchor train --data public --out a --preset tiny --steps 5 \
    --threads 1 >/dev/null || fail "anchor train"
  "$coord" -q anchor embed --anchor a/anchor.safetensors --data public \
    --out rpub.safetensors --windows 4 || fail "anchor embed"
  rm -rf release
  "$coord" -q release --anchor a/anchor.safetensors --router-pub rpub.safetensors \
    --key coordk.key --roster roster.bin --version 1 --expires +1d \
    --out release >/dev/null || fail "release"
  start_coord coord.log
  "$contrib" download --coordinator "tls+tcp://localhost:$port_tls" --ca ca.pem \
    --out dl 2>dl.log || fail "download"
  for f in release/*; do
    cmp -s "$f" "dl/${f##*/}" || fail "downloaded ${f##*/} differs"
  done
  "$contrib" -q fetch --verify --from dl --roster roster.bin --state cstate \
    >/dev/null 2>fetch.log || fail "fetch --verify of the download"
  "$contrib" -q train --anchor cstate/release-v1/anchor.safetensors \
    --router-pub cstate/release-v1/router.pub.safetensors --data code \
    --domain code --out code.expert --steps 2 --batch 2 --threads 1 \
    >/dev/null 2>train.log || fail "train"
  "$contrib" -q manifest --expert code.expert --key c1.key --state cstate \
    >/dev/null 2>manifest.log || fail "manifest"
  out=$("$contrib" submit --coordinator "tls+tcp://localhost:$port_tls" \
    --ca ca.pem --envelope code.expert.manifest --payload code.expert \
    2>sub.log) || fail "submit exited $? ($out)"
  grep -q '^accepted: payload' <<<"$out" || fail "pipeline: $out"
  ;;
*)
  echo "unknown mode $mode" >&2
  exit 2
  ;;
esac
echo "net $mode: ok"
