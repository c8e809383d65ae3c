#!/bin/sh
# rootfs.sh BINARY DEST: assembles the Gatehouse image's root filesystem in DEST/rootfs:
# the binary, the C libraries it links (glibc, libgcc), a non-root user (65532), an empty
# /data owned by it and a sticky /tmp. The Dockerfile's build stage runs it; scripts/test runs
# it on the binary it built, to build the same image offline (no base image to pull).
set -eu
binary=$1
root=$2/rootfs
rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/data" "$root/tmp"
cp "$binary" "$root/usr/local/bin/gatehouse"
# Every shared library, and the dynamic loader, at the path the binary looks for it.
ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u |
    while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
printf 'root:x:0:0:root:/root:/sbin/nologin\ngatehouse:x:65532:65532:gatehouse:/data:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\ngatehouse:x:65532:\n' >"$root/etc/group"
chown 65532:65532 "$root/data"
chmod 0755 "$root/data"
chmod 1777 "$root/tmp"
