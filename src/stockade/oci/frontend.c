/* stockade-oci: the compiled front end of `stockade oci` for the hot lifecycle verbs.
 *
 * Engines call the runtime once per verb, and starting an interpreter costs more than
 * a whole `runc start`. This program does `start`, `kill`, `delete` and `state` on the
 * common path itself (reading the container's state.json), `create` and `run` from a
 * stored plan (fastexec.c, with the executor's steps; the plan: docs/EXECUTOR.md), and hands
 * EVERYTHING else to the Python CLI by execv: other verbs, hooks, odd flags, any error
 * or unexpected state. It never prints an error of its own: the Python runtime
 * re-checks from scratch and reports as usual, so the two can only differ in speed.
 * Only ever a no-op, the same effect, or an undone attempt before falling back.
 *
 * Built by the package's build (setup.py, through stockade.oci.frontend.build):
 * cc -O2 -DSTOCKADE_STAMP='"..."' -o stockade-oci frontend.c fastexec.c, the executor's
 * sources (../executor/, ../executor/steps/) and -ljson-c; the fallback is
 * the `stockade` next to it, or -DSTOCKADE_CLI='"/path/to/stockade"'.
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
#include <json-c/json.h>

#include "../executor/protocol.h"
#include "frontend.h"

#ifndef STOCKADE_STAMP
#error "build with -DSTOCKADE_STAMP='\"...\"' (stockade.oci.frontend.stamp())"
#endif

#define DEFAULT_ROOT "/run/stockade-oci"
#define MAX_CGROUPS 16

static int g_argc;
static char **g_argv;

/* The Python runtime: STOCKADE_CLI when built with one (the tests' builds), else the
   `stockade` console script next to this program (pip installs both into one bin/). */
static const char *cli_path(void) {
#ifdef STOCKADE_CLI
    return STOCKADE_CLI;
#else
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 16);
    char *slash = n > 0 ? memrchr(path, '/', (size_t)n) : NULL;
    if (slash == NULL)
        return "stockade";
    strcpy(slash + 1, "stockade");
    return path;
#endif
}

/* The Python runtime, with the arguments exactly as given. */
void fallback(void) {
    const char *cli = cli_path();
    char **args = calloc((size_t)g_argc + 2, sizeof(char *));
    if (args != NULL) {
        args[0] = (char *)cli;
        args[1] = "oci";
        for (int i = 1; i < g_argc; i++)
            args[i + 1] = g_argv[i];
        execv(cli, args);
    }
    fprintf(stderr, "stockade-oci: cannot run %s: %s\n", cli, strerror(errno));
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

/* What start, kill, delete and state need of a container's state.json (written by
   stockade.oci.state and by fastexec.c's write_state; its keys: docs/EXECUTOR.md). */
struct recorded {
    long pid;
    unsigned long long starttime;
    int hooks;
    int idrange; /* an id range pinned to the container: delete is Python's (idalloc.unpin) */
    int ncgroups;
    char cgroups[MAX_CGROUPS][4096];
    json_object *doc; /* the whole state, for `state` */
};

/* A string member of the state, or NULL when it is missing or not a string. */
static const char *state_str(json_object *doc, const char *key) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(doc, key, &v) || json_object_get_type(v) != json_type_string)
        return NULL;
    return json_object_get_string(v);
}

/* The non-empty lists of a `hooks` object: any makes start/delete Python's. */
static int any_hook(json_object *hooks) {
    if (json_object_get_type(hooks) != json_type_object)
        return -1;
    int any = 0;
    json_object_object_foreach(hooks, kind, list) {
        (void)kind;
        if (json_object_get_type(list) != json_type_array)
            return -1;
        any |= json_object_array_length(list) > 0;
    }
    return any;
}

/* `<dir>/state.json` of a container whose create has finished: complete or rejected (a
   create in progress, a key this build does not know, a value of another type: Python
   decides). */
