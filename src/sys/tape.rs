//! The SCSI tape driver's one ioctl (st(4)): MTIOCTOP with a `struct mtop`.

use std::os::fd::AsRawFd;

// <linux/mtio.h>: struct mtop { short mt_op; int mt_count; } and its ops.
#[repr(C)]
struct MtOp {
    mt_op: libc::c_short,
    mt_count: libc::c_int,
}

/// Write `count` file marks.
pub const MTWEOF: libc::c_short = 5;
/// Rewind.
pub const MTREW: libc::c_short = 6;
/// Set the block size (0: variable).
pub const MTSETBLK: libc::c_short = 20;
/// Drive compression on (1) or off (0).
pub const MTCOMPRESSION: libc::c_short = 32;
/// _IOW('m', 1, struct mtop): direction write (1) << 30 | size 8 << 16 |
/// 'm' << 8 | 1.
const MTIOCTOP: libc::c_ulong = (1 << 30) | (8 << 16) | ((b'm' as libc::c_ulong) << 8) | 1;

/// One tape operation `op` with its count on the open st device `dev`.
pub fn mtioctop(dev: &impl AsRawFd, op: libc::c_short, count: libc::c_int) -> std::io::Result<()> {
    let m = MtOp {
        mt_op: op,
        mt_count: count,
    };
    // SAFETY: MTIOCTOP reads one struct mtop from the pointer, which lives
    // for the call.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), MTIOCTOP as _, &m as *const MtOp) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mtioctop_matches_the_kernel_header() {
        // <asm-generic/ioctl.h> on x86-64: _IOW('m', 1, struct mtop) with
        // sizeof(struct mtop) == 8.
        assert_eq!(super::MTIOCTOP, 0x4008_6d01);
        assert_eq!(std::mem::size_of::<super::MtOp>(), 8);
    }
}
