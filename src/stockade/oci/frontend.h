/* What the front end (frontend.c) and its create/run from a stored plan (fastexec.c)
 * share; the set-up steps themselves are the executor's (executor.h). */
#ifndef STOCKADE_FRONTEND_H
#define STOCKADE_FRONTEND_H

#include "executor.h"

/* frontend.c */
/* The Python runtime, with the arguments exactly as given. */
void fallback(void) __attribute__((noreturn));
/* Field 22 (start time) and field 3 (state) of /proc/pid/stat; 0: read, -1: no such pid. */
int proc_stat(long pid, unsigned long long *start, char *state);
/* SIGKILL what is left in the cgroup, then rmdir it (as cgroupfs.kill_and_rmdir). */
int kill_and_rmdir(const char *dir);

/* fastexec.c */
/* create (exit 0 once the container waits at its gate) or run, from a stored plan; any
   miss or failure before the payload runs hands the call to Python. */
void fast_create(const char *root, const char *id, const char *bundle_arg, const char *pid_file,
                 int run) __attribute__((noreturn));
#ifdef STOCKADE_TEST_HOOKS
/* `--read-plan FILE`: print what the reader read, or why it refused it (exit 1). */
void read_plan_for_tests(const char *path) __attribute__((noreturn));
#endif

#endif
