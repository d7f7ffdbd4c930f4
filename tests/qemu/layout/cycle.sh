# The cycle every layout test runs after building its layout:
# save, print the plan, wipe, recover, save again. $DISKS names the serials.
mkrescue layout save --out "$OUT/before.json"
mkrescue layout show --file "$OUT/before.json"
mkrescue recover --layout-only --dry-run --layout "$OUT/before.json" > "$OUT/plan.sh"
wipe_all $DISKS
mkrescue recover --layout-only --unattended --layout "$OUT/before.json" --state /tmp/recover-state ${RECOVER_ARGS:-}
# Mount again what was mounted (btrfs subvolumes are only seen through a mount).
if command -v after_recover >/dev/null 2>&1; then after_recover; fi
mkrescue layout save --out "$OUT/after.json"
finish
