//! Boot loader configurations rendered from `templates/` (tera): GRUB (EFI on
//! ISO/USB and netboot), isolinux/syslinux/pxelinux, and iPXE.
//!
//! Owns the boot menu every medium shows: boot the local disk (the default,
//! after a timeout, so a medium left in a machine never recovers by
//! accident), a rescue shell, recover (asking), recover automatically, each
//! also with the serial console. Hands rendered text to the medium writers,
//! which decide the paths of kernel and initrds.
//!
//! The templates are compiled into the binary (`include_str!`) because
//! mkrescue is installed as one file; `templates/` is where they are edited.

use anyhow::{Context, Result};
use serde::Serialize;

const GRUB: &str = include_str!("../../templates/grub.cfg.tera");
const GRUB_EMBEDDED: &str = include_str!("../../templates/grub-embedded.cfg.tera");
const SYSLINUX: &str = include_str!("../../templates/syslinux.cfg.tera");
const IPXE: &str = include_str!("../../templates/ipxe.tera");

/// The serial console of the `(serial console)` entries: kernel messages and
/// a shell on both the first serial port and the screen (kernel
/// Documentation/admin-guide/serial-console.rst: the last `console=` becomes
/// /dev/console; the rescue init starts a shell on each).
pub const SERIAL_CONSOLES: &str = "console=ttyS0,115200 console=tty0";
/// The screen-only entries.
pub const SCREEN_CONSOLE: &str = "console=tty0";

/// One menu entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Short id, used by `set default=` and `DEFAULT`.
    pub id: String,
    pub label: String,
    /// Kernel command line (empty for the local disk entry).
    pub cmdline: String,
    /// Boot the local disk instead of the rescue kernel.
    pub local: bool,
}

/// The boot menu of one medium, independent of the boot loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// First line of every config and the menu title: what this medium is.
    pub title: String,
    pub entries: Vec<Entry>,
    /// Id of the entry booted after the timeout.
    pub default: String,
    pub timeout: u32,
}

/// What the menu is built from.
#[derive(Debug, Clone)]
pub struct MenuSpec<'a> {
    pub hostname: &'a str,
    pub os: &'a str,
    pub kernel_version: &'a str,
    /// `YYYY-MM-DD` the admin dated the build with (`SOURCE_DATE_EPOCH`
    /// or `build.source_date_epoch`); `None` with the built-in epoch,
    /// whose date would say nothing about when the medium was made.
    pub date: Option<&'a str>,
    /// Seconds before the default entry (the local disk) boots.
    pub timeout: u32,
    /// Test builds only: boot the rescue shell on the serial console after
    /// one second and power off once it is ready, so QEMU exits by itself.
    pub test_rescue_default: bool,
}

impl Menu {
    pub fn new(spec: &MenuSpec) -> Menu {
        let built = spec
            .date
            .map(|d| format!(", built {d}"))
            .unwrap_or_default();
        let title = clean(&format!(
            "mkrescue rescue system of {} ({}, kernel {}{built})",
            spec.hostname, spec.os, spec.kernel_version
        ));
        let mut entries = vec![Entry {
            id: "local".into(),
            label: "Boot from local disk".into(),
            cmdline: String::new(),
            local: true,
        }];
        let kinds = [
            ("rescue", "Rescue shell", ""),
            ("recover", "Recover (interactive)", "mkrescue.recover=ask"),
            (
                "recover-auto",
                "Recover automatically (ERASES the disks, no questions)",
                "mkrescue.recover=auto",
            ),
        ];
        for (id, label, extra) in kinds {
            for serial in [false, true] {
                let consoles = if serial {
                    SERIAL_CONSOLES
                } else {
                    SCREEN_CONSOLE
                };
                let mut cmdline = consoles.to_string();
                if !extra.is_empty() {
                    cmdline.push(' ');
                    cmdline.push_str(extra);
                }
                let id = if serial {
                    format!("{id}-serial")
                } else {
                    id.to_string()
                };
                entries.push(Entry {
                    id,
                    label: if serial {
                        format!("{label} - serial console ttyS0")
                    } else {
                        label.to_string()
                    },
                    cmdline,
                    local: false,
                });
            }
        }
        let (default, timeout) = if spec.test_rescue_default {
            let e = entries
                .iter_mut()
                .find(|e| e.id == "rescue-serial")
                .expect("the rescue-serial entry is built above");
            // panic=-1: a kernel panic reboots at once, which -no-reboot
            // turns into QEMU exiting, so a broken image fails fast.
            e.cmdline.push_str(" panic=-1 mkrescue.after=poweroff");
            ("rescue-serial".to_string(), 1)
        } else {
            ("local".to_string(), spec.timeout)
        };
        Menu {
            title,
            entries,
            default,
            timeout,
        }
    }

