/*
 * A test program for recorder/tests/record.rs: makes known syscalls from
 * several threads, always through syscall(2) so that libc cannot swap one
 * syscall for another (glibc's chmod(), for one, may use fchmodat).
 *
 *   syscalls known DIR  uname, getcpu, sched_yield, chmod, memfd_create,
 *                       close_range, pidfd_open, each from its own thread
 *                       (chmod on a file it creates in DIR).
 *   syscalls race       16 threads wait at a barrier, then each makes a
 *                       different rare syscall at the same moment.
 *   syscalls idle       the same threads and barrier, no rare syscalls
 *                       (the baseline for "race").
 *   syscalls hop MOUNT AWAY
 *                       four times: moves itself into cgroup AWAY (a path
 *                       under the cgroup2 mount MOUNT), makes rare syscall
 *                       i (0-3), moves back to the cgroup it started in and
 *                       makes rare syscall 4+i. Each right after the move.
 *   syscalls spin CPU FLAG
 *                       pins itself to CPU, prints "ready" once it has made
 *                       1000 getppid calls, and goes on making them until
 *                       the file FLAG exists; then makes rare syscall 0.
 *
 * Exits 0 on success, 2 on a usage error, 3 if a thread cannot start, 6 if
 * it cannot pin itself.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_memfd_create
#define SYS_memfd_create 319
#endif

static const char *dir;

static void *do_uname(void *arg) {
    struct utsname u;
    (void)arg;
    syscall(SYS_uname, &u);
    return NULL;
}
static void *do_getcpu(void *arg) {
    unsigned cpu, node;
    (void)arg;
    syscall(SYS_getcpu, &cpu, &node, NULL);
    return NULL;
}
static void *do_sched_yield(void *arg) {
    (void)arg;
    syscall(SYS_sched_yield);
    return NULL;
}
static void *do_chmod(void *arg) {
    char path[4096];
    (void)arg;
    snprintf(path, sizeof path, "%s/chmod-me", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    if (fd >= 0)
        close(fd);
    syscall(SYS_chmod, path, 0640);
    return NULL;
}
static void *do_memfd(void *arg) {
    (void)arg;
    long fd = syscall(SYS_memfd_create, "recorder-test", 0);
    if (fd >= 0)
        close((int)fd);
    return NULL;
}
static void *do_close_range(void *arg) {
    (void)arg;
    /* A range no descriptor is in: closes nothing. */
    syscall(SYS_close_range, 1000000, 1000010, 0);
    return NULL;
}
static void *do_pidfd_open(void *arg) {
    (void)arg;
    long fd = syscall(SYS_pidfd_open, getpid(), 0);
    if (fd >= 0)
        close((int)fd);
    return NULL;
}

static int known(void) {
    void *(*fns[])(void *) = {do_uname, do_getcpu, do_sched_yield, do_chmod,
                              do_memfd, do_close_range, do_pidfd_open};
    enum { N = sizeof fns / sizeof fns[0] };
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        if (pthread_create(&t[i], NULL, fns[i], NULL) != 0)
            return 3;
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    return 0;
}

/* The race: each thread makes one of these, all at once. They are harmless
 * queries that neither libc's start-up nor pthreads make; the Rust test
 * lists the same names in the same order. */
enum { RACERS = 16 };
static pthread_barrier_t barrier;
static int idle;

