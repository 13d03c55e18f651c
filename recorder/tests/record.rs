//! `recorderctl record` end to end: the real binary, the real kernel, real
//! processes. Needs root (fails otherwise), gcc and strace.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Read as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{
    allowed_names, compile_test_program, recorderctl, require_root, run, run_ok, scratch,
    test_program,
};
use recorder::cgroup::Hierarchy;

/// A cgroup parent of this test alone, so that the tests running in
/// parallel can each check that nothing is left behind under theirs.
fn cgroup_parent(test: &str) -> String {
    format!("/recorder-test-{test}-{}", std::process::id())
}

/// Asserts that the recording left no cgroup behind: the per-run cgroup is
/// gone and so is the parent the run created.
fn assert_no_stray_cgroup(parent: &str) {
    let hierarchy = Hierarchy::detect().unwrap();
    let leftovers = hierarchy.descendants(parent).unwrap_or_default();
    assert!(
        !hierarchy.exists(parent),
        "cgroup {parent} was left behind under {} (with {leftovers:?})",
        hierarchy.mount.display()
    );
}

/// `recorderctl record --cgroup-parent PARENT --out OUT -- CMD...`.
fn record(parent: &str, out: &Path, cmd: &[&str]) -> Command {
    let mut c = recorderctl();
    c.args(["record", "--cgroup-parent", parent, "--out"])
        .arg(out)
        .arg("--")
        .args(cmd);
    c
}

/// Records `cmd` to a profile file and returns the allowed names.
fn record_names(parent: &str, out: &Path, cmd: &[&str]) -> BTreeSet<String> {
    run_ok(&mut record(parent, out, cmd));
    let text = fs::read_to_string(out).unwrap();
    allowed_names(&text)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn missing<'a>(names: &BTreeSet<String>, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|n| !names.contains(*n))
        .collect()
}

#[test]
fn records_known_syscalls_from_threads() {
    require_root();
    let dir = scratch("record-known");
    let parent = cgroup_parent("known");
    let out = dir.join("profile.json");
    let program = test_program().to_str().unwrap();
    let names = record_names(&parent, &out, &[program, "known", dir.to_str().unwrap()]);
    // Each made from its own thread; close_range and pidfd_open are numbered
    // above 430 (the upper words of the bitmap).
    let wanted = [
        "uname",
        "getcpu",
        "sched_yield",
        "chmod",
        "memfd_create",
        "close_range",
        "pidfd_open",
    ];
    assert!(
        missing(&names, &wanted).is_empty(),
        "missing {:?} in {names:?}",
        missing(&names, &wanted)
    );
    for never in ["reboot", "mount", "kexec_load"] {
        assert!(
            !names.contains(never),
            "{never} recorded but never made: {names:?}"
        );
    }
    // The chmod really happened in the recorded run.
    assert!(dir.join("chmod-me").exists());
    assert_no_stray_cgroup(&parent);
}