    /// Test builds only (`--test-boot-entry ID`): entry `id` boots after one
    /// second and the rescue system powers off when it is done (after the
    /// ready marker, or after recover with `mkrescue.recover=auto`), so a
    /// VM test needs no keyboard and QEMU exits by itself.
    pub fn set_test_default(&mut self, id: &str) -> Result<()> {
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|e| !e.local)
            .map(|e| e.id.clone())
            .collect();
        let Some(e) = self.entries.iter_mut().find(|e| e.id == id && !e.local) else {
            return Err(crate::error::fail(
                crate::error::Code::Usage,
                format!(
                    "test boot entry {id} (--test-boot-entry, output.test_boot_entry): no such rescue entry; one of {}",
                    ids.join(", ")
                ),
            ));
        };
        // The serial port becomes /dev/console (the last console=,
        // serial-console.rst), so everything init and an unattended recover
        // print reaches the test's serial log, not only the screen.
        if let Some(rest) = e.cmdline.strip_prefix(SERIAL_CONSOLES) {
            e.cmdline = format!("console=tty0 console=ttyS0,115200{rest}");
        }
        // panic=-1: a kernel panic reboots at once, which -no-reboot turns
        // into QEMU exiting, so a broken image fails fast.
        e.cmdline.push_str(" panic=-1 mkrescue.after=poweroff");
        self.default = id.to_string();
        self.timeout = 1;
        Ok(())
    }
}

/// Text that goes between single quotes (GRUB) or to the end of a line
/// (syslinux, iPXE): no quotes, no control characters.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '\'' || c == '"' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Paths of the kernel and initrds as the boot loader sees them.
#[derive(Debug, Clone)]
pub struct Paths {
    pub kernel: String,
    /// Loaded in order; the kernel unpacks them one over the other.
    pub initrds: Vec<String>,
}

/// How the syslinux family boots the local disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syslinux {
    /// ISOLINUX: `LOCALBOOT 0x80` boots the first hard disk (syslinux
    /// doc/isolinux.txt / wiki "Config": type = BIOS drive number).
    Isolinux,
    /// SYSLINUX on a USB stick, which is itself the first BIOS disk: chain to
    /// the second one (chain.c32 `hd1`).
    Syslinux,
    /// PXELINUX: `LOCALBOOT 0` is "perform a normal boot" (syslinux wiki
    /// "Config", LOCALBOOT).
    Pxelinux,
}

fn tera_render(name: &str, template: &str, ctx: &tera::Context) -> Result<String> {
    let mut t = tera::Tera::new();
    t.autoescape_on(Vec::<&str>::new());
    t.add_raw_template(name, template)
        .with_context(|| format!("parsing template templates/{name}"))?;
    t.render(name, ctx)
        .with_context(|| format!("rendering template templates/{name}"))
}

fn base_context(menu: &Menu, paths: &Paths) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("title", &menu.title);
    ctx.insert("entries", &menu.entries);
    ctx.insert("default", &menu.default);
    ctx.insert("timeout", &menu.timeout);
    ctx.insert("kernel", &paths.kernel);
    ctx.insert("initrds", &paths.initrds.join(" "));
    ctx.insert("initrd_list", &paths.initrds);
    ctx
}

/// `grub.cfg` for GRUB (EFI on ISO and USB, and netboot). `flavor` names the
/// medium in a comment.
pub fn grub(menu: &Menu, paths: &Paths, flavor: &str) -> Result<String> {
    let mut ctx = base_context(menu, paths);
    ctx.insert("flavor", flavor);
    tera_render("grub.cfg.tera", GRUB, &ctx)
}

