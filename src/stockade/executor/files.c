/* Small kernel files (/proc, /sys/fs/cgroup): one read, one write. */
#define _GNU_SOURCE
#include "executor.h"

/* One read of a small (kernel) file into buf, NUL-terminated: its length, or -1 if it
   cannot be opened or read or is empty. */
ssize_t read_text(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? n : -1;
}

/* One write of `text` to an existing (kernel) file: 0, or -1 with errno (EIO: short). */
int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    close(fd);
    errno = e;
    if (w >= 0 && (size_t)w != n)
        errno = EIO;
    return w >= 0 && (size_t)w == n ? 0 : -1;
}

