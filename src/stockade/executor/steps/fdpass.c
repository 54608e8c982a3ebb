/* One fd over a unix socket (SCM_RIGHTS): the pty master made inside (tty.c) and the
 * learner's seccomp listener (child.c) travel this way. */
#define _GNU_SOURCE
#include "steps.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int stk_send_fd(int sock, char byte, int fd, int flags) {
    struct iovec iov = {&byte, 1}; /* the fd needs at least one byte of data to travel with */
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t n;
    do
        n = sendmsg(sock, &msg, flags);
    while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}