static void rare(int which) {
    struct timespec ts;
    struct itimerval it;
    struct tms tms;
    struct sysinfo si;
    struct rusage ru;
    struct __user_cap_header_struct hdr = {0, 0};
    uid_t r, e, s;
    gid_t gr, ge, gs;
    switch (which) {
    case 0: syscall(SYS_getpriority, PRIO_PROCESS, 0); break;
    case 1: syscall(SYS_sched_getscheduler, 0); break;
    case 2: syscall(SYS_sched_get_priority_max, 1); break;
    case 3: syscall(SYS_sched_get_priority_min, 1); break;
    case 4: syscall(SYS_sched_rr_get_interval, 0, &ts); break;
    case 5: syscall(SYS_getitimer, ITIMER_REAL, &it); break;
    case 6: syscall(SYS_times, &tms); break;
    case 7: syscall(SYS_sysinfo, &si); break;
    case 8: syscall(SYS_getrusage, RUSAGE_SELF, &ru); break;
    case 9: syscall(SYS_capget, &hdr, NULL); break; /* version probe */
    case 10: syscall(SYS_personality, 0xffffffffUL); break; /* query only */
    case 11: syscall(SYS_getpgid, 0); break;
    case 12: syscall(SYS_getsid, 0); break;
    case 13: syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0); break;
    case 14: syscall(SYS_getresuid, &r, &e, &s); break;
    case 15: syscall(SYS_getresgid, &gr, &ge, &gs); break;
    }
}

static void *racer(void *arg) {
    int which = (int)(long)arg;
    pthread_barrier_wait(&barrier);
    if (!idle)
        rare(which);
    return NULL;
}

static int race(void) {
    pthread_t t[RACERS];
    pthread_barrier_init(&barrier, NULL, RACERS);
    for (long i = 0; i < RACERS; i++)
        if (pthread_create(&t[i], NULL, racer, (void *)i) != 0)
            return 3;
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    return 0;
}

/* Writes this process's pid into MOUNT REL/cgroup.procs; returns the open
 * file (closed by the caller only after the next syscall) or -1. */
static int move_to(const char *mount, const char *rel) {
    char path[4096], pid[32];
    snprintf(path, sizeof path, "%s%s/cgroup.procs", mount, rel);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int n = snprintf(pid, sizeof pid, "%d", getpid());
    if (write(fd, pid, n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

static int hop(const char *mount, const char *away) {
    char line[4096], home[4096];
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 4;
    home[0] = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(home, sizeof home, "%s", line + 3);
        }
    fclose(f);
    if (!home[0])
        return 4;
    for (int i = 0; i < 4; i++) {
        int fd = move_to(mount, away);
        if (fd < 0)
            return 5;
        rare(i);
        close(fd);
        fd = move_to(mount, home);
        if (fd < 0)
            return 5;
        rare(4 + i);
        close(fd);
    }
    return 0;
}

static int spin(int cpu, const char *flag) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        return 6;
    for (int i = 0; i < 1000; i++)
        syscall(SYS_getppid);
    printf("ready\n");
    fflush(stdout);
    /* No library call in the loop: every syscall here is one of these two. */
    while (syscall(SYS_faccessat, AT_FDCWD, flag, F_OK, 0) != 0)
        syscall(SYS_getppid);
    rare(0);
    return 0;
}

/* A 64-bit process making 32-bit syscalls through int $0x80: i386's
 * sched_yield (158, arch_prctl on x86_64) and getpid (20, writev on
 * x86_64). The kernel runs them as compat syscalls. */
static int int80(void) {
#if defined(__x86_64__)
    long yield = 158, pid = 20;
    __asm__ volatile("int $0x80" : "+a"(yield) : : "r8", "r9", "r10", "r11", "memory");
    __asm__ volatile("int $0x80" : "+a"(pid) : : "r8", "r9", "r10", "r11", "memory");
    return yield == 0 && pid > 0 ? 0 : 1;
#else
    return 3;
#endif
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "int80") == 0)
        return int80();
    if (argc == 3 && strcmp(argv[1], "known") == 0) {
        dir = argv[2];
        return known();
    }
    if (argc == 2 && strcmp(argv[1], "race") == 0)
        return race();
    if (argc == 2 && strcmp(argv[1], "idle") == 0) {
        idle = 1;
        return race();
    }
    if (argc == 4 && strcmp(argv[1], "hop") == 0)
        return hop(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "spin") == 0)
        return spin(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: %s known DIR | race | idle | hop MOUNT AWAY | spin CPU FLAG | int80\n", argv[0]);
    return 2;
}