/// The config built into a standalone GRUB EFI image: find the medium that
/// holds `tag_file` and read its `/boot/grub/grub.cfg`.
pub fn grub_embedded(tag_file: &str) -> Result<String> {
    let mut ctx = tera::Context::new();
    ctx.insert("tag_file", tag_file);
    tera_render("grub-embedded.cfg.tera", GRUB_EMBEDDED, &ctx)
}

/// isolinux.cfg / syslinux.cfg / pxelinux.cfg/01-MAC.
pub fn syslinux(menu: &Menu, paths: &Paths, flavor: Syslinux) -> Result<String> {
    let mut ctx = base_context(menu, paths);
    let (name, local) = match flavor {
        Syslinux::Isolinux => ("ISOLINUX", "LOCALBOOT 0x80"),
        Syslinux::Syslinux => ("SYSLINUX", "COM32 chain.c32\n\tAPPEND hd1"),
        Syslinux::Pxelinux => ("PXELINUX", "LOCALBOOT 0"),
    };
    ctx.insert("flavor", name);
    ctx.insert("local_boot", local);
    // TIMEOUT is in tenths of a second (syslinux wiki "Config").
    ctx.insert("timeout_ds", &(menu.timeout * 10));
    // INITRD takes several files separated by commas (syslinux 4.x+).
    ctx.insert("initrds_comma", &paths.initrds.join(","));
    tera_render("syslinux.cfg.tera", SYSLINUX, &ctx)
}

/// An iPXE script. Paths relative to the script's own URL.
pub fn ipxe(menu: &Menu, paths: &Paths) -> Result<String> {
    let mut ctx = base_context(menu, paths);
    ctx.insert("timeout_ms", &(menu.timeout * 1000));
    // Under UEFI iPXE passes only the initrds named by `initrd=` on the
    // command line (ipxe.org/cmd/initrd, "UEFI").
    let args: Vec<String> = paths
        .initrds
        .iter()
        .map(|p| format!("initrd={}", p.rsplit('/').next().unwrap_or(p)))
        .collect();
    ctx.insert("initrd_args", &args.join(" "));
    tera_render("ipxe.tera", IPXE, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_local_disk_unless_testing() {
        let spec = MenuSpec {
            hostname: "h",
            os: "Debian",
            kernel_version: "6.1",
            date: Some("2024-01-01"),
            timeout: 30,
            test_rescue_default: false,
        };
        let m = Menu::new(&spec);
        assert_eq!(m.default, "local");
        assert!(m.entries.iter().all(|e| !e.cmdline.contains("after=")));
        let t = Menu::new(&MenuSpec {
            test_rescue_default: true,
            ..spec
        });
        assert_eq!(t.default, "rescue-serial");
        assert_eq!(t.timeout, 1);
    }

    #[test]
    fn test_boot_entry_picks_recover_auto_on_serial() {
        let mut m = Menu::new(&MenuSpec {
            hostname: "h",
            os: "Debian",
            kernel_version: "6.1",
            date: Some("2024-01-01"),
            timeout: 30,
            test_rescue_default: false,
        });
        m.set_test_default("recover-auto-serial").unwrap();
        assert_eq!(m.default, "recover-auto-serial");
        assert_eq!(m.timeout, 1);
        let e = m.entries.iter().find(|e| e.id == m.default).unwrap();
        // The last console= is /dev/console: the serial port.
        let last = e
            .cmdline
            .split_whitespace()
            .rfind(|w| w.starts_with("console="));
        assert_eq!(last, Some("console=ttyS0,115200"), "{}", e.cmdline);
        for want in [
            "console=ttyS0",
            "mkrescue.recover=auto",
            "mkrescue.after=poweroff",
        ] {
            assert!(e.cmdline.contains(want), "{want} missing: {}", e.cmdline);
        }
        // Only the chosen entry powers off.
        let n = m
            .entries
            .iter()
            .filter(|e| e.cmdline.contains("after="))
            .count();
        assert_eq!(n, 1);
        let err = m.set_test_default("local").unwrap_err().to_string();
        assert!(err.contains("recover-auto-serial"), "{err}");
        assert!(m.set_test_default("nope").is_err());
    }
}