static int read_state(int dirfd, struct recorded *f) {
    static const char *known[] = {"id", "pid", "creator", "creating", "bundle", "rootfs",
                                  "created", "owner", "annotations", "cgroup_dirs",
                                  "cgroup_pending", "start_hooks", "hooks", "starttime",
                                  "id_range"};
    char buf[1 << 16];
    int fd = openat(dirfd, "state.json", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n <= 0 || n == (ssize_t)sizeof buf)
        return -1;
    memset(f, 0, sizeof *f);
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return -1;
    json_object *doc = json_tokener_parse_ex(tok, buf, (int)n);
    int whole = json_tokener_get_error(tok) == json_tokener_success &&
                json_tokener_get_parse_end(tok) == (size_t)n;
    json_tokener_free(tok);
    if (doc == NULL || !whole || json_object_get_type(doc) != json_type_object)
        return -1;
    f->doc = doc;
    int have = 0; /* pid, starttime, creating false, hooks known */
    json_object_object_foreach(doc, key, v) {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(known[k], key) != 0)
            k++;
        if (k == sizeof known / sizeof known[0])
            return -1;
        json_type t = json_object_get_type(v);
        if (strcmp(key, "pid") == 0) {
            if (t != json_type_int || json_object_get_int64(v) <= 0)
                return -1;
            f->pid = (long)json_object_get_int64(v);
            have |= 1;
        } else if (strcmp(key, "starttime") == 0) {
            if (t != json_type_int || json_object_get_int64(v) < 0)
                return -1;
            f->starttime = (unsigned long long)json_object_get_int64(v);
            have |= 2;
        } else if (strcmp(key, "creating") == 0) {
            if (t != json_type_boolean || json_object_get_boolean(v))
                return -1; /* a create in progress */
            have |= 4;
        } else if (strcmp(key, "start_hooks") == 0) {
            if (t != json_type_boolean)
                return -1;
            f->hooks |= json_object_get_boolean(v);
        } else if (strcmp(key, "hooks") == 0) {
            int any = any_hook(v);
            if (any < 0)
                return -1;
            f->hooks |= any;
            have |= 8;
        } else if (strcmp(key, "id_range") == 0) {
            f->idrange = t != json_type_null;
        } else if (strcmp(key, "cgroup_dirs") == 0) {
            if (t != json_type_array || json_object_array_length(v) > MAX_CGROUPS)
                return -1;
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *d = json_object_array_get_idx(v, i);
                const char *dir = json_object_get_type(d) == json_type_string ? json_object_get_string(d) : NULL;
                if (dir == NULL || dir[0] != '/' || strlen(dir) >= sizeof f->cgroups[0])
                    return -1;
                strcpy(f->cgroups[f->ncgroups++], dir);
            }
        }
    }
    return have == 15 ? 0 : -1;
}


