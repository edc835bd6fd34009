//! Unit tests of the link-refusing walk (the attacks themselves are in `items::link_attacks`).

use super::*;
use std::os::unix::fs::symlink;

fn dir_fd(p: &Path) -> OwnedFd {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    sys_fd(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
    .unwrap()
}

#[test]
fn both_ways_of_opening_a_directory_refuse_links() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    symlink("d", tmp.path().join("l")).unwrap();
    symlink("/", tmp.path().join("abs")).unwrap();
    std::fs::write(tmp.path().join("f"), "x").unwrap();
    let root = dir_fd(tmp.path());
    let fd = root.as_raw_fd();
    let openat2 = |n: &CStr| open_dir_openat2(fd, n).expect("openat2 on this kernel");
    for open in [&openat2 as &dyn Fn(&CStr) -> io::Result<OwnedFd>, &|n| {
        open_dir_openat(fd, n)
    }] {
        assert!(open(c"d").is_ok());
        for bad in [c"l", c"abs", c"f", c"missing"] {
            assert!(open(bad).is_err(), "{bad:?} opened");
        }
        assert_eq!(
            open(c"missing").unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }
}

#[test]
fn walk_names_the_component_and_refuses_dot_dot() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
    symlink("b", tmp.path().join("a/l")).unwrap();
    std::fs::write(tmp.path().join("a/f"), "x").unwrap();
    let names = |uid: u32| format!("user{uid}");
    let w = Walk {
        root: tmp.path(),
        parents: Parents::RootOnly,
        names: &names,
    };
    let err = |abs: &str| w.entry(abs, None).err().unwrap().message().to_owned();
    assert_eq!(
        err("/a/l/x"),
        format!("/a/l/x: /a/l is a symlink; {NEVER_FOLLOWS}")
    );
    assert_eq!(err("/a/f/x"), "/a/f/x: /a/f is a file, not a directory");
    assert!(err("/a/../etc/shadow").contains("`.` and `..` are not allowed"));
    assert!(err("relative").contains("not an absolute path"));
    assert!(w.entry("/nope/x", None).unwrap().is_none());
    let e = w.entry("/a/l", None).unwrap().unwrap();
    assert_eq!(e.stat().unwrap().unwrap().kind, Kind::Symlink);
    assert_eq!(
        e.read().unwrap_err().message(),
        format!("/a/l is a symlink; {NEVER_FOLLOWS}")
    );
    assert_eq!(
        e.set_meta(0o600, 0, 0).unwrap_err().message(),
        format!("/a/l is a symlink; {NEVER_FOLLOWS}")
    );
    assert_eq!(
        e.mkdir(0o700).unwrap_err().message(),
        format!("/a/l is a symlink; {NEVER_FOLLOWS}")
    );
    assert_eq!(
        e.write_in_place(b"x").unwrap_err().to_string(),
        format!("/a/l is a symlink; {NEVER_FOLLOWS}")
    );
    // Removing a link removes the link, not what it points to.
    assert!(e.remove().unwrap());
    assert!(tmp.path().join("a/b").is_dir());
    // Created directories get exactly their mode, whatever the umask.
    let e = w.entry("/a/new/deeper/file", Some(0o750)).unwrap().unwrap();
    e.write_atomic(b"hi", 0o640, None).unwrap();
    let m = std::fs::metadata(tmp.path().join("a/new")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777,
        0o750
    );
    assert_eq!(
        std::fs::read(tmp.path().join("a/new/deeper/file")).unwrap(),
        b"hi"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("a/new/deeper"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1, "temp files left behind");

    // A hard link to a file elsewhere: its mode and owner are not the agent's to change.
    let outside = tmp.path().join("outside");
    std::fs::write(&outside, "x").unwrap();
    std::fs::hard_link(&outside, tmp.path().join("a/hard")).unwrap();
    let e = w.entry("/a/hard", None).unwrap().unwrap();
    assert!(
        e.set_meta(0o666, 0, 0)
            .unwrap_err()
            .message()
            .starts_with("/a/hard has 2 hard links; not changing"),
    );
    let m = std::fs::metadata(&outside).unwrap();
    assert_ne!(
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
        0o666
    );
}
