/* A slower disk for the benchmarks: every fsync and fdatasync of the process waits
 * SLOW_FSYNC_US microseconds (1000 if unset) before the real call, as on a VM whose
 * virtual disk takes a millisecond to make a write durable. Measurement only; nothing in
 * Wardgate uses it.
 *
 *   gcc -shared -fPIC -O2 -o /tmp/slow_fsync.so crates/server/benches/slow-fsync/slow_fsync.c -ldl
 *   LD_PRELOAD=/tmp/slow_fsync.so cargo bench -p wardgate-server --bench oidc
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static void wait_for_the_disk(void) {
    const char *us = getenv("SLOW_FSYNC_US");
    usleep(us ? (useconds_t)atoi(us) : 1000);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_for_the_disk();
    return real(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_for_the_disk();
    return real(fd);
}
