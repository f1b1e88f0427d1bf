#!/usr/bin/env bash
# Prints the path of a directory on a reflink-capable filesystem, making one
# if needed: as root on Linux, an XFS image (mkfs.xfs -m reflink=1) mounted
# through a loop device. Idempotent: a mounted volume is reused. Prints
# nothing (and exits 0) when it cannot be made here, saying why on stderr.
#   scripts/reflink-volume.sh [SIZE]   (default 8G, a sparse file)
set -euo pipefail
size="${1:-8G}"
img="${PRENV_REFLINK_IMAGE:-/var/tmp/prenv-reflink.img}"
mnt="${PRENV_REFLINK_MOUNT:-/mnt/prenv-reflink}"

if [ "$(uname)" = Darwin ]; then
  # APFS clones files with clonefile(2): any directory will do.
  d="${TMPDIR:-/tmp}/prenv-reflink"; mkdir -p "$d"; echo "$d"; exit 0
fi
if mountpoint -q "$mnt" 2>/dev/null; then echo "$mnt"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "reflink-volume: not root, so no loop-mounted XFS; clones will be plain copies (see docs/reflink.md)" >&2; exit 0
fi
if ! command -v mkfs.xfs >/dev/null; then
  echo "reflink-volume: mkfs.xfs is missing (apt-get install xfsprogs); clones will be plain copies" >&2; exit 0
fi
mkdir -p "$mnt"
if [ ! -f "$img" ]; then
  truncate -s "$size" "$img"
  mkfs.xfs -q -m reflink=1 "$img"
fi
if ! mount -o loop "$img" "$mnt" 2>/tmp/prenv-reflink-mount.err; then
  echo "reflink-volume: cannot loop-mount $img: $(cat /tmp/prenv-reflink-mount.err); clones will be plain copies" >&2; exit 0
fi
chmod 755 "$mnt"
echo "$mnt"