/// The names of each ALLOW rule, keyed by the rule's `includes.arches`
/// (empty for the native rule).
fn names_by_arch(profile: &str) -> BTreeMap<Vec<String>, BTreeSet<String>> {
    let v: serde_json::Value = serde_json::from_str(profile).unwrap();
    let mut out: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for rule in v["syscalls"].as_array().unwrap() {
        if rule["action"] != "SCMP_ACT_ALLOW" {
            continue;
        }
        let arches = rule["includes"]["arches"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        let names = rule["names"].as_array().unwrap();
        out.entry(arches)
            .or_default()
            .extend(names.iter().map(|n| n.as_str().unwrap().to_owned()));
    }
    out
}

/// A 32-bit program's syscalls are named with the i386 table and allowed
/// for SCMP_ARCH_X86 only (i386 numbers mean other calls on x86_64: 15 is
/// chmod for i386, rt_sigreturn for x86_64). Only the execve that starts it
/// is a native syscall.
#[cfg(target_arch = "x86_64")]
#[test]
fn records_32bit_syscalls_under_their_own_arch() {
    require_root();
    let program = compile_test_program("syscalls32", &["-m32"]);
    let dir = scratch("record-compat");
    let parent = cgroup_parent("compat");
    let out = dir.join("profile.json");
    run_ok(&mut record(
        &parent,
        &out,
        &[program.to_str().unwrap(), "known", dir.to_str().unwrap()],
    ));
    let rules = names_by_arch(&fs::read_to_string(&out).unwrap());
    let native = rules.get(&Vec::new()).cloned().unwrap_or_default();
    assert_eq!(
        native.into_iter().collect::<Vec<_>>(),
        ["execve"],
        "rules: {rules:?}"
    );
    // The compat rule is the one limited to this host (docker's
    // includes.arches names the host's Go architecture; see docs/PROFILES.md).
    let compat = rules
        .get(&vec![recorder::profile::host_filter_arch().to_owned()])
        .unwrap_or_else(|| panic!("no compat rule: {rules:?}"));
    let wanted = [
        "uname",
        "getcpu",
        "sched_yield",
        "chmod",
        "memfd_create",
        "close_range",
        "pidfd_open",
        // i386 only: a 32-bit libc's start-up.
        "set_thread_area",
    ];
    let m = missing(compat, &wanted);
    assert!(m.is_empty(), "missing {m:?} in {compat:?}");
    assert_no_stray_cgroup(&parent);
}

/// A 64-bit process that issues `int $0x80` makes 32-bit syscalls: they
/// are recorded as compat (the i386 names, in the compat rule), not as the
/// native syscalls of the same numbers (arch_prctl, writev).
#[cfg(target_arch = "x86_64")]
#[test]
fn records_int80_of_a_64bit_process_as_compat() {
    require_root();
    let dir = scratch("record-int80");
    let parent = cgroup_parent("int80");
    let out = dir.join("profile.json");
    run_ok(&mut record(
        &parent,
        &out,
        &[test_program().to_str().unwrap(), "int80"],
    ));
    let rules = names_by_arch(&fs::read_to_string(&out).unwrap());
    let compat = rules
        .get(&vec![recorder::profile::host_filter_arch().to_owned()])
        .unwrap_or_else(|| panic!("no compat rule: {rules:?}"));
    let m = missing(compat, &["sched_yield", "getpid"]);
    assert!(m.is_empty(), "missing {m:?} in {compat:?}");
    let native = rules.get(&Vec::new()).cloned().unwrap_or_default();
    assert!(!native.contains("writev"), "native: {native:?}");
    assert_no_stray_cgroup(&parent);
}

/// The syscall names in an `strace -f -o FILE` log, and the names seen
/// before the first execve.
fn strace_names(log: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut before_exec = Vec::new();
    let mut exec_seen = false;
    for line in log.lines() {
        // "1234  openat(AT_FDCWD, ..." with -f: strip the pid.
        let rest = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        // "<... wait4 resumed>...": the call was counted at its
        // "wait4(... <unfinished ...>" line. "--- SIGCHLD ...": a signal;
        // "+++ exited with 0 +++": an exit.
        if rest.is_empty()
            || rest.starts_with("<...")
            || rest.starts_with("---")
            || rest.starts_with("+++")
        {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            !name.is_empty() && rest[name.len()..].starts_with('('),
            "unexpected strace line: {line}"
        );
        if name == "execve" {
            exec_seen = true;
        } else if !exec_seen {
            before_exec.push(name.clone());
        }
        names.insert(name);
    }
    (names, before_exec)
}

#[test]
fn strace_parser_handles_unfinished_and_resumed_calls() {
    let log = "\
100   execve(\"/bin/sh\", [\"sh\"], 0x7ffd /* 5 vars */) = 0
100   wait4(-1,  <unfinished ...>
101   write(1, \"x\\n\", 2)             = 2
101   exit_group(0)                     = ?
101   +++ exited with 0 +++
100   <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 101
100   --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=101} ---
100   rt_sigreturn({mask=[]})           = 101
";
    let (names, before) = strace_names(log);
    let expected: BTreeSet<String> = ["execve", "wait4", "write", "exit_group", "rt_sigreturn"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, expected);
    assert!(before.is_empty());
}

/// The recorded set is the ground truth strace sees, no more, no less.
///
/// The command runs under /bin/sh (dash on Debian) with coreutils rather
/// than busybox: dynamically linked programs go through the dynamic loader,
/// and the shell forks, pipes and execs three separate programs, so more of
/// the recorder's paths (fork/clone children, exec, many syscalls) are
/// compared. Both runs see the same environment: stdin /dev/null, stdout and
/// stderr pipes.
#[test]
fn matches_strace_ground_truth() {
    require_root();
    let dir = scratch("record-strace");
    let parent = cgroup_parent("strace");
    let cmd = ["sh", "-c", "ls / | wc -l; cat /etc/hostname"];

    let log = dir.join("strace.log");
    run_ok(
        Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&log)
            .args(cmd)
            .stdin(Stdio::null()),
    );
    let (traced, before_exec) = strace_names(&fs::read_to_string(&log).unwrap());
    // strace forks, lets the child stop itself, attaches with PTRACE_SEIZE
    // and only then lets it call execve: its own fork/exec path (the
    // child's getpid, kill(SIGSTOP) and the like) happens before tracing
    // starts and is not in the log. The recorder, likewise, starts at CMD's
    // execve: the child joins the recorded cgroup by its last syscall before
    // execve (the write to cgroup.procs, which enters before the move).
    assert!(
        before_exec.is_empty(),
        "strace logged {before_exec:?} before the first execve; this strace traces its own start-up"
    );
    assert!(traced.len() > 20, "strace saw too little: {traced:?}");

    let out = dir.join("profile.json");
    let mut rec = record(&parent, &out, &cmd);
    rec.stdin(Stdio::null());
    run_ok(&mut rec);
    let recorded = allowed_names(&fs::read_to_string(&out).unwrap());

    let only_strace: Vec<_> = traced.difference(&recorded).collect();
    let only_recorded: Vec<_> = recorded.difference(&traced).collect();
    assert!(
        only_strace.is_empty() && only_recorded.is_empty(),
        "recorded != strace\nonly strace: {only_strace:?}\nonly recorded: {only_recorded:?}\nrecorded: {recorded:?}"
    );
    assert_no_stray_cgroup(&parent);
}

/// The rare syscalls of `syscalls race`, one per thread, in thread order.
const RACERS: [&str; 16] = [
    "getpriority",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "getitimer",
    "times",
    "sysinfo",
    "getrusage",
    "capget",
    "personality",
    "getpgid",
    "getsid",
    "ioprio_get",
    "getresuid",
    "getresgid",
];

/// A process that moves itself out of the recorded cgroup and back, four
/// times, making a rare syscall right after each move: the ones made away
/// are not recorded, the ones made back home are. The kernel remembers the
/// last caller on each CPU and its cgroup; this fails if a migration does
/// not make it look the cgroup up again.
#[test]
fn syscalls_right_after_a_cgroup_move_go_to_the_new_cgroup() {
    require_root();
    let dir = scratch("record-hop");
    let parent = cgroup_parent("hop");
    let h = Hierarchy::detect().unwrap();
    let away = format!("/recorder-test-hop-away-{}", std::process::id());
    h.create(&away).unwrap();
    let program = test_program().to_str().unwrap();
    let out = dir.join("profile.json");
    let mount = h.mount.to_str().unwrap();
    let names = record_names(&parent, &out, &[program, "hop", mount, &away]);
    h.remove(&away, Duration::from_secs(5)).unwrap();
    let (made_away, made_home) = RACERS[..8].split_at(4);
    let leaked: Vec<_> = made_away.iter().filter(|n| names.contains(**n)).collect();
    assert!(
        leaked.is_empty(),
        "made outside the recorded cgroup but recorded: {leaked:?}"
    );
    assert!(
        missing(&names, made_home).is_empty(),
        "made back in the recorded cgroup but missing: {:?}",
        missing(&names, made_home)
    );
    assert_no_stray_cgroup(&parent);
}

/// 16 threads make 16 different syscalls at the same moment (most of them
/// in the same two bitmap words); 50 fresh recordings, none may lose one.
#[test]
fn concurrent_threads_lose_nothing() {
    require_root();
    let dir = scratch("record-race");
    let parent = cgroup_parent("race");
    let program = test_program().to_str().unwrap();
    let out = dir.join("profile.json");

    // The same program without the rare calls records none of them: they
    // can only come from the racing threads.
    let idle = record_names(&parent, &out, &[program, "idle"]);
    let present: Vec<_> = RACERS.iter().filter(|n| idle.contains(**n)).collect();
    assert!(present.is_empty(), "the idle run made {present:?}");

    let mut lost = Vec::new();
    for round in 0..50 {
        fs::remove_file(&out).unwrap();
        let names = record_names(&parent, &out, &[program, "race"]);
        let m = missing(&names, &RACERS);
        if !m.is_empty() {
            lost.push((round, m));
        }
    }
    assert!(lost.is_empty(), "lost syscalls (round, names): {lost:?}");
    assert_no_stray_cgroup(&parent);
}

#[test]
fn passes_on_the_exit_code() {
    require_root();
    let parent = cgroup_parent("exit");
    let out = run(recorderctl().args([
        "record",
        "--cgroup-parent",
        &parent,
        "--",
        "sh",
        "-c",
        "exit 7",
    ]));
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    // The profile still goes to stdout.
    let names = allowed_names(&String::from_utf8_lossy(&out.stdout));
    assert!(names.contains("exit_group"), "{names:?}");
    assert_no_stray_cgroup(&parent);
}

#[test]
fn killed_command_gives_128_plus_signal() {
    require_root();
    let parent = cgroup_parent("killed");
    let out = run(recorderctl().args([
        "record",
        "--cgroup-parent",
        &parent,
        "--",
        "sh",
        "-c",
        "kill -KILL $$",
    ]));
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGKILL),
        "stderr: {}",
        stderr(&out)
    );
    let names = allowed_names(&String::from_utf8_lossy(&out.stdout));
    assert!(names.contains("kill"), "{names:?}");
    assert_no_stray_cgroup(&parent);
}

