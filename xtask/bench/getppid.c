/* Syscall microbenchmark for `cargo xtask bench`.
 *
 * usage: getppid ITERATIONS THREADS
 *
 * Each of THREADS threads calls getppid(2) ITERATIONS times through
 * syscall(2) (never a cached libc value); all threads start together on a
 * barrier. Prints one line: the mean over threads of each thread's
 * nanoseconds per call.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long iterations;
static pthread_barrier_t barrier;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *worker(void *out)
{
	pthread_barrier_wait(&barrier);
	double start = now_ns();
	for (long i = 0; i < iterations; i++)
		syscall(SYS_getppid);
	*(double *)out = (now_ns() - start) / (double)iterations;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s ITERATIONS THREADS\n", argv[0]);
		return 2;
	}
	iterations = atol(argv[1]);
	long threads = atol(argv[2]);
	if (iterations <= 0 || threads <= 0 || threads > 1024) {
		fprintf(stderr, "%s: bad arguments\n", argv[0]);
		return 2;
	}
	pthread_t *tids = calloc(threads, sizeof(*tids));
	double *ns = calloc(threads, sizeof(*ns));
	if (!tids || !ns) {
		perror("calloc");
		return 1;
	}
	pthread_barrier_init(&barrier, NULL, (unsigned)threads);
	for (long t = 0; t < threads; t++) {
		if (pthread_create(&tids[t], NULL, worker, &ns[t]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	double sum = 0;
	for (long t = 0; t < threads; t++) {
		pthread_join(tids[t], NULL);
		sum += ns[t];
	}
	printf("%.3f\n", sum / (double)threads);
	return 0;
}
