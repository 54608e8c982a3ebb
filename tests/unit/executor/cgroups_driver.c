/* Drives the executor's cgroup step (executor/cgroups.c) on directories laid out like
 * cgroupfs, for tests/unit/executor/test_cgroups.py (no privileges needed).
 *
 *   cgroups_driver mkdir BASE REL EXIST_OK CPUSET     mkdir_below: "ok" or "failed: WHY"
 *   cgroups_driver limit PLAN DIR...                  cgroup_limit of PLAN's cgroups
 *       section into DIR... (one per controller, in order): "ok", each note as
 *       "note: TEXT", or "failed: WHY" */
#define _GNU_SOURCE
#include "executor.h"

static int limit(const char *plan_path, int ndirs, char **dirs) {
    FILE *f = fopen(plan_path, "re");
    if (f == NULL)
        return perror(plan_path), 2;
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    json_object *doc = json_tokener_parse(text);
    struct rd r = {0};
    struct plan p;
    if (doc == NULL || !read_plan(&r, doc, &p))
        return printf("refused: %s\n", r.why), 1;
    static char ctldir[FAST_MAX][PATH_MAX];
    for (int i = 0; i < ndirs && i < FAST_MAX; i++)
        snprintf(ctldir[i], PATH_MAX, "%s", dirs[i]);
    struct cg_notes notes = {0};
    char why[2 * PATH_MAX];
    int cgfd;
    if (cgroup_limit(&p, ctldir, &cgfd, &notes, why, sizeof why) != 0)
        return printf("failed: %s\n", why), 1;
    for (int i = 0; i < notes.n; i++)
        printf("note: %s\n", notes.text[i]);
    printf("ok\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "mkdir") == 0) {
        char why[2 * PATH_MAX];
        if (mkdir_below(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), why, sizeof why) != 0)
            return printf("failed: %s\n", why), 1;
        return printf("ok\n"), 0;
    }
    if (argc >= 4 && strcmp(argv[1], "limit") == 0)
        return limit(argv[2], argc - 3, argv + 3);
    fprintf(stderr, "usage: cgroups_driver mkdir BASE REL EXIST_OK CPUSET | limit PLAN DIR...\n");
    return 2;
}
