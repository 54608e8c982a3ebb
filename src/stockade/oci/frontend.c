/* stockade-oci: the compiled front end of `stockade oci` for the hot lifecycle verbs.
 *
 * Engines call the runtime once per verb; a Python interpreter costs ~6 ms to start
 * here, a whole `runc start` ~4 ms. This program does `start`, `kill`, `delete` and `state` on
 * the common path itself (reading the `fast` file that `stockade oci create` writes
 * next to its state), `create` and `run` from a stored plan (fastexec.c), and hands
 * EVERYTHING else to the Python CLI by execv: other verbs, hooks, odd flags, any error
 * or unexpected state. It never prints an error of its own: the Python runtime
 * re-checks from scratch and reports as usual, so the two can only differ in speed.
 * Only ever a no-op, the same effect, or an undone attempt before falling back.
 *
 * Build: cc -O2 -DSTOCKADE_CLI='"/path/to/stockade"' -DSTOCKADE_STAMP='"..."'
 * -o stockade-oci frontend.c (python -m stockade.oci.frontend OUT does this, with
 * stockade.oci.fastplan.stamp(); scripts/dev setup runs it).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef STOCKADE_CLI
#error "build with -DSTOCKADE_CLI='\"/path/to/stockade\"'"
#endif
#ifndef STOCKADE_STAMP
#error "build with -DSTOCKADE_STAMP='\"...\"' (stockade.oci.frontend.stamp())"
#endif

#define DEFAULT_ROOT "/run/stockade-oci"
#define MAX_CGROUPS 16

static int g_argc;
static char **g_argv;

/* The Python runtime, with the arguments exactly as given. */
static void __attribute__((noreturn)) fallback(void) {
    char **args = calloc((size_t)g_argc + 2, sizeof(char *));
    if (args != NULL) {
        args[0] = STOCKADE_CLI;
        args[1] = "oci";
        for (int i = 1; i < g_argc; i++)
            args[i + 1] = g_argv[i];
        execv(STOCKADE_CLI, args);
    }
    fprintf(stderr, "stockade-oci: cannot run %s: %s\n", STOCKADE_CLI, strerror(errno));
    _exit(127);
}

/* stockade.oci.state.check_id: letters, digits, _ + - . ; 1..255 (NAME_MAX), no
   leading "." (the root's own entries). Anything else: Python says why. */
static int valid_id(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 255 || id[0] == '.')
        return 0;
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '+' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

struct fast {
    long pid;
    unsigned long long starttime;
    int hooks;
    int idrange; /* an id range pinned to the container: delete is Python's (idalloc.unpin) */
    int ncgroups;
    char cgroups[MAX_CGROUPS][4096];
};

/* `<dir>/fast`: pid=, starttime=, hooks=, cgroup= (repeated), idrange=. Complete or
   rejected. */
static int read_fast(int dirfd, struct fast *f) {
    char buf[65536];
    int fd = openat(dirfd, "fast", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0 || n == (ssize_t)sizeof buf - 1)
        return -1;
    buf[n] = '\0';
    memset(f, 0, sizeof *f);
    f->pid = -1;
    f->hooks = -1;
    int have_start = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL)
            return -1;
        *eq = '\0';
        const char *v = eq + 1;
        char *end = NULL;
        if (strcmp(line, "pid") == 0) {
            f->pid = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0')
                return -1;
        } else if (strcmp(line, "starttime") == 0) {
            f->starttime = strtoull(v, &end, 10);
            if (*v == '\0' || *end != '\0')
                return -1;
            have_start = 1;
        } else if (strcmp(line, "hooks") == 0) {
            f->hooks = strcmp(v, "0") == 0 ? 0 : 1;
        } else if (strcmp(line, "idrange") == 0) {
            f->idrange = strcmp(v, "0") == 0 ? 0 : 1;
        } else if (strcmp(line, "cgroup") == 0) {
            if (f->ncgroups >= MAX_CGROUPS || strlen(v) >= sizeof f->cgroups[0] || v[0] != '/')
                return -1;
            strcpy(f->cgroups[f->ncgroups++], v);
        } else {
            return -1; /* a key this build does not know: let Python decide */
        }
    }
    return (f->pid > 0 && have_start && f->hooks >= 0) ? 0 : -1;
}

