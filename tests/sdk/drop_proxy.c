/*
 * drop_proxy.c - see drop_proxy.h. One connection at a time (the tests use
 * one client through it), relayed with poll(); a bounded poll timeout lets
 * drop_proxy_stop() end the thread.
 */
#include "drop_proxy.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct drop_proxy {
    int lfd, port, target;
    atomic_int drops, cut;
    atomic_bool stop;
    pthread_t th;
};

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static bool has_push(const char *b, ssize_t n)
{
    for (ssize_t i = 0; i + 8 <= n; i++)
        if (!memcmp(b + i, "JOB.PUSH", 8))
            return true;
    return false;
}

/* Relays one client until either side closes, or a drop cuts it. */
static void relay(drop_proxy *p, int cfd)
{
    int sfd = dial(p->target);
    bool armed = false;
    char buf[65536];
    while (sfd >= 0 && !atomic_load(&p->stop)) {
        struct pollfd pf[2] = { { .fd = cfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
        if (poll(pf, 2, 100) <= 0)
            continue;
        if (pf[0].revents) {
            ssize_t n = read(cfd, buf, sizeof buf);
            if (n <= 0 || write(sfd, buf, (size_t)n) != n)
                break;
            if (!armed && has_push(buf, n) && atomic_load(&p->drops) > 0) {
                atomic_fetch_sub(&p->drops, 1);
                armed = true;
            }
        }
        if (pf[1].revents) {
            ssize_t n = read(sfd, buf, sizeof buf);
            if (n <= 0)
                break;
            if (armed) { /* the reply to the push (or its first part): lost */
                atomic_fetch_add(&p->cut, 1);
                break;
            }
            if (write(cfd, buf, (size_t)n) != n)
                break;
        }
    }
    if (sfd >= 0)
        close(sfd);
    close(cfd);
}

static void *proxy_main(void *arg)
{
    drop_proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int cfd = accept(p->lfd, NULL, NULL);
        if (cfd >= 0)
            relay(p, cfd);
    }
    return NULL;
}

drop_proxy *drop_proxy_start(int target_port)
{
    drop_proxy *p = calloc(1, sizeof *p);
    cr_assert(p);
    p->target = target_port;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    cr_assert(p->lfd >= 0 && bind(p->lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(p->lfd, 8) == 0);
    cr_assert(getsockname(p->lfd, (struct sockaddr *)&sa, &len) == 0);
    p->port = ntohs(sa.sin_port);
    cr_assert(pthread_create(&p->th, NULL, proxy_main, p) == 0);
    return p;
}

int drop_proxy_port(const drop_proxy *p)
{
    return p->port;
}

void drop_proxy_arm(drop_proxy *p, int n)
{
    atomic_fetch_add(&p->drops, n);
}

int drop_proxy_left(drop_proxy *p)
{
    return atomic_load(&p->drops);
}

int drop_proxy_cut(drop_proxy *p)
{
    return atomic_load(&p->cut);
}

void drop_proxy_stop(drop_proxy *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->th, NULL);
    close(p->lfd);
    free(p);
}
