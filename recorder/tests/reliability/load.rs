//! Load and concurrency: many threads, clients and containers at once.

use super::*;

#[test]
fn sixty_four_threads_at_a_barrier_twenty_rounds_nothing_lost() {
    require_root();
    let bin = race_program();
    let h = Hierarchy::detect().unwrap();
    let d = Daemon::start("race64", &[]);
    let mut total_lost = 0;
    for round in 0..20 {
        let rel = format!("/recorder-test-race64-{}-{round}", std::process::id());
        let names = record_race(&d, &h, &rel, &bin);
        let missing = lost(&names);
        assert!(missing.is_empty(), "round {round}: lost {missing:?}");
        total_lost += missing.len();
    }
    println!("RESULT race64: 20 rounds x 64 threads, lost = {total_lost}");
}

/// A cgroup that takes over the cache slot of a stopped recording starts
/// from an empty set: nothing of the first recording leaks into it, and
/// nothing of its own is lost.
#[test]
fn a_reused_cache_slot_is_handed_over_clean() {
    require_root();
    let bin = race_program();
    let h = Hierarchy::detect().unwrap();
    let d = Daemon::start("cacheslot", &[]);
    let pid = std::process::id();
    let run_in = |rel: &str, nrs: &[(u32, &str)]| race_in(&h.dir(rel).unwrap(), &bin, nrs);
    // A records all 64 rare syscalls in its cache slot.
    let rel_a = format!("/recorder-test-slot-a-{pid}");
    h.create(&rel_a).unwrap();
    let id_a = h.id(&rel_a).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel_a]);
    run_in(&rel_a, &RARE);
    assert_eq!(status(&d)["cached"], 1, "A records in the cache");
    d.ctl_ok(&["stop", "--cgroup", &rel_a]);
    let a = allowed_names(&fs::read_to_string(d.profile_path(&format!("cgroup-{id_a}"))).unwrap());
    assert!(lost(&a).is_empty(), "A lost {:?}", lost(&a));
    // B: a new cgroup whose id maps to the same slot (ids are inode
    // numbers, handed out in order, so one turns up within a few thousand).
    let slot = recorder_common::cache_slot(id_a);
    let rel_b = format!("/recorder-test-slot-b-{pid}");
    let mut tries = 0;
    let id_b = loop {
        h.create(&rel_b).unwrap();
        let id = h.id(&rel_b).unwrap();
        if recorder_common::cache_slot(id) == slot {
            break id;
        }
        h.remove(&rel_b, Duration::from_secs(5)).unwrap();
        tries += 1;
        assert!(tries < 20_000, "no cgroup id with cache slot {slot}");
    };
    // The slot is freed a second after A's release, on the daemon's next
    // command.
    thread::sleep(Duration::from_millis(1500));
    status(&d);
    let (first, second) = RARE.split_at(32);
    d.ctl_ok(&["start", "--cgroup", &rel_b]);
    run_in(&rel_b, first);
    assert_eq!(status(&d)["cached"], 1, "B took the freed slot");
    d.ctl_ok(&["stop", "--cgroup", &rel_b]);
    let b = allowed_names(&fs::read_to_string(d.profile_path(&format!("cgroup-{id_b}"))).unwrap());
    h.remove(&rel_a, Duration::from_secs(5)).unwrap();
    h.remove(&rel_b, Duration::from_secs(5)).unwrap();
    let leaked: Vec<_> = second.iter().filter(|(_, n)| b.contains(*n)).collect();
    let missing: Vec<_> = first.iter().filter(|(_, n)| !b.contains(*n)).collect();
    println!(
        "RESULT cache slot {slot}: A={id_a}, B={id_b} after {tries} tries; leaked {}, lost {}",
        leaked.len(),
        missing.len()
    );
    assert!(leaked.is_empty(), "A's syscalls leaked into B: {leaked:?}");
    assert!(missing.is_empty(), "B lost {missing:?}");
}

#[test]
fn five_hundred_concurrent_clients_and_a_recording_meanwhile() {
    require_root();
    let bin = race_program();
    let h = Hierarchy::detect().unwrap();
    let d = Daemon::start("clients500", &[]);
    const CLIENTS: usize = 500;
    const ROUNDS: usize = 4;
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let socket = d.socket.clone();
    let start = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = barrier.clone();
            let socket = socket.clone();
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    barrier.wait();
                    let mut ok = 0;
                    for r in 0..ROUNDS {
                        let op = if (i + r) % 2 == 0 { "status" } else { "list" };
                        let line = raw_call(
                            &socket,
                            format!("{{\"version\":1,\"op\":\"{op}\"}}\n").as_bytes(),
                        );
                        let v: serde_json::Value = match serde_json::from_str(&line) {
                            Ok(v) => v,
                            Err(_) => continue,
                        };
                        if v["reply"] == op {
                            ok += 1;
                        }
                    }
                    ok
                })
                .unwrap()
        })
        .collect();
    barrier.wait();
    // A recording meanwhile.
    let rel = format!("/recorder-test-clients500-{}", std::process::id());
    let names = record_race(&d, &h, &rel, &bin);
    let answered: usize = handles.into_iter().map(|t| t.join().unwrap()).sum();
    let fully_served = answered;
    println!(
        "RESULT clients500: {fully_served}/{} requests answered from {CLIENTS} concurrent clients in {:?}; recording meanwhile lost = {}",
        CLIENTS * ROUNDS,
        start.elapsed(),
        lost(&names).len()
    );
    assert_eq!(answered, CLIENTS * ROUNDS);
    assert!(lost(&names).is_empty(), "lost {:?}", lost(&names));
}

