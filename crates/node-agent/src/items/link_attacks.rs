//! The attacks "node-agent never follows links" is about, carried out against a fake root:
//! a symlink or FIFO swapped in at a managed path (also between observation and apply), a
//! symlinked directory above it, a directory above it that someone else controls. The stand-in
//! for `/etc/shadow` is `<root>/etc/shadow`; it must come out byte for byte, mode and owner
//! unchanged. Everything but the owner test runs as any user ("me" is whoever runs the tests).

use crate::fsutil::nofollow::NEVER_FOLLOWS;
use crate::host::Host;
use crate::items::{Op, PassCtx, execute, file};
use crate::pass::{PassResult, run_pass};
use node_protocol::{File, NodeDesired, parse_desired};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;
use std::time::Duration;

const SHADOW: &[u8] = b"root:$6$not-for-your-eyes:19000:0:99999:7:::\n";

struct Lab {
    _tmp: tempfile::TempDir,
    host: Host,
    /// The stand-in for /etc/shadow, as a host path.
    shadow: PathBuf,
    shadow_meta: (u32, u32, u32),
}

fn me() -> (u32, u32) {
    // SAFETY: no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

fn lab() -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::with_root(tmp.path().join("root"), tmp.path().join("state"));
    let (uid, gid) = me();
    for (path, content, mode) in [
        (
            "/etc/passwd",
            format!(
                "root:x:0:0::/root:/bin/sh\nme:x:{uid}:{gid}::/:/bin/sh\nsvc:x:4242:4242::/:/bin/false\n"
            ),
            0o644,
        ),
        (
            "/etc/group",
            format!("root:x:0:\nme:x:{gid}:\nsvc:x:4242:\n"),
            0o644,
        ),
    ] {
        crate::fsutil::write_atomic(&host.path(path), content.as_bytes(), mode, None).unwrap();
    }
    let shadow = host.path("/etc/shadow");
    crate::fsutil::write_atomic(&shadow, SHADOW, 0o640, None).unwrap();
    crate::fsutil::create_dirs(&host.path("/srv/app"), 0o755).unwrap();
    let m = fs::metadata(&shadow).unwrap();
    let shadow_meta = (m.mode() & 0o7777, m.uid(), m.gid());
    Lab {
        _tmp: tmp,
        host,
        shadow,
        shadow_meta,
    }
}

impl Lab {
    fn assert_shadow_untouched(&self) {
        let m = fs::symlink_metadata(&self.shadow).unwrap();
        assert!(
            m.file_type().is_file(),
            "the stand-in for /etc/shadow was replaced"
        );
        assert_eq!(
            fs::read(&self.shadow).unwrap(),
            SHADOW,
            "/etc/shadow was written"
        );
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            self.shadow_meta,
            "/etc/shadow's mode or owner changed"
        );
    }

    /// Asserts `path` is a regular file (not a link) with `content` and `mode`, owned by "me".
    fn assert_regular(&self, path: &str, content: &[u8], mode: u32) {
        let p = self.host.path(path);
        let m = fs::symlink_metadata(&p).unwrap();
        assert!(m.file_type().is_file(), "{path} is not a regular file");
        assert_eq!(fs::read(&p).unwrap(), content, "{path}");
        assert_eq!((m.mode() & 0o7777, m.uid()), (mode, me().0), "{path}");
    }

    fn pass(&self, items: &str) -> PassResult {
        run_pass(&self.host, &desired(items), true, &|| false)
    }
}

fn desired(items: &str) -> NodeDesired {
    parse_desired(
        &format!(
            "kind: NodeDesired\nversion: v1\ngeneration: 1\nchangesallowed: true\nitems:\n{items}"
        ),
        "d.yml",
    )
    .unwrap()
}

const TOKEN: &str =
    "  - file: {path: /srv/app/token, content: \"tok\\n\", mode: \"0600\", owner: me, group: me}\n";

fn token() -> File {
    let (uid, gid) = me();
    File::text("/srv/app/token", "tok\n", "0600").owned_by(&uid.to_string(), &gid.to_string())
}

fn error_of(r: &PassResult, id: &str) -> String {
    let i = r.items.iter().find(|i| i.id == id).unwrap();
    i.error
        .clone()
        .unwrap_or_else(|| panic!("{id} has no error: {i:?}"))
}

