/*
 * A test program for recorder/tests/faithful.rs: starts 4 pthreads, joins
 * them, then changes a file's mode, and prints "threads ok".
 *
 * Built static with -pthread: glibc's pthread_create tries clone3 first
 * and falls back to clone only when clone3 answers ENOSYS, which is what
 * docker's default seccomp filter answers. A profile recorded under that
 * filter sees only clone; unless it answers clone3 with ENOSYS too,
 * pthread_create fails under it.
 *
 * Exits 0 on success, 1 when a step fails (with the reason on stderr).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREADS 4

static void *work(void *arg)
{
	return arg;
}

int main(void)
{
	pthread_t threads[THREADS];
	const char *path = "/tmp/threads-file";
	int fd, err;

	for (int i = 0; i < THREADS; i++) {
		err = pthread_create(&threads[i], NULL, work, NULL);
		if (err != 0) {
			fprintf(stderr, "pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	for (int i = 0; i < THREADS; i++) {
		err = pthread_join(threads[i], NULL);
		if (err != 0) {
			fprintf(stderr, "pthread_join: %s\n", strerror(err));
			return 1;
		}
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	close(fd);
	if (chmod(path, 0600) != 0) {
		perror("chmod");
		return 1;
	}
	printf("threads ok\n");
	return 0;
}
