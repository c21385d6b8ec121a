//! Name-service lookups in the statically linked build (`make dist`). glibc resolves host
//! names, users and groups through the modules /etc/nsswitch.conf names; since 2.34 `files`
//! and `dns` are built into libc itself, so a static binary has them, but any other module
//! (`resolve`, `mdns4_minimal`, `myhostname`, `systemd`) is a shared library glibc would
//! `dlopen`, built against the image's own glibc: absent in an empty root (the lookup then
//! fails with EBUSY when it is the only source) and unsafe to load into a static binary
//! elsewhere. The static build therefore looks up hosts with `files dns`, and users and groups
//! with `files`, whatever nsswitch.conf says; the dynamic build keeps the system's settings.

/// Pin the databases the process uses to glibc's built-in modules. Call once, first thing in
/// `main`, before any thread starts; a no-op in the dynamic build.
pub fn use_builtin_modules() {
    #[cfg(all(target_env = "gnu", target_feature = "crt-static"))]
    {
        extern "C" {
            // glibc's documented override of one database's nsswitch.conf line (nss(5) notes;
            // <nss.h>); returns 0, or -1 for an unknown database.
            fn __nss_configure_lookup(
                db: *const libc::c_char,
                service_line: *const libc::c_char,
            ) -> libc::c_int;
        }
        for (db, line) in [
            (c"hosts", c"files dns"),
            (c"passwd", c"files"),
            (c"group", c"files"),
        ] {
            // SAFETY: two NUL-terminated strings that live for the whole process; called
            // before any other thread exists, as glibc requires.
            unsafe {
                __nss_configure_lookup(db.as_ptr(), line.as_ptr());
            }
        }
    }
}