#[test]
fn a_symlink_swapped_in_under_a_managed_file_does_not_change_etc_shadow() {
    let l = lab();
    let r = l.pass(TOKEN);
    assert_eq!(r.errors(), 0, "{:?}", r.items);
    l.assert_regular("/srv/app/token", b"tok\n", 0o600);
    let token = l.host.path("/srv/app/token");
    // Absolute and relative links, to a file the agent would otherwise write, chmod and chown.
    for target in [l.shadow.clone(), PathBuf::from("../../etc/shadow")] {
        fs::remove_file(&token).unwrap();
        symlink(&target, &token).unwrap();
        let r = l.pass(TOKEN);
        let item = &r.items[0];
        assert_eq!(item.error, None, "{item:?}");
        assert_eq!(
            item.applied,
            [
                "write /srv/app/token (4 bytes, 0600 me:me): is a symlink; replaced by a regular file"
            ]
        );
        l.assert_shadow_untouched();
        l.assert_regular("/srv/app/token", b"tok\n", 0o600);
    }
}

#[test]
fn a_symlink_swapped_in_between_observing_and_applying_is_replaced_or_refused() {
    let l = lab();
    let f = token();
    let token = l.host.path("/srv/app/token");
    let swap = || {
        let _ = fs::remove_file(&token);
        symlink(&l.shadow, &token).unwrap();
    };
    let apply = |op: &Op| execute(&l.host, op, &mut PassCtx::default());

    // Content differs when observed; a link is there when the write happens.
    fs::write(&token, "old\n").unwrap();
    let plan = file::plan_file(&f, &file::observe_file(&l.host, &f).unwrap()).unwrap();
    assert!(matches!(plan[0].op, Op::WriteFile { .. }), "{plan:?}");
    swap();
    apply(&plan[0].op).unwrap();
    l.assert_shadow_untouched();
    l.assert_regular("/srv/app/token", b"tok\n", 0o600);

    // Only the mode differs when observed; a link is there when chmod/chown happen.
    fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).unwrap();
    let plan = file::plan_file(&f, &file::observe_file(&l.host, &f).unwrap()).unwrap();
    assert!(matches!(plan[0].op, Op::SetMeta { .. }), "{plan:?}");
    swap();
    let e = apply(&plan[0].op).unwrap_err();
    assert_eq!(
        e.message(),
        format!("/srv/app/token is a symlink; {NEVER_FOLLOWS}")
    );
    l.assert_shadow_untouched();

    // The directory above is swapped for a link to /etc between observing and writing.
    let f = File::text("/srv/app/shadow", "pwned\n", "0644");
    let plan = file::plan_file(&f, &file::observe_file(&l.host, &f).unwrap()).unwrap();
    fs::rename(l.host.path("/srv/app"), l.host.path("/srv/app.away")).unwrap();
    symlink(l.host.path("/etc"), l.host.path("/srv/app")).unwrap();
    let e = apply(&plan[0].op).unwrap_err();
    assert_eq!(
        e.message(),
        format!("/srv/app/shadow: /srv/app is a symlink; {NEVER_FOLLOWS}")
    );
    l.assert_shadow_untouched();
}

#[test]
fn a_symlinked_parent_directory_is_refused() {
    let l = lab();
    fs::remove_dir(l.host.path("/srv/app")).unwrap();
    symlink("../etc", l.host.path("/srv/app")).unwrap();
    let r = l.pass(concat!(
        "  - file: {path: /srv/app/shadow, content: \"pwned\\n\", mode: \"0644\"}\n",
        "  - directory: {path: /srv/app/sub, mode: \"0777\"}\n",
        "  - file: {path: /srv/app/x, content: x, allow_unsafe_parents: true}\n",
    ));
    for (id, path) in [
        ("file:/srv/app/shadow", "/srv/app/shadow"),
        ("directory:/srv/app/sub", "/srv/app/sub"),
        // Allowing unsafe parents never allows links.
        ("file:/srv/app/x", "/srv/app/x"),
    ] {
        assert_eq!(
            error_of(&r, id),
            format!("{path}: /srv/app is a symlink; {NEVER_FOLLOWS}")
        );
    }
    assert!(r.actions().is_empty(), "{:?}", r.actions());
    l.assert_shadow_untouched();
    assert!(!l.host.path("/etc/sub").exists() && !l.host.path("/etc/x").exists());

    // A link higher up is named as such.
    fs::remove_file(l.host.path("/srv/app")).unwrap();
    fs::rename(l.host.path("/srv"), l.host.path("/srv.real")).unwrap();
    symlink(l.host.path("/srv.real"), l.host.path("/srv")).unwrap();
    let r = l.pass(TOKEN);
    assert_eq!(
        error_of(&r, "file:/srv/app/token"),
        format!("/srv/app/token: /srv is a symlink; {NEVER_FOLLOWS}")
    );
}

