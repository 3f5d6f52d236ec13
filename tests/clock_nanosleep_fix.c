/* Preloaded before Debian's libfaketime (0.9.10) in tests/test_one_clock.py, to work around its bug
 * with FAKETIME_DONT_FAKE_MONOTONIC (libfaketime issue 426): Python 3.11's time.sleep() calls
 * clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...), which libfaketime shifts by the faked offset
 * into a negative time (EINVAL). The monotonic clock is not faked there, so a monotonic sleep goes
 * straight to the kernel; every other clock still goes through libfaketime. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *request, struct timespec *remain) {
    if (clock_id == CLOCK_MONOTONIC) {
        return syscall(SYS_clock_nanosleep, clock_id, flags, request, remain) == 0 ? 0 : errno;
    }
    int (*next)(clockid_t, int, const struct timespec *, struct timespec *) = dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clock_id, flags, request, remain);
}