/* One read of a small (kernel) file into buf, NUL-terminated: its length, or -1 if it
   cannot be opened or read or is empty. */
static ssize_t read_text(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? n : -1;
}

/* One write of `text` to an existing (kernel) file: 0, or -1 with errno. */
static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Field 22 (start time) and field 3 (state) of /proc/pid/stat; 0: read, -1: no such pid. */
static int proc_stat(long pid, unsigned long long *start, char *state) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (read_text(path, buf, sizeof buf) < 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return -1;
    p += 2;
    *state = *p;
    /* after ")": state is field 3; start time is field 22, i.e. 19 more fields on */
    for (int i = 0; i < 19; i++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -1;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return 0;
}

enum status { STOPPED, CREATED, RUNNING };

/* As stockade.oci.state.status, for a container whose create has finished. */
static enum status status_of(int dirfd, const struct fast *f) {
    unsigned long long start;
    char state;
    if (proc_stat(f->pid, &start, &state) != 0 || start != f->starttime || state == 'Z' ||
        state == 'X')
        return STOPPED;
    struct stat st;
    if (fstatat(dirfd, "exec.fifo", &st, AT_SYMLINK_NOFOLLOW) == 0)
        return CREATED;
    return RUNNING;
}

static void sleep_ns(long ns) {
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void __attribute__((noreturn)) do_start(int dirfd) {
    struct fast f;
    if (read_fast(dirfd, &f) != 0 || f.hooks != 0 || status_of(dirfd, &f) != CREATED)
        fallback();
    int fd = openat(dirfd, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        fallback(); /* nobody waits on it any more: Python says why */
    static const char gate[9] = {'s', 0, 0, 0, 0, 0, 0, 0, 0}; /* "s" + no state */
    ssize_t n = write(fd, gate, sizeof gate);
    close(fd);
    if (n != (ssize_t)sizeof gate)
        fallback();
    unlinkat(dirfd, "exec.fifo", 0); /* from here on the status is "running" */
    _exit(0);
}

static int parse_signal(const char *s) {
    static const struct { const char *name; int num; } names[] = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
        {"STOP", SIGSTOP}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM}, {"PIPE", SIGPIPE},
    };
    char *end = NULL;
    if (*s >= '0' && *s <= '9') {
        long n = strtol(s, &end, 10);
        return (*end == '\0' && n > 0 && n < 65) ? (int)n : -1;
    }
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].num;
    return -1; /* anything rarer: Python's table */
}

/* A frozen cgroup's tasks cannot act on SIGKILL: thaw it (v1 freezer.state, v2
   cgroup.freeze; as cgroupfs.kill_and_rmdir). Nothing to do without a freezer. */
static void thaw(const char *dir) {
    static const char *files[2][2] = {{"freezer.state", "THAWED"}, {"cgroup.freeze", "0"}};
    for (int i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
        if (write_text(path, files[i][1]) == 0 || errno != ENOENT)
            return;
    }
}

static void __attribute__((noreturn)) do_kill(int dirfd, const char *sigtext) {
    struct fast f;
    int sig = parse_signal(sigtext);
    if (sig < 0 || read_fast(dirfd, &f) != 0 || status_of(dirfd, &f) == STOPPED)
        fallback();
    if (kill((pid_t)f.pid, sig) != 0 && errno != ESRCH)
        fallback();
    if (sig == SIGKILL) /* as runc: a paused container is thawed, so that it can die */
        for (int i = 0; i < f.ncgroups; i++)
            thaw(f.cgroups[i]);
    _exit(0);
}

