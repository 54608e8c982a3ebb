/* e. The OCI terminal, runc's console-socket way:
 * the pty comes from the container's own devpts (the root is built, so /dev/pts is
 * the container's), never from the host's; its master goes to the runtime over a unix
 * socket (SCM_RIGHTS), the slave becomes the payload's stdio and controlling terminal.
 */
#define _GNU_SOURCE
#include "steps.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

int stk_pty_inside(int sock_fd, const struct stk_console_size *size, int *slave,
                   struct stk_result *r) {
    *slave = -1;
    int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return stk_fail(r, "hygiene", errno, "/dev/pts/ptmx: %s", strerror(errno));
    int unlock = 0;
    unsigned num = 0;
    char path[32];
    int rc = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) != 0 || ioctl(master, TIOCGPTN, &num) != 0)
        rc = stk_fail(r, "hygiene", errno, "pty: %s", strerror(errno));
    else {
        snprintf(path, sizeof path, "/dev/pts/%u", num);
        *slave = open(path, O_RDWR | O_NOCTTY);
        if (*slave < 0)
            rc = stk_fail(r, "hygiene", errno, "%s: %s", path, strerror(errno));
        else if (stk_send_fd(sock_fd, 'm', master, MSG_NOSIGNAL) != 0)
            rc = stk_fail(r, "hygiene", errno, "console socket: %s", strerror(errno));
        close(sock_fd); /* its one job is done once the master is sent */
    }
    close(master);
    if (rc == 0 && size != NULL) {
        struct winsize ws = {size->rows, size->cols, 0, 0};
        if (ioctl(*slave, TIOCSWINSZ, &ws) != 0)
            rc = stk_fail(r, "hygiene", errno, "console size: %s", strerror(errno));
    }
    if (rc != 0 && *slave >= 0) {
        close(*slave);
        *slave = -1;
    }
    return rc;
}

int stk_tty_stdio(int slave, struct stk_result *r) {
    for (int target = 0; target < 3; target++)
        if (dup2(slave, target) < 0)
            return stk_fail(r, "hygiene", errno, "terminal as fd %d: %s", target, strerror(errno));
    if (slave > 2)
        close(slave);
    /* Own session first (setsid, by the caller): the slave becomes its controlling tty. */
    if (ioctl(0, TIOCSCTTY, 0) != 0)
        return stk_fail(r, "hygiene", errno, "controlling terminal: %s", strerror(errno));
    return 0;
}

int stk_session(int tty_slave, int tty_sock, const struct stk_console_size *size,
                struct stk_result *r) {
    if (setsid() < 0)
        return stk_fail(r, "hygiene", errno, "setsid: %s", strerror(errno));
    if (tty_sock >= 0 && stk_pty_inside(tty_sock, size, &tty_slave, r) != 0)
        return -1;
    if (tty_slave >= 0)
        return stk_tty_stdio(tty_slave, r);
    return 0;
}
