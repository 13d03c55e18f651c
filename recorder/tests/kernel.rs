//! The loaded eBPF object through the library API, on the real kernel: the
//! bookkeeping that keeps `sys_enter`'s per-CPU last-caller entries honest,
//! and the workload's exec and exit.

mod common;

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::{require_root, serial, test_program};
use recorder::{
    cgroup::Hierarchy,
    ebpf::{Kernel, LoadOptions},
    syscalls::numbers,
};
use recorder_common::{
    FLAG_INIT_ENDED_BY_EXEC, FLAG_MARKER_SEEN, FLAG_WORKLOAD_STARTED, PHASE_RUNTIME_INIT,
    PHASE_WORKLOAD,
};

/// Every fork and every cgroup migration on the host bumps the generation
/// while the recorder is attached, and attaching bumps it once more for
/// what happened while it was not. A missing bump would let a new task
/// that got a dead task's kernel stack, or a task that changed cgroup, be
/// taken for the last caller with its old cgroup.
#[test]
fn caller_generation_moves_on_every_fork_and_cgroup_move() {
    require_root();
    // Its forks would help the other test along.
    let _serial = serial();
    let mut kernel = Kernel::load(&LoadOptions::default()).unwrap();
    kernel.attach().unwrap();

    let before = kernel.caller_generation().unwrap();
    for _ in 0..100 {
        assert!(Command::new("true").status().unwrap().success());
    }
    let forks = kernel.caller_generation().unwrap() - before;
    assert!(
        forks >= 100,
        "100 forks bumped the generation {forks} times"
    );

    // One sleeping process moved back and forth: no fork in between.
    let h = Hierarchy::detect().unwrap();
    let pid = std::process::id();
    let rels = [
        format!("/recorder-test-gen-a-{pid}"),
        format!("/recorder-test-gen-b-{pid}"),
    ];
    let procs: Vec<_> = rels
        .iter()
        .map(|rel| h.create(rel).unwrap().join("cgroup.procs"))
        .collect();
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let before = kernel.caller_generation().unwrap();
    for i in 0..100 {
        fs::write(&procs[i % 2], sleeper.id().to_string()).unwrap();
    }
    let moves = kernel.caller_generation().unwrap() - before;
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    for rel in &rels {
        h.remove(rel, Duration::from_secs(5)).unwrap();
    }
    assert!(
        moves >= 100,
        "100 moves bumped the generation {moves} times"
    );

    // Detached, nothing counts (the hooks go with the recorder) ...
    kernel.detach().unwrap();
    let detached = kernel.caller_generation().unwrap();
    for _ in 0..10 {
        assert!(Command::new("true").status().unwrap().success());
    }
    assert_eq!(kernel.caller_generation().unwrap(), detached);
    // ... so attaching again starts a new generation.
    kernel.attach().unwrap();
    assert!(kernel.caller_generation().unwrap() > detached);
}

/// Lets the calling thread run on `cpus` only.
fn pin_this_thread(cpus: std::ops::Range<usize>) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays in bounds
    // for a CPU below CPU_SETSIZE; sched_setaffinity reads the set it is
    // given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in cpus.clone() {
            libc::CPU_SET(cpu, &mut set);
        }
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "cannot pin the test thread to CPUs {cpus:?}"
        );
    }
}

