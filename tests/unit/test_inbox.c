/*
 * test_inbox.c - the inbox's two paths (broker/inbox.h): a post from the
 * thread that drains the inbox (its home) takes no lock and writes no
 * eventfd, and is drained in the same loop iteration, after the callbacks
 * already due, even when a drain posts again; a post from another thread
 * wakes the eventfd. Order per sender holds on both paths, and messages
 * still queued are freed by inbox_discard.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>

#include "inbox.h"
#include "msg.h"

#define HOME 7

struct seen {
    int n;
    int num[16];
    struct inbox *ib;
    int repost;               /* drains left that post one more message */
};

static void drain(void *arg, struct msg *list)
{
    struct seen *s = arg;
    while (list) {
        struct msg *m = list;
        list = m->next;
        if (s->n < 16)
            s->num[s->n++] = (int)m->num;
        msg_free(m);
    }
    if (s->repost > 0) {
        s->repost--;
        struct msg *m = msg_new(MSG_STOP);
        m->num = 100 + s->repost;
        inbox_post(s->ib, m);
    }
}

static struct msg *numbered(int n)
{
    struct msg *m = msg_new(MSG_STOP);
    m->num = n;
    return m;
}

static bool efd_readable(const struct inbox *ib)
{
    struct pollfd p = { .fd = ib->efd, .events = POLLIN };
    return poll(&p, 1, 0) == 1;
}

static void set_up(struct event_base **base, struct inbox *ib, struct seen *s)
{
    *base = event_base_new();
    cr_assert(*base);
    memset(s, 0, sizeof *s);
    s->ib = ib;
    cr_assert_eq(inbox_init(ib, *base, drain, s), 0);
    inbox_set_home(ib, HOME);
}

static void tear_down(struct event_base *base, struct inbox *ib)
{
    inbox_discard(ib);
    inbox_destroy(ib);
    event_base_free(base);
    inbox_enter(0);
}

Test(inbox, a_post_from_its_home_is_local_and_drained_in_the_same_iteration)
{
    struct event_base *base;
    struct inbox ib;
    struct seen s;
    set_up(&base, &ib, &s);
    inbox_enter(HOME);
    inbox_post(&ib, numbered(1));
    inbox_post(&ib, numbered(2));
    cr_assert_not(efd_readable(&ib), "a local post wrote the eventfd");
    s.repost = 2; /* each drain posts once more: still the same iteration */
    event_base_loop(base, EVLOOP_NONBLOCK);
    cr_assert_eq(s.n, 4, "drained %d message(s) in one iteration, expected 4", s.n);
    cr_assert(s.num[0] == 1 && s.num[1] == 2 && s.num[2] == 101 && s.num[3] == 100);
    tear_down(base, &ib);
}

static void *post_from_elsewhere(void *arg)
{
    struct inbox *ib = arg;
    for (int i = 1; i <= 3; i++)
        inbox_post(ib, numbered(i));
    return NULL;
}

Test(inbox, a_post_from_another_thread_wakes_the_eventfd_in_order)
{
    struct event_base *base;
    struct inbox ib;
    struct seen s;
    set_up(&base, &ib, &s);
    inbox_enter(HOME + 1);
    pthread_t t;
    pthread_create(&t, NULL, post_from_elsewhere, &ib);
    pthread_join(t, NULL);
    cr_assert(efd_readable(&ib), "a post from another thread did not wake the eventfd");
    event_base_loop(base, EVLOOP_NONBLOCK);
    cr_assert_eq(s.n, 3);
    cr_assert(s.num[0] == 1 && s.num[1] == 2 && s.num[2] == 3);
    tear_down(base, &ib);
}

Test(inbox, messages_left_on_both_paths_are_taken_and_freed)
{
    struct event_base *base;
    struct inbox ib;
    struct seen s;
    set_up(&base, &ib, &s);
    pthread_t t;
    pthread_create(&t, NULL, post_from_elsewhere, &ib);
    pthread_join(t, NULL);
    inbox_enter(HOME);
    inbox_post(&ib, numbered(9));
    int n = 0;
    for (struct msg *m = inbox_take(&ib), *next; m; m = next, n++) {
        next = m->next;
        msg_free(m);
    }
    cr_assert_eq(n, 4, "inbox_take found %d of 4 messages", n);
    inbox_post(&ib, numbered(10));
    tear_down(base, &ib); /* inbox_discard frees the local one (ASan sees a leak otherwise) */
}
