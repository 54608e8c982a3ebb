#!/usr/bin/env bash
# Build the lab's initramfs from installed packages only: busybox-static, the running
# distribution's kernel modules for virtio PCI, 9p over virtio and overlayfs, and the
# guest's first-stage init (init.sh beside this file).
#   build_initramfs.sh KERNEL_VERSION OUTPUT.cpio.gz
set -euo pipefail
kver=$1
out=$2
here="$(cd "$(dirname "$0")" && pwd)"
busybox=$(command -v busybox)
if ! (ldd "$busybox" 2>&1 || true) | grep -q "not a dynamic"; then
  echo "lab: $busybox is not statically linked (install busybox-static)" >&2
  exit 1
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,lower,rw,newroot,out,modules}
cp "$busybox" "$stage/bin/busybox"
for applet in sh mount umount mkdir insmod switch_root cat echo sleep poweroff ln grep; do
  ln -s busybox "$stage/bin/$applet"
done
# The modules in load order (modprobe resolves the dependencies; a module loaded twice
# by two chains is listed once).
: > "$stage/modules/order"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  name=$(basename "$ko")
  case "$ko" in
    *.ko) cp "$ko" "$stage/modules/$name" ;;
    *.ko.xz) xz -dc "$ko" > "$stage/modules/${name%.xz}"; name=${name%.xz} ;;
    *.ko.zst) zstd -qdc "$ko" > "$stage/modules/${name%.zst}"; name=${name%.zst} ;;
    *) echo "lab: unexpected module file $ko" >&2; exit 1 ;;
  esac
  echo "$name" >> "$stage/modules/order"
done
install -m 0755 "$here/init.sh" "$stage/init"
# busybox's own cpio: nothing beyond busybox-static is needed to pack the archive
(cd "$stage" && find . | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 > "$out"
