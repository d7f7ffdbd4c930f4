# Files that change between the full backup and the incremental one on the
# e2e server (phase "before"), on ext4 (/srv/chain) and on xfs
# (/home/chain): `change.sh seed` before the full backup, `change.sh
# change` after it. The changes are every kind an incremental must carry
# so that the chain restores the newest tree exactly; the harness compares
# the recovered server with the list taken after them. The provisioned
# test data (testdata.sh, /srv/e2e and /home/alice) stays as it was.
set -euo pipefail
S=/srv/chain
H=/home/chain
case ${1:-} in
seed)
    # Afresh, also when `--from before` runs on a server whose earlier
    # before already seeded and changed them (ln would find its links).
    rm -rf $S $H
    mkdir -p $S/many $S/dir-a/sub $S/gone-dir/deeper $H
    for i in $(seq 1 200); do echo "chain file $i" > $S/many/f$i; done
    for i in 1 2 3; do echo "in a directory that goes" > $S/gone-dir/deeper/g$i; done
    head -c 16M /dev/urandom > $S/big.bin
    head -c 4M /dev/urandom > $H/home.bin
    echo "dir a" > $S/dir-a/sub/file
    echo old > $S/old-file
    touch -d '2003-04-05 06:07:08' $S/old-file
    echo meta > $S/meta-file
    setfattr -n user.chain.note -v before $S/big.bin
    echo acl > $S/acl-file
    setfacl -m u:1001:r $S/acl-file
    echo linked > $H/hl-a
    ln $H/hl-a $H/hl-b
    ln -s many/f1 $S/link
    echo "a file that becomes a directory" > $S/to-dir
    mkdir $S/to-link
    chown -R 1000:1000 $H
    ;;
change)
    # The one-second rule (src/backup/incremental.rs): a file changed
    # within the second before a backup is stored again by the next one.
    # Wait it out, so that the unchanged files are really left out.
    sleep 1.1
    # Content: appended, rewritten in place with the same size and mtime
    # moved back (only ctime tells), new files and directories.
    echo "changed after the full backup" >> $S/many/f1
    m=$(stat -c %Y $S/many/f5)
    printf 'CHANGED' | dd of=$S/many/f5 conv=notrunc status=none
    touch -d "@$m" $S/many/f5
    head -c 8M /dev/urandom > $H/new-after-full.bin
    mkdir -p $S/new-dir/sub
    for i in $(seq 1 50); do echo "new file $i" > $S/new-dir/sub/n$i; done
    # Deletions: files, a whole directory tree.
    rm $S/many/f2 $S/many/f3
    rm -r $S/gone-dir
    # Renames: a file with an old mtime (it keeps its mtime; only its
    # name is new), a directory with its contents.
    mv $S/old-file $S/old-file-renamed
    mv $S/dir-a $S/dir-b
    # Metadata only (ctime changes, content not): mode, owner, an xattr,
    # an ACL, a new hard link to an old file, a symlink's target.
    chmod 0600 $S/meta-file
    chown 1001:1002 $S/many/f4
    setfattr -n user.chain.note -v after $S/big.bin
    setfacl -m u:1002:rw $S/acl-file
    ln $H/hl-a $H/hl-c
    ln -sfn many/f6 $S/link
    # Type changes: a file replaced by a directory, a directory by a
    # symlink.
    rm $S/to-dir
    mkdir $S/to-dir
    echo inside > $S/to-dir/inside
    rmdir $S/to-link
    ln -s many $S/to-link
    chown -R 1000:1000 $H
    ;;
*)
    echo "usage: change.sh seed|change" >&2
    exit 2
    ;;
esac
sync
