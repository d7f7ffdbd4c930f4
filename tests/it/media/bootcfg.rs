//! Snapshots of the boot menus every medium shows (templates/*.tera), so a
//! change to what an admin sees at boot shows up as a diff in review.

use mkrescue::output::bootcfg::{self, Menu, MenuSpec, Paths, Syslinux};

fn spec(test: bool) -> MenuSpec<'static> {
    MenuSpec {
        hostname: "db1",
        os: "Debian GNU/Linux 12 (bookworm)",
        kernel_version: "6.1.0-56-amd64",
        date: Some("2026-11-22"),
        timeout: 30,
        test_rescue_default: test,
    }
}

fn paths() -> Paths {
    Paths {
        kernel: "/boot/vmlinuz".into(),
        initrds: vec!["/boot/initrd.img".into()],
    }
}

#[test]
fn grub_efi() {
    let m = Menu::new(&spec(false));
    insta::assert_snapshot!(bootcfg::grub(&m, &paths(), "EFI (ISO)").unwrap());
}

#[test]
fn isolinux() {
    let m = Menu::new(&spec(false));
    insta::assert_snapshot!(bootcfg::syslinux(&m, &paths(), Syslinux::Isolinux).unwrap());
}

#[test]
fn syslinux_usb() {
    let m = Menu::new(&spec(false));
    let out = bootcfg::syslinux(&m, &paths(), Syslinux::Syslinux).unwrap();
    assert!(out.contains("COM32 chain.c32\n\tAPPEND hd1"), "{out}");
}

#[test]
fn pxelinux_two_initrds() {
    let m = Menu::new(&spec(false));
    let p = Paths {
        kernel: "mkrescue/base/0123.vmlinuz".into(),
        initrds: vec![
            "mkrescue/base/0123.img".into(),
            "mkrescue/hosts/db1/host.img".into(),
        ],
    };
    insta::assert_snapshot!(bootcfg::syslinux(&m, &p, Syslinux::Pxelinux).unwrap());
}

#[test]
fn ipxe_two_initrds() {
    let m = Menu::new(&spec(false));
    let p = Paths {
        kernel: "vmlinuz".into(),
        initrds: vec!["base.img".into(), "host.img".into()],
    };
    insta::assert_snapshot!(bootcfg::ipxe(&m, &p).unwrap());
}

#[test]
fn test_mode_boots_rescue_serial_and_powers_off() {
    let m = Menu::new(&spec(true));
    let g = bootcfg::grub(&m, &paths(), "EFI").unwrap();
    assert!(g.contains("set default=rescue-serial"), "{g}");
    assert!(g.contains("set timeout=1"), "{g}");
    let s = bootcfg::syslinux(&m, &paths(), Syslinux::Isolinux).unwrap();
    assert!(s.contains("DEFAULT rescue-serial"), "{s}");
    assert!(s.contains("TIMEOUT 10\n"), "{s}");
    assert!(
        s.contains("APPEND console=ttyS0,115200 console=tty0 panic=-1 mkrescue.after=poweroff"),
        "{s}"
    );
    // Only the default entry powers off.
    assert_eq!(s.matches("mkrescue.after=poweroff").count(), 1, "{s}");
}

#[test]
fn embedded_grub_searches_for_the_tag() {
    let e = bootcfg::grub_embedded("/mkrescue/abc.tag").unwrap();
    assert!(e.contains("search --no-floppy --set=root --file /mkrescue/abc.tag"));
    assert!(e.contains("configfile $prefix/grub.cfg"));
}

#[test]
fn quotes_in_hostname_cannot_break_the_config() {
    let m = Menu::new(&MenuSpec {
        hostname: "evil' }\nmenuentry x {",
        ..spec(false)
    });
    let g = bootcfg::grub(&m, &paths(), "EFI").unwrap();
    assert!(!g.contains("evil'"), "{g}");
    // The newline became a space: the text stays inside the comment line.
    assert_eq!(
        g.lines().filter(|l| l.starts_with("menuentry")).count(),
        7,
        "{g}"
    );
}
