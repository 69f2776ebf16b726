#!/usr/bin/env bash
# Packs what a GPU machine without Debian's packages needs to build cpipc into
# one folder (default .deps/, git-ignored; name it in the device tool's
# `carry`): CLI11 and nlohmann-json headers, GoogleTest sources. Run here,
# after scripts/setup.sh.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dest=${1:-$repo/.deps}
rm -rf "$dest"
mkdir -p "$dest/include"
cp -r /usr/include/CLI "$dest/include/"
cp -r /usr/include/nlohmann "$dest/include/"
cp -r /usr/src/googletest "$dest/googletest"
echo "packed $(du -sh "$dest" | cut -f1) into $dest"
