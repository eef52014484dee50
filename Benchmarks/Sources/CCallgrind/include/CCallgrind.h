// Callgrind's client requests as functions Swift can call: they switch instruction counting
// on and off around the measured calls and dump the counts under a name. Outside valgrind
// each is a few no-op instructions.
#ifndef PERSONA_CCALLGRIND_H
#define PERSONA_CCALLGRIND_H

/// Whether this process runs under valgrind.
int persona_callgrind_running(void);
/// Counts from here (instrumentation on, counters zeroed).
void persona_callgrind_start(void);
/// Stops counting and writes the counts so far as a dump named `reason`.
void persona_callgrind_stop_and_dump(const char *reason);

#endif
