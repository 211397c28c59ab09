#!/bin/sh
# Builds a tiny Linux guest for testing hydra with a real kernel of its
# own: Debian's kernel, its 9p, virtio, ext4 and fuse modules and busybox
# in an initramfs (the 9P client tests, and power cuts under a mount). The guest shares the host's root read-only (virtio 9p) and
# chroots into it, so it runs the host's own git, tar, sqlite3 and fio.
#
# Usage: build.sh OUTDIR   (writes OUTDIR/vmlinuz and OUTDIR/initrd.img)
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ "$out/initrd.img" -nt "$here/init" ] &&
    [ "$out/initrd.img" -nt "$here/build.sh" ]; then
    exit 0
fi
for tool in busybox cpio qemu-system-x86_64; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)
[ -n "$pkg" ] || { echo "build.sh: no linux-image package found" >&2; exit 1; }
apt-get download "$pkg" >/dev/null 2>&1 || { echo "build.sh: cannot download $pkg" >&2; exit 1; }
dpkg-deb -x ./*.deb kernel
kver=$(ls kernel/lib/modules)
busybox depmod -b "$work/kernel" "$kver"
root=initramfs
mkdir -p $root/bin $root/proc $root/sys $root/dev $root/host $root/lib/modules/"$kver"
cp "$(command -v busybox)" $root/bin/busybox
cp "$here/init" $root/init
chmod +x $root/init
moddir=kernel/lib/modules/$kver
for m in 9p 9pnet_fd 9pnet_virtio virtio_net virtio_pci virtio_blk crc32c_generic ext4 fuse; do
    line=$(grep -E "/$m\.ko(\.xz)?:" "$moddir/modules.dep")
    for f in $(echo "$line" | tr -d ':'); do
        mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
        cp "$moddir/$f" "$root/lib/modules/$kver/$f"
    done
done
cp "$moddir/modules.dep" "$root/lib/modules/$kver/"
mkdir -p "$out"
(cd $root && find . | cpio -o -H newc --quiet) | gzip -1 > "$out/initrd.img.tmp"
cp kernel/boot/vmlinuz-* "$out/vmlinuz"
mv "$out/initrd.img.tmp" "$out/initrd.img"