/// Starts two containers at a time in auto mode; each must get a valid
/// profile; the map returns to its baseline; RSS stays flat.
#[test]
fn short_lived_containers_under_auto_mode() {
    require_root();
    let count: usize = std::env::var("RECORDER_STRESS_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // Every run shares one --rootfs, so one image row: keep all their
    // files (the default keeps 20 per image), each is checked below.
    let d = Daemon::start("stress", &["--all", "--keep-per-image", "0"]);
    let baseline = status(&d)["map_entries"].as_u64().unwrap();
    let rss = |pid: u32| -> u64 {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    let dir = d.dir.clone();
    let one = |n: usize| -> String {
        let cid = dir.join(format!("cid-{n}"));
        _ = fs::remove_file(&cid);
        let out = run(&mut podman_run(
            &["--cidfile", cid.to_str().unwrap()],
            &["/bin/sh", "-c", "echo $$ > /tmp/p && cat /tmp/p"],
        ));
        assert!(out.status.success(), "container {n}: {out:?}");
        fs::read_to_string(&cid).unwrap().trim().to_owned()
    };
    let start = Instant::now();
    let mut ids = Vec::new();
    let mut rss_after_20 = None;
    let mut n = 0;
    while n < count {
        let (a, b) = thread::scope(|s| {
            let a = s.spawn(|| one(n));
            let b = (n + 1 < count).then(|| s.spawn(|| one(n + 1)));
            (a.join().unwrap(), b.map(|b| b.join().unwrap()))
        });
        ids.push(a);
        ids.extend(b);
        n = ids.len();
        if rss_after_20.is_none() && n >= 20 {
            // Let the profiles of the first 20 be written first.
            for id in &ids {
                d.wait_for(&d.profile_path(id));
            }
            rss_after_20 = Some(rss(d.pid()));
        }
    }
    let elapsed = start.elapsed();
    for id in &ids {
        let profile = d.wait_for(&d.profile_path(id));
        let names = allowed_names(&profile);
        assert!(
            names.contains("execve") && names.contains("exit_group"),
            "{id}: {names:?}"
        );
    }
    let written = ids.iter().filter(|id| d.profile_path(id).exists()).count();
    // Our containers' recordings are gone, and so are their map entries.
    // An --all daemon also records containers that others run on the host
    // meanwhile: their entries are theirs, so the baseline is checked when
    // no such recording is alive (and reported otherwise).
    let mut entries = 0;
    let mut foreign = 0;
    wait_until("our recordings and map entries to go", 60, || {
        let list = d.ctl_ok(&["list", "--output", "json"]);
        let st = status(&d);
        entries = st["map_entries"].as_u64().unwrap();
        foreign = st["recordings"].as_u64().unwrap();
        !ids.iter().any(|id| list.contains(id.as_str())) && (foreign > 0 || entries <= baseline)
    });
    if foreign > 0 {
        println!("NOTE stress: {foreign} recordings of other containers alive; map check skipped");
    }
    // The filter in front of the map counts exactly the map's entries: every
    // kernel enrolment and every removal kept it in step.
    let mut filter = 0;
    wait_until("the filter to count the map's entries", 10, || {
        let st = status(&d);
        entries = st["map_entries"].as_u64().unwrap();
        filter = st["filter_count"].as_u64().unwrap();
        filter == entries
    });
    let rss_end = rss(d.pid());
    let drift = rss_after_20.map(|r| (rss_end as f64 - r as f64) / r as f64 * 100.0);
    println!(
        "RESULT stress: {count} containers (2 at a time) in {elapsed:?}, {:?} per container; profiles {written}/{count}; map entries {entries} (baseline {baseline}), filter count {filter}; RSS after 20 {:?} kB, at end {rss_end} kB, drift {drift:?} %",
        elapsed / count as u32,
        rss_after_20
    );
    assert_eq!(written, count);
    if let Some(drift) = drift {
        assert!(drift <= 10.0, "RSS grew by {drift:.1} %");
    }
}