/// A task that keeps making syscalls has a last-caller entry that says its
/// cgroup is not recorded. Starting to record that cgroup must make the
/// entry stale at once: the task's next syscalls are recorded, without a
/// fork or a cgroup move anywhere to help (the task spins on a CPU of its
/// own, the test makes its calls from another, and the tests of this
/// binary run one at a time).
#[test]
fn a_running_task_is_recorded_from_the_syscall_after_its_cgroup_is() {
    require_root();
    let _serial = serial();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(cpus >= 2, "this test needs 2 CPUs (has {cpus})");
    let program = test_program().to_str().unwrap().to_owned();
    let mut kernel = Kernel::load(&LoadOptions::default()).unwrap();
    kernel.attach().unwrap();

    let h = Hierarchy::detect().unwrap();
    let rel = format!("/recorder-test-verdict-{}", std::process::id());
    let procs = h.create(&rel).unwrap().join("cgroup.procs");
    let id = h.id(&rel).unwrap();
    let flag = std::env::temp_dir().join(format!("recorder-test-verdict-{}", std::process::id()));
    _ = fs::remove_file(&flag);

    pin_this_thread(0..1);
    let mut spinner = Command::new("sh")
        .arg("-c")
        .arg(r#"echo $$ > "$1" && exec "$2" spin 1 "$3""#)
        .arg("sh")
        .arg(&procs)
        .arg(&program)
        .arg(&flag)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(spinner.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");

    kernel.insert(id, id, PHASE_WORKLOAD).unwrap();
    fs::write(&flag, "").unwrap();
    let status = spinner.wait().unwrap();
    _ = fs::remove_file(&flag);
    let set = kernel.remove(id).unwrap();
    h.remove(&rel, Duration::from_secs(5)).unwrap();
    pin_this_thread(0..cpus);
    assert!(status.success(), "the spinner failed: {status}");

    let nr = libc::SYS_getpriority as u32;
    assert!(
        numbers(&set.native).any(|n| n == nr),
        "getpriority, made after the cgroup was recorded, is missing"
    );
}

/// The workload's start and exit as the kernel sees them (issue 30): in a
/// cgroup whose runtime-init phase no filter load ends, the first exec
/// there by the runtime's init (a `runc…` comm) ends it (what ran before
/// stays in `init`, the exec itself is kept) and starts the workload, whose
/// exit status is kept. Another exec in that phase (runc 1.1 re-executing
/// itself, comm `exe`) ends nothing. A cgroup recorded from the workload
/// phase on has no start to tell apart.
#[test]
fn the_first_exec_ends_an_unfiltered_init_and_its_exit_status_is_kept() {
    require_root();
    let _serial = serial();
    let mut kernel = Kernel::load(&LoadOptions::default()).unwrap();
    kernel.attach().unwrap();
    let h = Hierarchy::detect().unwrap();
    // The shell as the runtime's init: its comm is the link's name.
    let dir = std::env::temp_dir().join(format!("recorder-test-exec-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let runc = dir.join("runc-init");
    _ = fs::remove_file(&runc);
    std::os::unix::fs::symlink("/bin/sh", &runc).unwrap();
    let mut seen = Vec::new();
    for (i, (phase, shell)) in [
        (PHASE_RUNTIME_INIT, runc.as_path()),
        (PHASE_WORKLOAD, runc.as_path()),
        (PHASE_RUNTIME_INIT, Path::new("/bin/sh")),
    ]
    .into_iter()
    .enumerate()
    {
        let rel = format!("/recorder-test-exec-{i}-{}", std::process::id());
        let procs = h.create(&rel).unwrap().join("cgroup.procs");
        let id = h.id(&rel).unwrap();
        kernel.insert(id, id, phase).unwrap();
        // The shell joins the cgroup (its syscalls stand for the runtime's
        // set-up), changes directory (a builtin: no exec), then execs the
        // workload.
        let mut child = Command::new(shell)
            .arg("-c")
            .arg(r#"echo $$ > "$1" && cd / && exec sh -c 'exit 3'"#)
            .arg("sh")
            .arg(&procs)
            .spawn()
            .unwrap();
        let pid = child.id();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(3));
        let workload = kernel.workload(id);
        let set = kernel.remove(id).unwrap();
        h.remove(&rel, Duration::from_secs(5)).unwrap();
        seen.push((pid, set, workload));
    }
    _ = fs::remove_dir_all(&dir);
    let has = |bitmap: &[u64; recorder_common::SET_WORDS], nr: i64| {
        numbers(bitmap).any(|n| i64::from(n) == nr)
    };

    let (pid, set, workload) = &seen[0];
    assert_eq!(set.phase, PHASE_WORKLOAD);
    let flags = FLAG_MARKER_SEEN | FLAG_INIT_ENDED_BY_EXEC | FLAG_WORKLOAD_STARTED;
    assert_eq!(set.flags & flags, flags, "{:#x}", set.flags);
    assert!(has(&set.init, libc::SYS_chdir), "the set-up is in init");
    assert!(!has(&set.native, libc::SYS_chdir), "the set-up is left out");
    assert!(has(&set.native, libc::SYS_execve), "the exec is kept");
    assert!(has(&set.native, libc::SYS_exit_group), "the workload's own");
    let w = workload.expect("the workload's entry");
    assert_eq!(w.tgid, *pid);
    assert_eq!(w.exit_code, 3 << 8, "{w:?}");
    assert!(w.exited_ns >= w.started_ns && w.started_ns > 0, "{w:?}");

    let (_, set, workload) = &seen[1];
    assert_eq!(set.flags & flags, 0, "{:#x}", set.flags);
    assert!(workload.is_none(), "{workload:?}");
    assert!(has(&set.native, libc::SYS_chdir));

    let (_, set, workload) = &seen[2];
    assert_eq!(set.phase, PHASE_RUNTIME_INIT, "not the runtime's exec");
    assert_eq!(set.flags & flags, 0, "{:#x}", set.flags);
    assert!(workload.is_none(), "{workload:?}");
}
