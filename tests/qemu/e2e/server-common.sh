# What provision.sh and provision-sdboot.sh both do to the server's root
# $T (sourced by them, after common.sh).

# mkrescue's configuration, the timers kept from firing and the e2e phase
# runner; before the system's own boot setup.
server_setup() {
    # mkrescue's configuration (the package, installed below, keeps it: it is
    # a conffile the admin changed).
    mkdir -p "$T"/etc/mkrescue
    cp /tmp/in/e2e/local.toml "$T"/etc/mkrescue/local.toml
    # The package's timers stay enabled (before.sh checks that systemd lists
    # them), but never fire during the test: a daily backup or layout check
    # that starts in the middle of a phase would write to the backup disk
    # that every variant recovers from.
    for t in mkrescue-backup mkrescue-check; do
        mkdir -p "$T"/etc/systemd/system/$t.timer.d
        printf '# written by tests/qemu/e2e/provision.sh\n[Timer]\nOnCalendar=\nOnCalendar=2099-01-01\nPersistent=false\n' \
            > "$T"/etc/systemd/system/$t.timer.d/e2e.conf
    done

    # The e2e phase runner: at every boot, runs the phase script from the IN
    # disk if one is attached (tests/qemu/e2e/phase.sh).
    cp /tmp/in/e2e/phase.sh "$T"/usr/local/sbin/e2e-phase && chmod 0755 "$T"/usr/local/sbin/e2e-phase
    cp /tmp/in/e2e/e2e-phase.service "$T"/etc/systemd/system/
    mkdir -p "$T"/etc/systemd/system/multi-user.target.wants
    ln -sf /etc/systemd/system/e2e-phase.service "$T"/etc/systemd/system/multi-user.target.wants/e2e-phase.service
}

# mkrescue's package into the chroot of $T (dev, proc, sys and run mounted).
server_package() {
    # mkrescue from its Debian package, as an admin installs it. Its
    # dependencies are in the rootfs (rootfs.rs); postinst enables the two
    # timers (no systemd runs in the chroot, so nothing is started).
    t0=$(date +%s)
    cp /tmp/in/mkrescue.deb "$T"/tmp/mkrescue.deb
    chroot "$T" dpkg -i --force-confold /tmp/mkrescue.deb
    rm "$T"/tmp/mkrescue.deb
    echo "MKR-E2E-TIME package $(( $(date +%s) - t0 ))"
}

# Test data, then the list of every test file into $OUT (chroot of $T).
server_testdata() {
    t0=$(date +%s)
    cp /tmp/in/e2e/testdata.sh /tmp/in/e2e/list.sh "$T"/tmp/
    chroot "$T" bash /tmp/testdata.sh
    chroot "$T" bash /tmp/list.sh /tmp/list-provision /srv/e2e /home
    mv "$T"/tmp/list-provision.* $OUT/
    rm "$T"/tmp/testdata.sh "$T"/tmp/list.sh
    echo "MKR-E2E-TIME testdata $(( $(date +%s) - t0 ))"
}
