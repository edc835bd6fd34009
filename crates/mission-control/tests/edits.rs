//! Edits from Mission Control: each lands as one commit by the configured person with a
//! message that says what changed; an edit without the page's token or from another site is
//! refused; an invalid orbiter.yml is refused with its line and column and nothing is pushed.

mod common;

use common::*;

#[test]
fn edits_are_commits_and_forged_or_invalid_ones_are_not() {
    let bare = orb_testsupport::bare_repo();
    commit(
        &bare.path,
        &[("orbiter.yml", ORB)],
        "Alice",
        "Two web machines",
    );
    commit(
        &bare.path,
        &[("orbiter/current.yml", &current(2))],
        "Orbiter",
        "state",
    );
    let cache = tempfile::tempdir().unwrap();
    let addr = start(&bare.path, cache.path(), None);
    let count = || bare.git(&["rev-list", "--count", "main"]);

    let (_, _, page) = get(&addr, "/orbs/prod/machines", "");
    let csrf = csrf_of(&page);
    assert!(page.contains("action=\"/orbs/prod/scale\""), "{page}");

    // Forged: no token, a wrong one, or the right one from another site.
    let before = count();
    let form = |t: &str| format!("csrf={t}&provider=loc&pool=web&nodes=5");
    assert_eq!(post(&addr, "/orbs/prod/scale", &form(""), "").0, 403);
    assert_eq!(
        post(&addr, "/orbs/prod/scale", &form(&"0".repeat(64)), "").0,
        403
    );
    let cross = post(
        &addr,
        "/orbs/prod/scale",
        &form(&csrf),
        "Origin: http://evil.example\r\n",
    );
    assert_eq!(cross.0, 403);
    let fetch = post(
        &addr,
        "/orbs/prod/scale",
        &form(&csrf),
        "Sec-Fetch-Site: cross-site\r\n",
    );
    assert_eq!(fetch.0, 403);
    assert_eq!(count(), before, "a refused edit committed");

    // Scale: one commit by the configured person.
    let origin = format!("Origin: http://{addr}\r\nSec-Fetch-Site: same-origin\r\n");
    let (code, head, _) = post(&addr, "/orbs/prod/scale", &form(&csrf), &origin);
    assert_eq!(code, 303, "{head}");
    assert_eq!(
        bare.git(&["log", "-1", "--format=%an|%s|%b", "main"]),
        "Test|Scale loc.web to 5 machines|by Mission Control"
    );
    assert!(bare.git(&["show", "main:orbiter.yml"]).contains("nodes: 5"));

    // Replace a machine.
    let (code, _, _) = post(
        &addr,
        "/orbs/prod/machines/loc.web-2/replace",
        &format!("csrf={csrf}"),
        &origin,
    );
    assert_eq!(code, 303);
    assert_eq!(
        bare.git(&["log", "-1", "--format=%s", "main"]),
        "Replace loc.web-2"
    );
    assert!(
        bare.git(&["show", "main:orbiter.yml"])
            .contains("replacementrequired")
    );

    // orbiter.yml as text: an invalid one is shown back with line:col, nothing pushed.
    let (_, _, form_page) = get(&addr, "/orbs/prod/edit", "");
    assert!(form_page.contains("<textarea") && form_page.contains("nodes: 5"));
    let before = count();
    let bad = ORB.replace("nodes: 2", "nodes: two");
    let (code, _, body) = post(
        &addr,
        "/orbs/prod/edit",
        &format!("csrf={csrf}&text={}", enc(&bad)),
        &origin,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("Not committed:</p><pre class=\"bad\">orbiter.yml:11:18: invalid u32")
            && body.contains("nodes: two"),
        "{body}"
    );
    assert_eq!(count(), before);
    let good = ORB.replace("nodes: 2", "nodes: 3");
    let (code, _, _) = post(
        &addr,
        "/orbs/prod/edit",
        &format!("csrf={csrf}&text={}", enc(&good.replace('\n', "\r\n"))),
        &origin,
    );
    assert_eq!(code, 303);
    assert_eq!(bare.git(&["show", "main:orbiter.yml"]), good.trim_end());
    assert_eq!(
        bare.git(&["log", "-1", "--format=%s", "main"]),
        "Edit orbiter.yml"
    );
}