/* SIGKILL what is left in the cgroup, then rmdir it (as cgroupfs.kill_and_rmdir). */
static int kill_and_rmdir(const char *dir) {
    thaw(dir);
    double deadline = now() + 2.0;
    long delay = 500000;
    for (;;) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if ((errno != EBUSY && errno != ENOTEMPTY) || now() > deadline)
            return -1;
        char path[4200], buf[65536];
        snprintf(path, sizeof path, "%s/cgroup.procs", dir);
        if (read_text(path, buf, sizeof buf) > 0) {
            char *save = NULL;
            for (char *t = strtok_r(buf, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
                kill((pid_t)atol(t), SIGKILL);
        }
        sleep_ns(delay);
        delay = delay * 2 > 50000000 ? 50000000 : delay * 2;
    }
}

static void __attribute__((noreturn)) do_delete(int dirfd, const char *dir, int force) {
    struct fast f;
    if (read_fast(dirfd, &f) != 0 || f.hooks != 0 || f.idrange != 0)
        fallback();
    if (status_of(dirfd, &f) != STOPPED) {
        if (!force)
            fallback(); /* Python: "stop it first or use --force" */
        kill((pid_t)f.pid, SIGKILL);
        for (int i = 0; i < f.ncgroups; i++)
            thaw(f.cgroups[i]); /* a paused container: its process must be able to die */
        double deadline = now() + 5.0;
        while (status_of(dirfd, &f) != STOPPED) {
            if (now() > deadline)
                fallback();
            waitpid((pid_t)f.pid, NULL, WNOHANG); /* ours only when run by `oci run` */
            sleep_ns(1000000);
        }
    }
    for (int i = 0; i < f.ncgroups; i++)
        if (kill_and_rmdir(f.cgroups[i]) != 0)
            fallback(); /* Python retries and warns */
    /* The state directory holds only our own files (stockade.oci.state.remove). */
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL)
        fallback();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd, e->d_name, 0) != 0 && errno != ENOENT) {
            closedir(d);
            fallback();
        }
    }
    closedir(d);
    if (rmdir(dir) != 0 && errno != ENOENT)
        fallback();
    _exit(0);
}

#include "fastexec.c"

/* cgroupfs.is_frozen: v1 freezer.state FROZEN, v2 cgroup.events "frozen 1". */
static int frozen(const char *dir) {
    char path[4200], buf[4096];
    snprintf(path, sizeof path, "%s/freezer.state", dir);
    if (read_text(path, buf, sizeof buf) > 0)
        return strncmp(buf, "FROZEN", 6) == 0;
    snprintf(path, sizeof path, "%s/cgroup.events", dir);
    if (read_text(path, buf, sizeof buf) > 0)
        return strstr(buf, "frozen 1\n") != NULL;
    return 0;
}

/* `state ID`: lifecycle.state's JSON, as `stockade oci state` prints it, from the `fast`
   file and the `spec` tail create wrote (no interpreter: engines ask right after create). */
