# The backup disk on md RAID1 + LVM (issue 5): a backup made here onto an
# ext4 LV on a RAID1 array, everything taken down as after a boot of the
# rescue system (nothing assembled), then `mkrescue restore` with only the
# location record: it must assemble the array, activate the volume group,
# mount the file system by UUID and restore an identical tree. A second
# array (the old system's, say) on DISK3 + DISK4 must not stay assembled:
# recover could not partition its disks.
. /tmp/layout/common.sh
set -x
D1=$(disk DISK1); D2=$(disk DISK2); D3=$(disk DISK3); D4=$(disk DISK4)
mdadm --create /dev/md1 --run --level=1 --raid-devices=2 --metadata=1.2 \
    --name=oldsys:1 "$D3" "$D4"
mkfs.ext4 -q -L oldroot /dev/md1
mdadm --stop /dev/md1
FSUUID=6d6b7265-7363-7565-2d6d-646c766d6261

mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
    --name=backup:0 "$D1" "$D2"
pvcreate -q /dev/md0
vgcreate -q bk /dev/md0
lvcreate -q -y -n store -L 200M bk
mkfs.ext4 -q -L bkstore -U "$FSUUID" /dev/bk/store
mkdir -p /mnt/bk
mount /dev/bk/store /mnt/bk

# A small tree with what a restore must keep: modes, owners, a hard link,
# a symlink, a sparse file, an empty file, a name with a space.
SRC=/tmp/src
mkdir -p "$SRC/etc/app" "$SRC/var/lib/db" "$SRC/home/u"
i=0
while [ $i -lt 50 ]; do
    head -c $((i * 997 + 1)) /dev/urandom > "$SRC/var/lib/db/f$i"
    i=$((i + 1))
done
echo "port = 22" > "$SRC/etc/app/app.conf"
chmod 0640 "$SRC/etc/app/app.conf"
chown 123:45 "$SRC/etc/app/app.conf"
chmod 4755 "$SRC/var/lib/db/f1"
ln "$SRC/var/lib/db/f2" "$SRC/home/u/hardlink"
ln -s ../../etc/app/app.conf "$SRC/home/u/link"
: > "$SRC/home/u/empty"
echo spaced > "$SRC/home/u/a name"
dd if=/dev/urandom of="$SRC/var/lib/db/sparse" bs=4096 count=1 seek=1000 2>/dev/null

mkdir -p /mnt/bk/backups   # mkrescue never creates a backup target
mkrescue backup --root "$SRC" --target file:///mnt/bk/backups --json > "$OUT/backup.json"

# What `mkrescue --output` records for a backup directory on this file
# system (src/backup/source.rs, Recorded): the rescue image has no record
# of its own here, the test host has no md or LVM to make one from.
mkdir -p /etc/mkrescue
cat > /etc/mkrescue/backup.json <<JSON
{"mkrescue_backup_location":1,"method":"archive","target":"file:///srv/backups",
 "borg_repo":null,"ssh_options":[],"age_recipient":null,
 "filesystem":{"uuid":"$FSUUID","label":"bkstore","fstype":"ext4","path":"backups",
  "host_mountpoint":"/srv","host_source":"/dev/mapper/bk-store"}}
JSON

# The rescue system after a boot: nothing assembled, nothing active.
umount /mnt/bk
vgchange -an bk
mdadm --stop /dev/md0

mkdir -p /tmp/restored
rc=0
mkrescue restore -v --to /tmp/restored --json > "$OUT/restore.json" 2> "$OUT/restore.err" || rc=$?
cat "$OUT/restore.err" "$OUT/restore.json"
[ "$rc" = 0 ]

# same A B: the two files are equal (no diff(1) in the rescue system).
same() {
    if [ "$(cat "$1")" != "$(cat "$2")" ]; then
        echo "$1 and $2 differ:"; cat "$1"; echo ---; cat "$2"
        return 1
    fi
}

# The same tree: content, modes, owners, links, sizes (the sparse file's
# apparent size too).
list() {
    (cd "$1" && find . -printf '%p %y %m %U:%G %s %l\n' | LC_ALL=C sort)
}
list "$SRC" > "$OUT/src.list"
list /tmp/restored > "$OUT/restored.list"
same "$OUT/src.list" "$OUT/restored.list"
(cd "$SRC" && find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2) > "$OUT/src.sha"
(cd /tmp/restored && find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2) > "$OUT/restored.sha"
same "$OUT/src.sha" "$OUT/restored.sha"
[ "$(stat -c %i /tmp/restored/var/lib/db/f2)" = "$(stat -c %i /tmp/restored/home/u/hardlink)" ]
cat /proc/mdstat > "$OUT/mdstat"
cat "$OUT/mdstat"
# The old system's array was assembled while looking, then stopped.
for m in /sys/block/md*/md/array_state; do
    [ -e "$m" ] || continue
    md=${m#/sys/block/}; md=${md%%/*}
    if ls /sys/block/$md/slaves | grep -q -e "${D3##*/}" -e "${D4##*/}"; then
        echo "$md on $D3/$D4 is still assembled"; exit 1
    fi
done
lvm lvs --noheadings -o lv_name,lv_active bk > "$OUT/lvs"
finish
