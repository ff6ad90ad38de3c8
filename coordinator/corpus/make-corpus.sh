#!/usr/bin/env bash
# Assembles flexo's text corpora from Debian-packaged text only (nothing is
# downloaded but Debian packages, nothing is invented): one public mix and
# four closed domains. Each domain is a folder of plain-text documents of at
# most 16 KiB (long sources are cut at line boundaries); a document belongs
# to exactly one domain. Deterministic: the same packages give the same files.
#
#   usage: make-corpus.sh OUTDIR
#
# OUTDIR/{public,code,man,legal,lit}/*.txt and OUTDIR/SIZES (bytes, documents).
set -euo pipefail

out=${1:?usage: make-corpus.sh OUTDIR}
packages=(jargon-text debian-reference-en debian-faq gnu-standards doc-debian
          libc6-dev linux-libc-dev manpages manpages-dev man-db groff-base
          bsdextrautils bible-kjv bible-kjv-text fortunes fortunes-min)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "make-corpus: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# Per-domain byte budgets keep the corpus (and training time) bounded.
public_budget=$((4 * 1024 * 1024))
domain_budget=$((2 * 1024 * 1024))

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out.partial"
mkdir -p "$out.partial"/{public,code,man,legal,lit}

# clean: printable text only (drops info-file control bytes, backspace
# overstrikes, carriage returns); keeps newlines and tabs.
clean() { LC_ALL=C tr -d '\000-\010\013-\037\177'; }

# add DOMAIN NAME < text: cuts stdin into <=16 KiB documents DOMAIN/NAME.NNNN.txt
add() {
  local domain=$1 name=$2
  clean > "$tmp/doc"
  [[ -s $tmp/doc ]] || return 0
  split -C 16384 -d -a 4 --additional-suffix=.txt "$tmp/doc" \
    "$out.partial/$domain/$name."
}

# Keeps a domain within its budget: documents are visited in a fixed,
# name-hashed order and kept until the budget is spent.
trim() {
  local domain=$1 budget=$2 total=0 f size
  while read -r _ f; do
    size=$(stat -c %s "$f")
    if ((total + size > budget)); then rm -f "$f"; else total=$((total + size)); fi
  done < <(for f in "$out.partial/$domain"/*.txt; do
             printf '%s %s\n' "$(basename "$f" | md5sum | cut -c1-16)" "$f"
           done | sort)
}

# Public: general reference prose about computing culture, Debian and GNU
# practice — what a consortium could publish freely.
zcat /usr/share/doc/jargon-text/jargon.txt.gz | add public jargon
zcat /usr/share/debian-reference/debian-reference.en.txt.gz | add public debian-reference
zcat /usr/share/doc/debian/FAQ/debian-faq.en.txt.gz | add public debian-faq
zcat /usr/share/info/standards.info.gz | add public gnu-standards
zcat /usr/share/info/maintain.info.gz | add public gnu-maintain
for f in constitution.txt.gz social-contract.txt.gz debian-manifesto.gz \
         bug-reporting.txt.gz mailing-lists.txt.gz; do
  zcat "/usr/share/doc/debian/$f" | add public "debian-${f%%.*}"
done

# Code: C headers of the C library and the kernel's user-space API.
while read -r f; do
  name=$(echo "${f#/usr/include/}" | tr '/' '_')
  add code "${name%.h}" < "$f"
done < <(find /usr/include -maxdepth 3 -name '*.h' -type f | LC_ALL=C sort)

# Man: technical prose, the Linux man-pages rendered to plain text.
while read -r f; do
  name=$(basename "$f" .gz)
  MANWIDTH=80 man --no-hyphenation --no-justification -l "$f" 2>/dev/null \
    | col -bx | add man "$name"
done < <(dpkg -L manpages manpages-dev | grep -E '/man[0-9]/.*\.gz$' | LC_ALL=C sort)

# Legal: licence texts and the machine-readable copyright files of every
# installed package (deduplicated by content: many packages ship the same).
for f in /usr/share/common-licenses/*; do
  [[ -f $f && ! -L $f ]] && add legal "license-$(basename "$f")" < "$f"
done
declare -A seen=()
while read -r f; do
  sum=$(md5sum < "$f" | cut -c1-32)
  [[ -n ${seen[$sum]:-} ]] && continue
  seen[$sum]=1
  add legal "copyright-$(basename "$(dirname "$f")")" < "$f"
done < <(find /usr/share/doc -maxdepth 2 -name copyright -type f | LC_ALL=C sort)

# Literature: the King James Bible and the fortune collections of verse,
# quotations and literature.
bible -l80 "Gen1:1-Rev22:21" 2>/dev/null | add lit kjv
for f in literature songs-poems love wisdom people art; do
  [[ -f /usr/share/games/fortunes/$f ]] && add lit "fortunes-$f" < "/usr/share/games/fortunes/$f"
done

trim public "$public_budget"
for d in code man legal lit; do trim "$d" "$domain_budget"; done

{
  printf '%-8s %10s %6s\n' domain bytes docs
  for d in public code man legal lit; do
    printf '%-8s %10s %6s\n' "$d" \
      "$(cat "$out.partial/$d"/*.txt | wc -c)" "$(ls "$out.partial/$d" | wc -l)"
  done
} > "$out.partial/SIZES"
rm -rf "$out"
mv "$out.partial" "$out"
cat "$out/SIZES"