static void __attribute__((noreturn)) do_state(int dirfd, const char *id) {
    struct fast f;
    char tail[65536];
    if (read_fast(dirfd, &f) != 0)
        fallback();
    int fd = openat(dirfd, "spec", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        fallback();
    ssize_t n = read(fd, tail, sizeof tail);
    close(fd);
    if (n <= 0 || n == (ssize_t)sizeof tail || memchr(tail, '\0', (size_t)n) != NULL)
        fallback();
    enum status st = status_of(dirfd, &f);
    const char *name = st == CREATED ? "created" : st == RUNNING ? "running" : "stopped";
    for (int i = 0; st == RUNNING && i < f.ncgroups; i++)
        if (frozen(f.cgroups[i]))
            name = "paused";
    printf("{\n  \"ociVersion\": \"1.0.2\",\n  \"id\": \"%s\",\n  \"status\": \"%s\",\n"
           "  \"pid\": %ld,\n%.*s", id, name, st == STOPPED ? 0L : f.pid, (int)n, tail);
    if (fflush(stdout) != 0)
        _exit(1);
    _exit(0);
}

/* create|run [--bundle B] [--pid-file F] ID: a stored plan, else Python (fastexec.c). */
static void __attribute__((noreturn)) do_create(const char *root, int i, int run) {
    const char *bundle = ".", *pid_file = NULL, *id = NULL;
    const char *mode = getenv("STOCKADE_FAST");
    const char *fault = getenv("STOCKADE_TEST_FAULT"); /* injected faults: Python's steps */
    if ((mode != NULL && strcmp(mode, "off") == 0) || (fault != NULL && fault[0]))
        fallback();
    for (; i < g_argc; i++) {
        const char *a = g_argv[i];
        if ((strcmp(a, "--bundle") == 0 || strcmp(a, "-b") == 0) && i + 1 < g_argc)
            bundle = g_argv[++i];
        else if (strncmp(a, "--bundle=", 9) == 0)
            bundle = a + 9;
        else if (strcmp(a, "--pid-file") == 0 && i + 1 < g_argc)
            pid_file = g_argv[++i];
        else if (strncmp(a, "--pid-file=", 11) == 0)
            pid_file = a + 11;
        else if (strcmp(a, "--no-new-keyring") == 0)
            continue; /* accepted: stockade never creates a session keyring */
        else if (a[0] == '-' || id != NULL)
            fallback(); /* --console-socket, --detach, --policy, ...: Python, no plan */
        else
            id = a;
    }
    if (id == NULL || !valid_id(id))
        fallback();
    fast_create(root, id, bundle, pid_file, run);
}

int main(int argc, char **argv) {
    g_argc = argc;
    g_argv = argv;
    if (argc == 2 && strcmp(argv[1], "--stamp") == 0) { /* python -m stockade.oci.frontend */
        printf("%s\n", STOCKADE_STAMP);
        return 0;
    }
    const char *root = DEFAULT_ROOT;
    int i = 1;
    /* global flags, as stockade.oci.command.parse_fast accepts them */
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--debug") == 0)
            continue;
        if (strcmp(a, "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strncmp(a, "--root=", 7) == 0) {
            root = a + 7;
        } else if ((strcmp(a, "--log") == 0 || strcmp(a, "--log-format") == 0) && i + 1 < argc) {
            i++; /* used only on errors, which Python reports */
        } else if (strncmp(a, "--log=", 6) == 0 || strncmp(a, "--log-format=", 13) == 0) {
            continue;
        } else {
            fallback();
        }
    }
    if (i >= argc)
        fallback();
    const char *verb = argv[i++];
    if (strcmp(verb, "create") == 0 || strcmp(verb, "run") == 0)
        do_create(root, i, strcmp(verb, "run") == 0);
    int force = 0;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(verb, "delete") == 0 && (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0))
            force = 1;
        else if (a[0] == '-' || npos == 2)
            fallback();
        else
            pos[npos++] = a;
    }
    int is_start = strcmp(verb, "start") == 0, is_delete = strcmp(verb, "delete") == 0;
    int is_kill = strcmp(verb, "kill") == 0, is_state = strcmp(verb, "state") == 0;
    if (!(is_start || is_delete || is_kill || is_state) || npos == 0 || (npos == 2 && !is_kill) ||
        !valid_id(pos[0]))
        fallback();
    char dir[8192];
    if (snprintf(dir, sizeof dir, "%s/%s", root, pos[0]) >= (int)sizeof dir)
        fallback();
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 && errno == ENOENT && is_delete) {
        /* engines' shims delete a container again after it is gone: answer as Python
           does (stockade.oci.lifecycle.delete) without starting it */
        if (force)
            exit(0);
        fprintf(stderr, "stockade: container %s does not exist\n", pos[0]);
        exit(2);
    }
    if (dirfd < 0)
        fallback();
    if (is_kill)
        do_kill(dirfd, npos == 2 ? pos[1] : "SIGTERM");
    if (is_state)
        do_state(dirfd, pos[0]);
    /* start and delete of one container are serialised (stockade.oci.state.locked). The
       directory fd is close-on-exec: a fallback drops the lock and Python takes it anew. */
    if (flock(dirfd, LOCK_EX) != 0)
        fallback();
    if (is_start)
        do_start(dirfd);
    do_delete(dirfd, dir, force);
}
