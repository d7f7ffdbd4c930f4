# Prints the roots list.sh walks on the e2e server: every local file system
# but the backup disk (/, /boot when separate, /home, /boot/efi when
# there), and a btrfs subvolume nested in / (the dracut-sdboot server's
# /srv/e2e), which `find -xdev` would not enter from /: a device number
# of its own.
set -eu
roots="/"
for m in /boot /home /boot/efi; do
    if mountpoint -q "$m"; then roots="$roots $m"; fi
done
if [ -d /srv/e2e ] && [ "$(stat -f -c %T /srv/e2e)" = btrfs ] && [ "$(stat -c %i /srv/e2e)" = 256 ]; then
    roots="$roots /srv/e2e"
fi
echo "$roots"
