//! The figures `bench/mission-control.sh` prints (ignored in `cargo test`: run with
//! `--ignored --nocapture`): server time of the overview and of a machines page for an Orb
//! with 10,000 recorded machines, first (the commit's view is built) and warm (median of 21).

mod common;

use common::*;
use std::time::Instant;

fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..21)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[10]
}

#[test]
#[ignore = "a benchmark: bench/mission-control.sh runs it"]
fn pages_for_ten_thousand_machines() {
    let bare = orb_testsupport::bare_repo();
    commit(&bare.path, &[("orbiter.yml", ORB)], "Alice", "The Orb");
    commit(
        &bare.path,
        &[("orbiter/current.yml", &current(10_000))],
        "Orbiter",
        "10,000 machines",
    );
    let cache = tempfile::tempdir().unwrap();
    let addr = start(&bare.path, cache.path(), None);
    let first = Instant::now();
    let (code, _, body) = get(&addr, "/", "");
    let first_ms = first.elapsed().as_secs_f64() * 1000.0;
    assert!(code == 200 && body.contains("6667 / 10000"), "{body}");
    let overview = median_ms(|| assert_eq!(get(&addr, "/", "").0, 200));
    let page = median_ms(|| assert_eq!(get(&addr, "/orbs/prod/machines?page=50", "").0, 200));
    let search = median_ms(|| assert_eq!(get(&addr, "/orbs/prod/machines?q=web-99", "").0, 200));
    println!("first_view_10k_ms={first_ms:.0}");
    println!("overview_ms={overview:.1}");
    println!("machines_page_10k_ms={page:.1}");
    println!("machines_search_10k_ms={search:.1}");
}
