/*
 * A test program for recorder/tests/reliability.rs: one thread per syscall
 * number given on the command line; all threads wait at a barrier, then
 * each makes its syscall once, at the same moment, with harmless arguments
 * (first argument -1, the rest 0: each call fails with EBADF, EFAULT or
 * EINVAL, and is still a syscall the recorder must see).
 *
 *   race64 NR...
 *
 * Exits 0 on success, 2 on a usage error, 3 if a thread cannot start.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_THREADS 256

static pthread_barrier_t barrier;

static void *run(void *arg) {
    long nr = (long)arg;
    pthread_barrier_wait(&barrier);
    syscall(nr, -1L, 0L, 0L, 0L, 0L, 0L);
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc - 1;
    pthread_t threads[MAX_THREADS];
    if (n < 1 || n > MAX_THREADS) {
        fprintf(stderr, "usage: race64 NR...\n");
        return 2;
    }
    if (pthread_barrier_init(&barrier, NULL, (unsigned)n) != 0)
        return 3;
    for (int i = 0; i < n; i++) {
        long nr = strtol(argv[i + 1], NULL, 10);
        if (pthread_create(&threads[i], NULL, run, (void *)nr) != 0)
            return 3;
    }
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    return 0;
}
