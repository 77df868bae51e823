#!/usr/bin/env bash
# Regenerates the protobuf-c code for portcullis.proto. Run after editing the
# .proto and commit the result (CI does not run protoc-c; the before-stop hook
# checks the committed output matches).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install protobuf-c-compiler" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
protoc-c --proto_path="$here" --c_out="$tmp" "$here/portcullis.proto"
cp "$tmp/portcullis.pb-c.c" "$here/portcullis.pb-c.c"
cp "$tmp/portcullis.pb-c.h" "$here/include/portcullis.pb-c.h"
echo "regenerated portcullis.pb-c.{c,h}"
