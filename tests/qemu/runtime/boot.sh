#!/bin/sh
# Boot a rescue image built by `mkrescue --output initramfs --out DIR` the
# way `cargo xtask qemu runtime` does, for looking around by hand:
#   tests/qemu/runtime/boot.sh DIR [PORT] [extra kernel parameters...]
# then: ssh -p PORT -o StrictHostKeyChecking=no root@127.0.0.1
# A 64 MiB scratch disk (serial MKRT0001) is created next to the image.
# Quit QEMU with `poweroff` inside, or Ctrl-A X on the serial console.
set -eu
dir=${1:?usage: boot.sh DIR [PORT] [kernel parameters...]}
port=${2:-10022}
shift; [ $# -gt 0 ] && shift
disk=$dir/scratch.img
[ -e "$disk" ] || truncate -s 64M "$disk"
exec qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -nographic -no-reboot \
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" \
    -append "console=ttyS0 panic=-1 loglevel=4 $*" \
    -drive "file=$disk,if=none,id=d1,format=raw,cache=unsafe" \
    -device virtio-blk-pci,drive=d1,serial=MKRT0001 \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:6d:6b:01
