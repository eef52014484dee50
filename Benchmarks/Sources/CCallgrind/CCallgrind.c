#include "CCallgrind.h"
#include <valgrind/callgrind.h>

int persona_callgrind_running(void) { return RUNNING_ON_VALGRIND ? 1 : 0; }

void persona_callgrind_start(void) {
    CALLGRIND_START_INSTRUMENTATION;
    CALLGRIND_ZERO_STATS;
}

void persona_callgrind_stop_and_dump(const char *reason) {
    CALLGRIND_STOP_INSTRUMENTATION;
    CALLGRIND_DUMP_STATS_AT(reason);
    CALLGRIND_ZERO_STATS;
}

// libdispatch parks the main thread in sigsuspend with a mask that lies in read-only memory;
// valgrind 3.19 edits the mask in place (sys_rt_sigsuspend) and dies of the write. This
// sigsuspend, exported from the benchmark (see Package.swift), takes the mask by copy, so a
// run under valgrind lives; it is the same system call.
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, 8);
}