#[test]
fn a_fifo_at_a_managed_path_is_reported_and_never_read() {
    let l = lab();
    let mkfifo = |path: &str| {
        let p = l.host.path(path);
        crate::fsutil::create_dirs(p.parent().unwrap(), 0o755).unwrap();
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    };
    mkfifo("/srv/app/token");
    // An agent-owned file, which is read to compare its content.
    mkfifo(node_protocol::paths::SYSCTL_CONF);
    let host = l.host;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let d = desired(&format!(
            "{TOKEN}  - sysctl: {{key: vm.swappiness, value: 1}}\n"
        ));
        let r = run_pass(&host, &d, true, &|| false);
        let observed = file::observe_file(&host, &token()).map(|o| o.to_string());
        tx.send((r, observed)).unwrap();
    });
    let (r, observed) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the pass hangs on a FIFO");
    assert!(
        observed
            .as_deref()
            .unwrap()
            .starts_with("special file 0644 "),
        "{observed:?}"
    );
    assert_eq!(
        error_of(&r, "file:/srv/app/token"),
        "/srv/app/token is a directory or special file, not replacing it; hint: remove it by hand if the file should win"
    );
    assert_eq!(
        error_of(&r, "owned:/etc/sysctl.d/90-node-agent.conf"),
        "/etc/sysctl.d/90-node-agent.conf is a special file; not read"
    );
    assert!(r.actions().is_empty(), "{:?}", r.actions());
}

#[test]
fn a_directory_others_may_write_is_refused_unless_sticky_or_allowed() {
    let l = lab();
    let app = l.host.path("/srv/app");
    fs::set_permissions(&app, fs::Permissions::from_mode(0o777)).unwrap();
    let r = l.pass(TOKEN);
    assert_eq!(
        error_of(&r, "file:/srv/app/token"),
        "/srv/app/token: /srv/app is writable by its group or others (mode 0777) without the sticky bit; refused; hint: make it root's and not writable by others, or set `allow_unsafe_parents: true` on the item if that is intended"
    );
    assert!(!l.host.path("/srv/app/token").exists());
    // Sticky (like /tmp): others cannot rename or remove what the agent put there.
    fs::set_permissions(&app, fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(l.pass(TOKEN).errors(), 0);
    l.assert_regular("/srv/app/token", b"tok\n", 0o600);
    fs::set_permissions(&app, fs::Permissions::from_mode(0o775)).unwrap();
    let allowed = TOKEN.replace("group: me}", "group: me, allow_unsafe_parents: true}");
    assert_eq!(l.pass(&allowed).errors(), 0);
    assert!(l.pass(TOKEN).errors() == 1);
}

/// Tests that must chown fail (not skip) without root.
fn require_root(test: &str) {
    assert_eq!(
        me().0,
        0,
        "{test} needs root (it chowns a directory to another user); run the unit tests as root"
    );
}

#[test]
fn a_parent_owned_by_a_non_root_user_is_refused_unless_the_item_allows_it() {
    require_root("a_parent_owned_by_a_non_root_user_is_refused_unless_the_item_allows_it");
    let l = lab();
    std::os::unix::fs::chown(l.host.path("/srv/app"), Some(4242), Some(4242)).unwrap();
    let items = "  - file: {path: /srv/app/app.conf, content: \"a\\n\"}\n  - directory: {path: /srv/app/data}\n";
    let r = l.pass(items);
    for (id, path) in [
        ("file:/srv/app/app.conf", "/srv/app/app.conf"),
        ("directory:/srv/app/data", "/srv/app/data"),
    ] {
        let e = error_of(&r, id);
        assert!(
            e.starts_with(&format!(
                "{path}: /srv/app is owned by svc (uid 4242), not root; refused"
            )),
            "{e}"
        );
    }
    assert!(r.actions().is_empty(), "{:?}", r.actions());
    assert!(!l.host.path("/srv/app/app.conf").exists());

    let allowed = items.replace('}', ", allow_unsafe_parents: true}");
    let r = l.pass(&allowed);
    assert_eq!(r.errors(), 0, "{:?}", r.items);
    l.assert_regular("/srv/app/app.conf", b"a\n", 0o644);
    assert!(l.host.path("/srv/app/data").is_dir());
    // Still no links, even where the owner is trusted with the directory.
    fs::remove_file(l.host.path("/srv/app/app.conf")).unwrap();
    symlink(&l.shadow, l.host.path("/srv/app/app.conf")).unwrap();
    let r = l.pass(&allowed);
    assert_eq!(r.errors(), 0, "{:?}", r.items);
    l.assert_shadow_untouched();
    l.assert_regular("/srv/app/app.conf", b"a\n", 0o644);
}