/* Field 22 (start time) and field 3 (state) of /proc/pid/stat; 0: read, -1: no such pid. */
int proc_stat(long pid, unsigned long long *start, char *state) {
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
static enum status status_of(int dirfd, const struct recorded *f) {
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
    struct recorded f;
    if (read_state(dirfd, &f) != 0 || f.hooks != 0 || status_of(dirfd, &f) != CREATED)
        fallback();
    int fd = openat(dirfd, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        fallback(); /* nobody waits on it any more: Python says why */
    static const char gate[1 + MSG_START_LENGTH_BYTES] = {MSG_START}; /* no state */
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
    struct recorded f;
    int sig = parse_signal(sigtext);
    if (sig < 0 || read_state(dirfd, &f) != 0 || status_of(dirfd, &f) == STOPPED)
        fallback();
    if (kill((pid_t)f.pid, sig) != 0 && errno != ESRCH)
        fallback();
    if (sig == SIGKILL) /* as runc: a paused container is thawed, so that it can die */
        for (int i = 0; i < f.ncgroups; i++)
            thaw(f.cgroups[i]);
    _exit(0);
}

/* SIGKILL what is left in the cgroup, then rmdir it (as cgroupfs.kill_and_rmdir). */
int kill_and_rmdir(const char *dir) {
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
    struct recorded f;
    if (read_state(dirfd, &f) != 0 || f.hooks != 0 || f.idrange != 0)
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

/* A JSON string as Python's json.dumps writes it (ensure_ascii): 0, or -1 for a byte
   above 0x7f (its \u escape needs UTF-8 decoding: Python answers then). */
static int put_json_str(FILE *out, const char *s) {
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c >= 0x80)
            return -1;
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        const char *named = *c ? strchr("\b\f\n\r\t", *c) : NULL;
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (named != NULL)
            fprintf(out, "\\%c", "bfnrt"[named - "\b\f\n\r\t"]);
        else if (*c < 0x20)
            fprintf(out, "\\u%04x", *c);
        else
            fputc(*c, out);
    }
    fputc('"', out);
    return 0;
}

/* `state ID`: lifecycle.state's JSON, as `stockade oci state` prints it (json.dumps,
   indent 2), from state.json (no interpreter: engines ask right after create). */
static void __attribute__((noreturn)) do_state(int dirfd, const char *id) {
    struct recorded f;
    if (read_state(dirfd, &f) != 0)
        fallback();
    static const char *keys[] = {"bundle", "rootfs", "created", "owner"};
    const char *values[4];
    for (int i = 0; i < 4; i++) {
        json_object *v = NULL;
        /* state.spec_state: a missing key is "" */
        values[i] = !json_object_object_get_ex(f.doc, keys[i], &v) ? "" : state_str(f.doc, keys[i]);
        if (values[i] == NULL)
            fallback();
    }
    json_object *ann = NULL;
    if (json_object_object_get_ex(f.doc, "annotations", &ann) &&
        json_object_get_type(ann) != json_type_object)
        fallback();
    int nann = ann != NULL ? json_object_object_length(ann) : 0;
    enum status st = status_of(dirfd, &f);
    const char *name = st == CREATED ? "created" : st == RUNNING ? "running" : "stopped";
    for (int i = 0; st == RUNNING && i < f.ncgroups; i++)
        if (frozen(f.cgroups[i]))
            name = "paused";
    /* composed in memory first: a value Python must print (non-ASCII) leaves no output */
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (out == NULL)
        fallback();
    int bad = 0;
    fprintf(out, "{\n  \"ociVersion\": \"1.0.2\",\n  \"id\": ");
    bad |= put_json_str(out, id);
    fprintf(out, ",\n  \"status\": \"%s\",\n  \"pid\": %ld", name, st == STOPPED ? 0L : f.pid);
    for (int i = 0; i < 4; i++) {
        fprintf(out, ",\n  \"%s\": ", keys[i]);
        bad |= put_json_str(out, values[i]);
    }
    if (nann > 0) {
        fprintf(out, ",\n  \"annotations\": {");
        int first = 1;
        json_object_object_foreach(ann, k, v) {
            if (json_object_get_type(v) != json_type_string) {
                bad = 1;
                break;
            }
            fprintf(out, first ? "\n    " : ",\n    ");
            first = 0;
            bad |= put_json_str(out, k);
            fprintf(out, ": ");
            bad |= put_json_str(out, json_object_get_string(v));
        }
        fprintf(out, "\n  }");
    }
    fprintf(out, "\n}\n");
    if (fclose(out) != 0 || bad)
        fallback();
    if (fwrite(text, 1, size, stdout) != size || fflush(stdout) != 0)
        _exit(1);
    _exit(0);
}

/* create|run [--bundle B] [--pid-file F] ID: a stored plan, else Python (fastexec.c). */
static void __attribute__((noreturn)) do_create(const char *root, int i, int run) {
    const char *bundle = ".", *pid_file = NULL, *id = NULL;
    const char *mode = getenv("STOCKADE_FAST");
    if (mode != NULL && strcmp(mode, "off") == 0)
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
    if (argc == 3 && strcmp(argv[1], "--executor") == 0) /* the runtime's own launches */
        executor_main(argv[2]);
    if (argc == 2 && strcmp(argv[1], "--stamp") == 0) { /* python -m stockade.oci.frontend */
        printf("%s\n", STOCKADE_STAMP);
        return 0;
    }
#ifdef STOCKADE_TEST_HOOKS
    if (argc == 3 && strcmp(argv[1], "--read-plan") == 0)
        read_plan_for_tests(argv[2]);
#endif
    const char *root = DEFAULT_ROOT;
    int i = 1;
    /* global flags, as stockade.cli.oci.parse_fast accepts them */
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
