/* Test driver for the OCI terminal: tty_driver SOCK_FD ROWS COLS
 * stk_session: its own session, the pty allocated (stk_pty_inside) and its master sent on
 * SOCK_FD, the slave its stdio and controlling terminal; then it writes "hello", the
 * terminal's size and whether 0/1/2 are that terminal and it is the controlling one, on the terminal. */
#define _GNU_SOURCE
#include "steps.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    struct stk_result r = {0};
    struct stk_console_size size = {(uint16_t)atoi(argv[2]), (uint16_t)atoi(argv[3])};
    if (stk_session(-1, atoi(argv[1]), &size, &r) != 0) {
        stk_report(2, &r);
        return stk_exit_code(r.step);
    }
    struct winsize ws;
    if (ioctl(1, TIOCGWINSZ, &ws) != 0)
        return 1;
    int ctty = open("/dev/tty", O_RDWR); /* opens only with a controlling terminal */
    printf("hello %d %d tty=%d ctty=%d\n", ws.ws_row, ws.ws_col,
           isatty(0) && isatty(1) && isatty(2), ctty >= 0);
    fflush(stdout);
    return 0;
}