/// Waits for `child`, killing it and failing if it hangs (a safeguard so
/// that a broken build fails instead of hanging, not a timing assertion).
/// On a hang, what is left in the recording's cgroups is killed too.
fn wait_or_kill(child: &mut Child, parent: &str, what: &str) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            _ = child.kill();
            _ = child.wait();
            let hierarchy = Hierarchy::detect().unwrap();
            let mut cgroups = hierarchy.descendants(parent).unwrap_or_default();
            cgroups.reverse();
            for cgroup in cgroups {
                _ = hierarchy.remove(&cgroup, Duration::from_secs(5));
            }
            _ = hierarchy.remove(parent, Duration::from_secs(5));
            panic!("{what} did not end");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_is_forwarded_and_the_profile_written() {
    require_root();
    let dir = scratch("record-sigint");
    let parent = cgroup_parent("sigint");
    let out = dir.join("profile.json");
    let ready = dir.join("ready");
    let got = dir.join("got-sigint");
    // CMD says it is ready, then loops until SIGINT makes it exit 3.
    let script = format!(
        "trap 'echo int > {got}; exit 3' INT; touch {ready}; while :; do sleep 0.05; done",
        got = got.display(),
        ready = ready.display()
    );
    let mut child = record(&parent, &out, &["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("recorderctl ended before CMD was ready: {status}");
        }
        assert!(Instant::now() < deadline, "CMD never became ready");
        thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = wait_or_kill(&mut child, &parent, "recorderctl after SIGINT");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // Exit 3 comes from CMD's trap: recorderctl lived on and passed it on.
    assert_eq!(status.code(), Some(3), "{status}; stderr: {err}");
    assert_eq!(fs::read_to_string(&got).unwrap().trim(), "int");
    let names = allowed_names(&fs::read_to_string(&out).unwrap());
    // The trap ran a signal handler inside the recording.
    assert!(names.contains("rt_sigreturn"), "{names:?}");
    assert_no_stray_cgroup(&parent);
}

#[test]
fn not_root_is_a_clear_error() {
    require_root();
    let parent = cgroup_parent("notroot");
    // A copy nobody can run: the checkout may live where only root can
    // enter (e.g. /root).
    let dir = std::env::temp_dir().join(format!("recorder-test-notroot-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("recorderctl");
    fs::copy(env!("CARGO_BIN_EXE_recorderctl"), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&bin)
        .args(["record", "--cgroup-parent", &parent, "--", "true"])
        .current_dir("/"));
    fs::remove_dir_all(&dir).unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("CAP_BPF") && err.contains("CAP_PERFMON"),
        "stderr: {err}"
    );
    assert!(
        out.stdout.is_empty(),
        "no profile expected: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_no_stray_cgroup(&parent);
}

#[test]
fn missing_btf_is_a_clear_error() {
    require_root();
    let parent = cgroup_parent("nobtf");
    let out = run(recorderctl().args([
        "record",
        "--btf",
        "/nonexistent/vmlinux",
        "--cgroup-parent",
        &parent,
        "--",
        "true",
    ]));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("/nonexistent/vmlinux") && err.contains("BTF"),
        "stderr: {err}"
    );
    assert_no_stray_cgroup(&parent);
}

#[test]
fn command_not_found_exits_127() {
    require_root();
    let parent = cgroup_parent("notfound");
    let out = run(recorderctl().args([
        "record",
        "--cgroup-parent",
        &parent,
        "--",
        "recorder-no-such-command",
    ]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(127), "stderr: {err}");
    assert!(
        err.contains("recorder-no-such-command: command not found"),
        "stderr: {err}"
    );
    assert_no_stray_cgroup(&parent);
}

/// A read-only tmpfs, unmounted however the test ends.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(dir: PathBuf) -> Self {
        fs::create_dir_all(&dir).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
                .arg(&dir),
        );
        Self(dir)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn unwritable_output_is_a_clear_error() {
    require_root();
    let dir = scratch("record-unwritable");
    let ro = ReadOnlyMount::new(dir.join("ro"));
    let marker = dir.join("ran");
    for (i, target) in [
        PathBuf::from("/proc/x/y"),
        ro.0.join("profile.json"),
        dir, // a directory
    ]
    .iter()
    .enumerate()
    {
        let parent = cgroup_parent(&format!("unwritable{i}"));
        let out = run(&mut record(
            &parent,
            target,
            &["touch", marker.to_str().unwrap()],
        ));
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "--out {}: {}",
            target.display(),
            out.status
        );
        assert!(
            err.contains(&target.display().to_string()) && err.contains("not writable"),
            "--out {}: stderr: {err}",
            target.display()
        );
        // Nothing was run: a recording that cannot be kept is not started.
        assert!(!marker.exists(), "--out {}: CMD ran", target.display());
        assert_no_stray_cgroup(&parent);
    }
}
