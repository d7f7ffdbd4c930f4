# Test data on the e2e server (run in a chroot of it during provisioning):
# a few hundred MB with the things a restore gets wrong first: hard links,
# symlinks (relative, absolute, dangling), a sparse file, xattrs (user and
# security.capability), ACLs (access and default), owners without a passwd
# entry, setuid/sticky/0000 modes, a FIFO, a device node, old mtimes, long
# and deep paths, non-UTF-8 names and a newline in a name. On ext4 (/srv)
# and on xfs (/home).
set -euo pipefail
D=/srv/e2e
A=/home/alice
useradd -m -u 1000 -s /bin/bash alice
mkdir -p $D
# Bulk: incompressible and compressible data on both file systems.
head -c 96M /dev/urandom > $D/random-1.bin
head -c 32M /dev/urandom > $D/random-2.bin
head -c 64M /dev/urandom > $A/random-home.bin
cp -a /usr/lib/x86_64-linux-gnu $A/lib-copy
cp -a /usr/share/doc $D/doc-copy
mkdir $D/many
for i in $(seq 1 2000); do echo "small file $i" > $D/many/f$i; done
# Hard links, within and across directories.
ln $D/random-1.bin $D/hardlink-to-random-1
mkdir $D/sub
ln $D/random-1.bin $D/sub/hardlink-2
echo "linked text" > $A/hl-a
ln $A/hl-a $A/hl-b
# Symlinks.
ln -s random-2.bin $D/rel-link
ln -s /etc/hostname $D/abs-link
ln -s /does/not/exist $D/dangling-link
ln -s ../srv $D/sub/dir-link
# A sparse file: 512 MiB with three small extents.
truncate -s 512M $D/sparse.img
printf 'start' | dd of=$D/sparse.img conv=notrunc status=none
printf 'middle' | dd of=$D/sparse.img bs=1M seek=256 conv=notrunc status=none
printf 'end' | dd of=$D/sparse.img bs=1M seek=511 conv=notrunc status=none
# xattrs (attr(5)): user.*, binary values, on a directory, and a file
# capability (security.capability v2, cap_net_raw+ep, as setcap writes it).
setfattr -n user.e2e.note -v "hello world" $D/random-2.bin
setfattr -n user.e2e.bin -v 0x00ff10 $A/hl-a
setfattr -n user.e2e.dir -v dir $D/sub
echo '#!/bin/sh' > $D/cap-file
setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 $D/cap-file
# ACLs (acl(5)): access and default ACLs, on ext4 and xfs.
echo acl > $D/acl-file
setfacl -m u:1001:rw,g:1002:r $D/acl-file
mkdir $D/acl-dir
setfacl -d -m u:1001:rwx $D/acl-dir
setfacl -m u:1001:rx $D/acl-dir
echo secret > $A/acl-home
setfacl -m u:1002:r $A/acl-home
# Owners and modes.
echo owned > $D/owned-1001
chown 1001:1002 $D/owned-1001
chown -h 1001:1002 $D/rel-link
echo suid > $D/setuid-file
chmod 4755 $D/setuid-file
echo sgid > $D/setgid-file
chmod 2750 $D/setgid-file
mkdir $D/sticky
chmod 1777 $D/sticky
echo none > $D/mode-0000
chmod 0000 $D/mode-0000
chown -R alice:alice $A
# Special files.
mkfifo $D/fifo
mknod $D/null-copy c 1 3
: > $D/empty-file
mkdir $D/empty-dir
# Old mtimes (also on a symlink).
echo old > $D/old-file
touch -d '2001-02-03 04:05:06' $D/old-file
touch -h -d '2002-03-04 05:06:07' $D/abs-link
# Long and deep paths (over tar's 100-byte name and 155-byte prefix).
long=$(printf 'n%.0s' $(seq 1 200))
echo long > "$D/$long"
deep=$D/deep
for i in $(seq 1 40); do deep=$deep/level-$i; done
mkdir -p "$deep"
echo deep > "$deep/file"
# Names: Latin-1 (not UTF-8), UTF-8, spaces, a backslash, a newline.
echo latin1 > "$D/$(printf 'caf\351')"
echo utf8 > "$D/日本語 ファイル"
echo space > "$D/with space"
echo backslash > "$D/back\\slash"
echo newline > "$D/$(printf 'new\nline')"
sync
du -sh $D $A
