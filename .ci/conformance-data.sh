#!/usr/bin/env bash
# Fetches the conformance corpus that is not committed (its licences vary) into
# test-data/conformance/fetched/, from registry packages pinned by sha256:
#   - PyPI sdist pillow 11.3.0: Pillow's test images, real-world files written by others
#     (JPEG, GIF, WebP), into fetched/pillow/;
#   - Debian golang-golang-x-image-dev 0.5.0-1: libwebp-encoded WebP test files of Go's
#     x/image, into fetched/go-webp/.
# With --committed it also re-derives the committed suites (pngsuite/, bmpsuite/) from their
# packages and fails if they differ by a byte.
# Idempotent: a stamp file skips work already done. Needs python3 -m pip, apt-get (as root,
# for its update on a fresh machine) and dpkg-deb.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="$root/test-data/conformance"
out="$data/fetched"
work="$root/target/conformance-download"
mkdir -p "$out" "$work"

PILLOW=pillow-11.3.0.tar.gz
PILLOW_SHA256=3828ee7586cd0b2091b6209e5ad53e20d0649bbe87164a459d0676e035e8f523
GOIMAGE=golang-golang-x-image-dev_0.5.0-1_all.deb
GOIMAGE_SHA256=f0920a91f9184bcd579af7bfba72266a65ff0b1b9b5a73cd3ffeb03d6b271e9b
SIXEL=libsixel-examples_1.10.3-3_all.deb
SIXEL_SHA256=0829a733103696aeaedd2aeb5b3971b58beba943b59b47d5ce8f9618decefefc

verify() { # file sha256
    echo "$2  $1" | sha256sum -c --quiet - || { echo "checksum mismatch: $1" >&2; exit 1; }
}

fetch_pillow() {
    if [ ! -f "$work/$PILLOW" ]; then
        python3 -m pip download -q --no-deps --no-binary :all: "pillow==11.3.0" -d "$work"
    fi
    verify "$work/$PILLOW" "$PILLOW_SHA256"
}

fetch_deb() { # package=version file sha256
    if [ ! -f "$work/$2" ]; then
        # A fresh machine's package lists may be missing or old: update once and retry.
        (cd "$work" && apt-get download -q "$1" >/dev/null 2>&1) || {
            apt-get update -qq && (cd "$work" && apt-get download -q "$1" >/dev/null)
        } || {
            echo "apt-get download $1 failed" >&2
            exit 1
        }
    fi
    verify "$work/$2" "$3"
}

stamp="$out/.stamp"
want="$PILLOW_SHA256 $GOIMAGE_SHA256"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$out/pillow" "$out/go-webp"
    mkdir -p "$out/pillow" "$out/go-webp"
    fetch_pillow
    tar -xzf "$work/$PILLOW" -C "$work" pillow-11.3.0/Tests/images
    find "$work/pillow-11.3.0/Tests/images" -maxdepth 1 -type f \
        \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.gif' -o -iname '*.webp' \) \
        -exec cp {} "$out/pillow/" \;
    fetch_deb golang-golang-x-image-dev=0.5.0-1 "$GOIMAGE" "$GOIMAGE_SHA256"
    rm -rf "$work/goimage" && dpkg-deb -x "$work/$GOIMAGE" "$work/goimage"
    cp "$work"/goimage/usr/share/gocode/src/golang.org/x/image/testdata/*.webp "$out/go-webp/"
    echo "$want" >"$stamp"
fi
echo "conformance data: $(ls "$out/pillow" | wc -l) Pillow files, $(ls "$out/go-webp" | wc -l) Go WebP files in $out"

if [ "${1:-}" = "--committed" ]; then
    fetch_pillow
    tar -xzf "$work/$PILLOW" -C "$work" pillow-11.3.0/Tests/images/bmp
    for d in g b q; do
        diff -r "$work/pillow-11.3.0/Tests/images/bmp/$d" "$data/bmpsuite/$d"
    done
    fetch_deb libsixel-examples=1.10.3-3 "$SIXEL" "$SIXEL_SHA256"
    rm -rf "$work/sixel" && dpkg-deb -x "$work/$SIXEL" "$work/sixel"
    for f in "$work"/sixel/usr/share/doc/libsixel-examples/examples/images/pngsuite/*/*.png; do
        cmp "$f" "$data/pngsuite/$(basename "$f")"
    done
    [ "$(ls "$data"/pngsuite/*.png | wc -l)" -eq 174 ]
    echo "committed suites match their packages"
fi
