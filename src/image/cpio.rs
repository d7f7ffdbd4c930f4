//! cpio "newc" writer (see the kernel's Documentation/driver-api/early-userspace/buffer-format.rst).
