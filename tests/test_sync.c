/* Sync primitives: channel, mutex, semaphore, event, wait group.  Order
 * is proven with logs the tasks write as they pass each point, never with
 * sleeps; timeouts use short deadlines only where a wait must fail. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "util.h"

/* ---- an ordering log, written by the tasks ---- */

#define LOG_MAX 64
static int lg[LOG_MAX];
static int ln;

static void log_reset(void)
{
    memset(lg, 0, sizeof(lg));
    ln = 0;
}

static void logv(int v)
{
    if (ln < LOG_MAX)
        lg[ln] = v;
    ln++;
}

static void ck_log_eq(const int *want, int n)
{
    ck_assert_int_eq(ln, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(lg[i] == want[i], "log[%d] is %d, want %d", i, lg[i], want[i]);
}

#define ck_log(...)                                                   \
    do {                                                              \
        static const int want_[] = {__VA_ARGS__};                     \
        ck_log_eq(want_, (int)(sizeof(want_) / sizeof(want_[0])));   \
    } while (0)

/* Runs the await expr inside a timeout scope of ms milliseconds. */
#define WITHIN(ms, expr)                                              \
    ({                                                                \
        uint64_t saved_;                                              \
        ck_assert_int_eq(uco_timeout_begin(UCO_MSEC(ms), &saved_), 0); \
        int r_ = (expr);                                              \
        ck_assert_int_eq(uco_timeout_end(saved_), 0);                 \
        r_;                                                           \
    })

#define ARG(i) ((void *)(intptr_t)(i))

/* The objects under test (the tasks reach them here); set by each test. */
static uco_chan *ch;
static uco_mutex *mu;
static uco_sem *sm;
static uco_event *ev;
static uco_wg *wg;

/* ---- channel tasks ---- */

static int recv_one(void)
{
    int v = -1;
    ck_assert_int_eq(uco_chan_recv(ch, &v), 0);
    return v;
}

/* Sends 1..5, logging i once send(i) has returned. */
static intptr_t send_five(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 5; i++) {
        if (uco_chan_send(ch, &i) != 0)
            return -i;
        logv(i);
    }
    return 0;
}

static intptr_t send_val(void *arg)
{
    int v = (int)(intptr_t)arg;
    return uco_chan_send(ch, &v);
}

/* Sends id*10+1 then id*10+2. */
static intptr_t send_two(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int k = 1; k <= 2; k++) {
        int v = id * 10 + k;
        if (uco_chan_send(ch, &v) != 0)
            return -1;
    }
    return 0;
}

/* Receives into got[i] (left at -1 when nothing is delivered), logs i. */
static int got[8];

static intptr_t recv_into(void *arg)
{
    int i = (int)(intptr_t)arg;
    int r = uco_chan_recv(ch, &got[i]);
    logv(i);
    return r;
}

static void got_reset(void)
{
    for (int i = 0; i < 8; i++)
        got[i] = -1;
}

/* ---- channel: blocking and FIFO order ---- */

static intptr_t blocking_main(void *arg)
{
    int cap = (int)(intptr_t)arg;
    ck_assert_int_eq(uco_chan_create(sizeof(int), (size_t)cap, &ch), 0);
    uco_task *t = uco_spawn(send_five, NULL);
    ck_assert_int_eq(uco_yield(), 0); /* the sender runs until it blocks */
    ck_assert_int_eq(ln, cap);        /* cap sends returned, the next waits */
    logv(-recv_one());
    ck_assert_int_eq(ln, cap + 1); /* the woken sender has not run yet */
    ck_assert_int_eq(uco_yield(), 0);
    for (int i = 0; i < 4; i++)
        logv(-recv_one());
    intptr_t r;
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_chan_send_blocks_while_full_and_recv_while_empty)
{
    /* i: send(i) returned in the sender; -i: recv gave i in main. */
    log_reset();
    ck_assert_int_eq(uco_run(blocking_main, ARG(2), NULL), 0);
    /* Sends 1, 2 fill the ring; 3 returns only after recv made room; the
     * fifth recv waits for send 5, which hands the item over directly. */
    ck_log(1, 2, -1, 3, -2, -3, -4, 4, 5, -5);
    log_reset();
    ck_assert_int_eq(uco_run(blocking_main, ARG(0), NULL), 0);
    /* Rendezvous: every send returns only after a recv took its item. */
    ck_log(-1, 1, -2, 2, 3, -3, -4, 4, 5, -5);
}
END_TEST

static intptr_t senders_main(void *arg)
{
    int cap = (int)(intptr_t)arg;
    ck_assert_int_eq(uco_chan_create(sizeof(int), (size_t)cap, &ch), 0);
    uco_task *t[3];
    intptr_t res[3];
    for (int i = 0; i < 3; i++)
        t[i] = uco_spawn(send_two, ARG(i + 1));
    ck_assert_int_eq(uco_yield(), 0); /* all three block */
    for (int i = 0; i < 6; i++)
        logv(recv_one());
    ck_assert_int_eq(uco_gather(t, 3, res), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(res[i], 0);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_chan_items_of_blocked_senders_arrive_in_fifo_order)
{
    /* Blocked senders are served in the order they blocked, buffered
     * items before theirs; a second send waits behind those queued. */
    log_reset();
    ck_assert_int_eq(uco_run(senders_main, ARG(0), NULL), 0);
    ck_log(11, 21, 31, 12, 22, 32);
    log_reset();
    ck_assert_int_eq(uco_run(senders_main, ARG(1), NULL), 0);
    ck_log(11, 12, 21, 31, 22, 32);
}
END_TEST

static intptr_t receivers_main(void *arg)
{
    int cap = (int)(intptr_t)arg;
    ck_assert_int_eq(uco_chan_create(sizeof(int), (size_t)cap, &ch), 0);
    uco_task *t[3];
    intptr_t res[3];
    for (int i = 0; i < 3; i++)
        t[i] = uco_spawn(recv_into, ARG(i));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(ln, 0); /* all three wait */
    for (int i = 0; i < 3; i++) {
        int v = 100 + i;
        ck_assert_int_eq(uco_chan_send(ch, &v), 0);
    }
    /* The sends did not suspend (the receivers have not run): each item
     * went straight into a waiting receiver's buffer. */
    ck_assert_int_eq(ln, 0);
    ck_assert_int_eq(uco_gather(t, 3, res), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(res[i], 0);
        ck_assert_int_eq(got[i], 100 + i);
    }
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_chan_blocked_receivers_are_handed_items_in_fifo_order)
{
    for (int cap = 0; cap <= 2; cap += 2) {
        log_reset();
        got_reset();
        ck_assert_int_eq(uco_run(receivers_main, ARG(cap), NULL), 0);
        ck_log(0, 1, 2);
    }
}
END_TEST

/* Many senders and receivers, yielding at different rates. */
#define NS 3
#define NR 2
#define PER 300
static int rx[NR][NS * PER];
static int rxn[NR];

static intptr_t stress_sender(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int k = 0; k < PER; k++) {
        int v = id * PER + k;
        if (uco_chan_send(ch, &v) != 0)
            return -1;
        if (k % (id + 2) == 0)
            uco_yield();
    }
    return 0;
}

static intptr_t stress_receiver(void *arg)
{
    int id = (int)(intptr_t)arg, v, r;
    while ((r = uco_chan_recv(ch, &v)) == 0) {
        if (rxn[id] == NS * PER)
            return -2;
        rx[id][rxn[id]++] = v;
        if (rxn[id] % (id + 3) == 0)
            uco_yield();
    }
    return r == -EPIPE ? 0 : r;
}

static intptr_t stress_main(void *arg)
{
    int cap = (int)(intptr_t)arg;
    ck_assert_int_eq(uco_chan_create(sizeof(int), (size_t)cap, &ch), 0);
    uco_task *r[NR], *s[NS];
    intptr_t res[NS];
    for (int i = 0; i < NR; i++)
        r[i] = uco_spawn(stress_receiver, ARG(i));
    for (int i = 0; i < NS; i++)
        s[i] = uco_spawn(stress_sender, ARG(i));
    ck_assert_int_eq(uco_gather(s, NS, res), 0);
    for (int i = 0; i < NS; i++)
        ck_assert_int_eq(res[i], 0);
    ck_assert_int_eq(uco_chan_close(ch), 0);
    ck_assert_int_eq(uco_gather(r, NR, res), 0);
    for (int i = 0; i < NR; i++)
        ck_assert_int_eq(res[i], 0);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_chan_many_senders_and_receivers_lose_and_reorder_nothing)
{
    static const int caps[] = {0, 1, 4};
    for (int c = 0; c < 3; c++) {
        memset(rxn, 0, sizeof(rxn));
        ck_assert_int_eq(uco_run(stress_main, ARG(caps[c]), NULL), 0);
        static int seen[NS * PER];
        memset(seen, 0, sizeof(seen));
        int total = 0;
        for (int i = 0; i < NR; i++) {
            int last[NS] = {-1, -1, -1};
            for (int k = 0; k < rxn[i]; k++) {
                int v = rx[i][k], sender = v / PER;
                ck_assert(v >= 0 && v < NS * PER);
                /* Each receiver sees every sender's items in send order. */
                ck_assert_msg(v > last[sender], "cap %d: %d after %d", caps[c], v, last[sender]);
                last[sender] = v;
                seen[v]++;
            }
            total += rxn[i];
        }
        ck_assert_int_eq(total, NS * PER);
        for (int v = 0; v < NS * PER; v++)
            ck_assert_int_eq(seen[v], 1);
        ck_assert_int_gt(rxn[0], 0);
        ck_assert_int_gt(rxn[1], 0);
    }
}
END_TEST

/* ---- channel: close ---- */

static intptr_t close_main(void *arg)
{
    (void)arg;
    uco_task *t[3];
    intptr_t res[3];
    /* Receivers waiting on an empty channel. */
    ck_assert_int_eq(uco_chan_create(sizeof(int), 0, &ch), 0);
    for (int i = 0; i < 3; i++)
        t[i] = uco_spawn(recv_into, ARG(i));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_chan_close(ch), 0);
    /* Woken waiters are off its queues and never touch it again. */
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    ck_assert_int_eq(uco_gather(t, 3, res), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(res[i], -EPIPE);
        ck_assert_int_eq(got[i], -1); /* nothing written to their buffers */
    }

    /* Senders waiting on a full channel. */
    ck_assert_int_eq(uco_chan_create(sizeof(int), 1, &ch), 0);
    int v = 7;
    ck_assert_int_eq(uco_chan_send(ch, &v), 0);
    t[0] = uco_spawn(send_val, ARG(8));
    t[1] = uco_spawn(send_val, ARG(9));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_chan_close(ch), 0);
    ck_assert_int_eq(uco_gather(t, 2, res), 0);
    ck_assert_int_eq(res[0], -EPIPE);
    ck_assert_int_eq(res[1], -EPIPE);
    ck_assert_int_eq(recv_one(), 7); /* buffered before close: still there */
    ck_assert_int_eq(uco_chan_recv(ch, &v), -EPIPE);
    ck_assert_int_eq(uco_chan_send(ch, &v), -EPIPE);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_chan_close_wakes_every_waiter_with_epipe)
{
    got_reset();
    log_reset();
    ck_assert_int_eq(uco_run(close_main, NULL, NULL), 0);
    ck_log(0, 1, 2);
}
END_TEST

static intptr_t drain_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(uco_chan_create(sizeof(int), 3, &ch), 0);
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(uco_chan_send(ch, &i), 0);
    ck_assert_int_eq(uco_chan_close(ch), 0);
    ck_assert_int_eq(uco_chan_close(ch), 0); /* closing twice is harmless */
    int v = 0;
    ck_assert_int_eq(uco_chan_send(ch, &v), -EPIPE);
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(recv_one(), i);
    v = -1;
    ck_assert_int_eq(uco_chan_recv(ch, &v), -EPIPE);
    ck_assert_int_eq(uco_chan_recv(ch, &v), -EPIPE);
    ck_assert_int_eq(v, -1);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_chan_recv_drains_buffered_items_after_close)
{
    ck_assert_int_eq(uco_run(drain_main, NULL, NULL), 0);
}
END_TEST

/* ---- channel: timeouts ---- */

static intptr_t recv_timeout_main(void *arg)
{
    int cap = (int)(intptr_t)arg, v = -1;
    ck_assert_int_eq(uco_chan_create(sizeof(int), (size_t)cap, &ch), 0);
    double t0 = now_sec();
    ck_assert_int_eq(WITHIN(20, uco_chan_recv(ch, &v)), -ETIMEDOUT);
    double dt = now_sec() - t0;
    ck_assert_msg(dt >= 0.019 && dt < 1.0, "waited %.3f s", dt);
    ck_assert_int_eq(v, -1);
    if (cap == 0) /* the departed receiver is not handed the next item */
        ck_assert_int_eq(WITHIN(10, uco_chan_send(ch, &(int){6})), -ETIMEDOUT);
    uco_task *t = uco_spawn(send_val, ARG(5));
    ck_assert_int_eq(recv_one(), 5);
    intptr_t r;
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_chan_recv_on_an_empty_channel_times_out)
{
    ck_assert_int_eq(uco_run(recv_timeout_main, ARG(0), NULL), 0);
    ck_assert_int_eq(uco_run(recv_timeout_main, ARG(1), NULL), 0);
}
END_TEST

static intptr_t send_timeout_main(void *arg)
{
    int cap = (int)(intptr_t)arg, v = 1;
    ck_assert_int_eq(uco_chan_create(sizeof(int), (size_t)cap, &ch), 0);
    if (cap)
        ck_assert_int_eq(uco_chan_send(ch, &v), 0); /* now full */
    v = 2;
    ck_assert_int_eq(WITHIN(20, uco_chan_send(ch, &v)), -ETIMEDOUT);
    if (cap)
        ck_assert_int_eq(recv_one(), 1);
    /* Item 2 was never delivered, and never will be. */
    v = -1;
    ck_assert_int_eq(WITHIN(20, uco_chan_recv(ch, &v)), -ETIMEDOUT);
    ck_assert_int_eq(v, -1);
    uco_task *t = uco_spawn(send_val, ARG(3));
    ck_assert_int_eq(recv_one(), 3);
    ck_assert_int_eq(uco_join(t, NULL), 0);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_chan_send_that_times_out_is_never_delivered)
{
    ck_assert_int_eq(uco_run(send_timeout_main, ARG(0), NULL), 0);
    ck_assert_int_eq(uco_run(send_timeout_main, ARG(1), NULL), 0);
}
END_TEST

/* ---- channel: cancellation ---- */

static intptr_t chan_cancel_main(void *arg)
{
    (void)arg;
    intptr_t r;
    ck_assert_int_eq(uco_chan_create(sizeof(int), 1, &ch), 0);
    /* A receiver on an empty channel. */
    uco_task *rcv = uco_spawn(recv_into, ARG(0));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(rcv), 1);
    ck_assert_int_eq(uco_join(rcv, &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    ck_assert_int_eq(got[0], -1);
    int v = 5;
    ck_assert_int_eq(uco_chan_send(ch, &v), 0); /* buffered, not handed to it */
    ck_assert_int_eq(recv_one(), 5);

    /* Senders on a full channel; the middle one is cancelled. */
    v = 1;
    ck_assert_int_eq(uco_chan_send(ch, &v), 0);
    uco_task *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = uco_spawn(send_val, ARG(11 * (i + 1)));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(s[1]), 1);
    ck_assert_int_eq(uco_join(s[1], &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    ck_assert_int_eq(recv_one(), 1);
    ck_assert_int_eq(recv_one(), 11);
    ck_assert_int_eq(recv_one(), 33);
    ck_assert_int_eq(WITHIN(10, uco_chan_recv(ch, &v)), -ETIMEDOUT); /* no 22 */
    for (int i = 0; i < 3; i += 2) {
        ck_assert_int_eq(uco_join(s[i], &r), 0);
        ck_assert_int_eq(r, 0);
    }
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_cancelled_chan_waiters_take_and_give_nothing)
{
    got_reset();
    log_reset();
    ck_assert_int_eq(uco_run(chan_cancel_main, NULL, NULL), 0);
}
END_TEST

/* What a waiter saw: its wait, then its next await. */
static int r_wait, r_next;

static intptr_t recv_then_yield(void *arg)
{
    (void)arg;
    r_wait = uco_chan_recv(ch, &got[0]);
    r_next = uco_yield();
    return 0;
}

static intptr_t lock_then_yield(void *arg)
{
    (void)arg;
    r_wait = uco_mutex_lock(mu);
    r_next = uco_yield();
    return uco_mutex_unlock(mu);
}

static intptr_t late_cancel_main(void *arg)
{
    (void)arg;
    /* Cancelled, but handed an item before it ran again: the item is
     * its, and the cancellation waits for its next await. */
    ck_assert_int_eq(uco_chan_create(sizeof(int), 0, &ch), 0);
    uco_task *t = uco_spawn(recv_then_yield, NULL);
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(t), 1);
    int v = 5;
    ck_assert_int_eq(uco_chan_send(ch, &v), 0); /* did not suspend */
    ck_assert_int_eq(uco_join(t, NULL), 0);
    ck_assert_int_eq(r_wait, 0);
    ck_assert_int_eq(got[0], 5);
    ck_assert_int_eq(r_next, -ECANCELED);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);

    /* The same with the lock. */
    ck_assert_int_eq(uco_mutex_create(&mu), 0);
    ck_assert_int_eq(uco_mutex_lock(mu), 0);
    t = uco_spawn(lock_then_yield, NULL);
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(t), 1);
    ck_assert_int_eq(uco_mutex_unlock(mu), 0);
    ck_assert_int_eq(uco_mutex_trylock(mu), -EBUSY); /* it owns it now */
    intptr_t r;
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r_wait, 0);
    ck_assert_int_eq(r_next, -ECANCELED);
    ck_assert_int_eq(r, 0); /* its unlock: it was the owner */
    ck_assert_int_eq(uco_mutex_trylock(mu), 0);
    ck_assert_int_eq(uco_mutex_unlock(mu), 0);
    ck_assert_int_eq(uco_mutex_destroy(mu), 0);
    return 0;
}

START_TEST(test_hand_over_before_a_cancel_lands_is_kept)
{
    got_reset();
    r_wait = r_next = 1;
    ck_assert_int_eq(uco_run(late_cancel_main, NULL, NULL), 0);
}
END_TEST

/* ---- mutex ---- */

/* Holds the lock across a switch, logging id on entry and -id on exit. */
static intptr_t locker(void *arg)
{
    int id = (int)(intptr_t)arg;
    int r = uco_mutex_lock(mu);
    if (r < 0)
        return r;
    logv(id);
    uco_yield();
    logv(-id);
    return uco_mutex_unlock(mu);
}

static intptr_t mutex_fifo_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(uco_mutex_create(&mu), 0);
    ck_assert_int_eq(uco_mutex_lock(mu), 0);
    uco_task *t[4];
    intptr_t res[4];
    for (int i = 0; i < 4; i++)
        t[i] = uco_spawn(locker, ARG(i + 1));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(ln, 0); /* all four wait */
    ck_assert_int_eq(uco_mutex_destroy(mu), -EBUSY);
    ck_assert_int_eq(uco_mutex_unlock(mu), 0);
    /* Handed to the first waiter, not merely released. */
    ck_assert_int_eq(uco_mutex_trylock(mu), -EBUSY);
    ck_assert_int_eq(uco_gather(t, 4, res), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(res[i], 0);
    ck_assert_int_eq(uco_mutex_trylock(mu), 0);
    ck_assert_int_eq(uco_mutex_unlock(mu), 0);
    ck_assert_int_eq(uco_mutex_destroy(mu), 0);
    return 0;
}

START_TEST(test_mutex_is_handed_over_in_fifo_order)
{
    log_reset();
    ck_assert_int_eq(uco_run(mutex_fifo_main, NULL, NULL), 0);
    /* One holder at a time, in the order they queued. */
    ck_log(1, -1, 2, -2, 3, -3, 4, -4);
}
END_TEST

static intptr_t unlock_task(void *arg)
{
    (void)arg;
    return uco_mutex_unlock(mu);
}

static intptr_t trylock_task(void *arg)
{
    (void)arg;
    return uco_mutex_trylock(mu);
}

static intptr_t mutex_errors_main(void *arg)
{
    (void)arg;
    intptr_t r;
    ck_assert_int_eq(uco_mutex_create(&mu), 0);
    ck_assert_int_eq(uco_mutex_unlock(mu), -EPERM); /* not locked */
    ck_assert_int_eq(uco_mutex_trylock(mu), 0);
    ck_assert_int_eq(uco_mutex_trylock(mu), -EBUSY);
    ck_assert_int_eq(uco_mutex_lock(mu), -EDEADLK); /* would wait for itself */
    ck_assert_int_eq(uco_join(uco_spawn(trylock_task, NULL), &r), 0);
    ck_assert_int_eq(r, -EBUSY);
    ck_assert_int_eq(uco_join(uco_spawn(unlock_task, NULL), &r), 0);
    ck_assert_int_eq(r, -EPERM); /* not the owner */
    ck_assert_int_eq(uco_mutex_destroy(mu), -EBUSY); /* still held */
    ck_assert_int_eq(uco_mutex_unlock(mu), 0);
    ck_assert_int_eq(uco_mutex_unlock(mu), -EPERM);
    ck_assert_int_eq(uco_mutex_destroy(mu), 0);
    return 0;
}

START_TEST(test_mutex_unlock_by_non_owner_eperm_and_trylock_ebusy)
{
    ck_assert_int_eq(uco_run(mutex_errors_main, NULL, NULL), 0);
}
END_TEST

static intptr_t mutex_cancel_main(void *arg)
{
    (void)arg;
    intptr_t r;
    ck_assert_int_eq(uco_mutex_create(&mu), 0);
    ck_assert_int_eq(uco_mutex_lock(mu), 0);
    uco_task *a = uco_spawn(locker, ARG(1)), *b = uco_spawn(locker, ARG(2));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(a), 1);
    ck_assert_int_eq(uco_join(a, &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    ck_assert_int_eq(uco_mutex_unlock(mu), 0); /* to b: a left the queue */
    ck_assert_int_eq(uco_mutex_trylock(mu), -EBUSY);
    ck_assert_int_eq(uco_join(b, &r), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(uco_mutex_trylock(mu), 0);
    ck_assert_int_eq(uco_mutex_unlock(mu), 0);
    ck_assert_int_eq(uco_mutex_destroy(mu), 0);
    return 0;
}

START_TEST(test_cancelled_mutex_waiter_does_not_take_the_lock)
{
    log_reset();
    ck_assert_int_eq(uco_run(mutex_cancel_main, NULL, NULL), 0);
    ck_log(2, -2);
}
END_TEST

/* ---- semaphore ---- */

static int inside, max_inside;

static intptr_t sem_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    int r = uco_sem_acquire(sm);
    if (r < 0)
        return r;
    logv(id);
    if (++inside > max_inside)
        max_inside = inside;
    uco_yield();
    uco_yield();
    inside--;
    return uco_sem_release(sm);
}

static intptr_t acquire_task(void *arg)
{
    (void)arg;
    return uco_sem_acquire(sm);
}

static intptr_t sem_main(void *arg)
{
    (void)arg;
    uco_task *t[5];
    intptr_t res[5];
    ck_assert_int_eq(uco_sem_create(2, &sm), 0);
    for (int i = 0; i < 5; i++)
        t[i] = uco_spawn(sem_worker, ARG(i + 1));
    ck_assert_int_eq(uco_gather(t, 5, res), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(res[i], 0);
    ck_assert_int_eq(max_inside, 2);

    /* Two units again: both taken at once, a third waits. */
    ck_assert_int_eq(uco_sem_acquire(sm), 0);
    ck_assert_int_eq(uco_sem_acquire(sm), 0);
    ck_assert_int_eq(WITHIN(10, uco_sem_acquire(sm)), -ETIMEDOUT);
    /* A release with a waiter hands it the unit instead of counting it. */
    t[0] = uco_spawn(acquire_task, NULL);
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_sem_release(sm), 0);
    ck_assert_int_eq(WITHIN(10, uco_sem_acquire(sm)), -ETIMEDOUT);
    ck_assert_int_eq(uco_join(t[0], &res[0]), 0);
    ck_assert_int_eq(res[0], 0);
    ck_assert_int_eq(uco_sem_release(sm), 0);
    ck_assert_int_eq(uco_sem_release(sm), 0);
    ck_assert_int_eq(uco_sem_acquire(sm), 0);
    ck_assert_int_eq(uco_sem_acquire(sm), 0);
    ck_assert_int_eq(uco_sem_destroy(sm), 0);
    return 0;
}

START_TEST(test_sem_counts_units_and_serves_waiters_in_fifo_order)
{
    log_reset();
    inside = max_inside = 0;
    ck_assert_int_eq(uco_run(sem_main, NULL, NULL), 0);
    ck_log(1, 2, 3, 4, 5);
}
END_TEST

static intptr_t sem_cancel_main(void *arg)
{
    (void)arg;
    intptr_t r;
    ck_assert_int_eq(uco_sem_create(0, &sm), 0);
    uco_task *a = uco_spawn(acquire_task, NULL), *b = uco_spawn(acquire_task, NULL);
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(a), 1);
    ck_assert_int_eq(uco_join(a, &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    ck_assert_int_eq(uco_sem_release(sm), 0); /* to b */
    ck_assert_int_eq(uco_join(b, &r), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(uco_sem_release(sm), 0); /* nobody waits: counted */
    ck_assert_int_eq(uco_sem_acquire(sm), 0);
    ck_assert_int_eq(WITHIN(10, uco_sem_acquire(sm)), -ETIMEDOUT);
    ck_assert_int_eq(uco_sem_destroy(sm), 0);
    return 0;
}

START_TEST(test_cancelled_sem_waiter_does_not_take_the_unit)
{
    ck_assert_int_eq(uco_run(sem_cancel_main, NULL, NULL), 0);
}
END_TEST

/* ---- event ---- */

static intptr_t event_waiter(void *arg)
{
    int id = (int)(intptr_t)arg;
    int r = uco_event_wait(ev);
    logv(r == 0 ? id : -id);
    return r;
}

static intptr_t event_setter(void *arg)
{
    (void)arg;
    return uco_event_set(ev);
}

static intptr_t event_main(void *arg)
{
    (void)arg;
    uco_task *t[3];
    intptr_t res[3];
    ck_assert_int_eq(uco_event_create(&ev), 0);
    for (int i = 0; i < 3; i++)
        t[i] = uco_spawn(event_waiter, ARG(i + 1));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(ln, 0);
    ck_assert_int_eq(uco_event_set(ev), 0);
    ck_assert_int_eq(uco_event_wait(ev), 0);
    ck_assert_int_eq(ln, 0); /* that wait did not suspend */
    /* Cleared before the woken waiters ran: they were woken already. */
    ck_assert_int_eq(uco_event_clear(ev), 0);
    ck_assert_int_eq(uco_gather(t, 3, res), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(res[i], 0);
    ck_assert_int_eq(WITHIN(10, uco_event_wait(ev)), -ETIMEDOUT);
    t[0] = uco_spawn(event_setter, NULL);
    ck_assert_int_eq(uco_event_wait(ev), 0);
    ck_assert_int_eq(uco_join(t[0], &res[0]), 0);
    ck_assert_int_eq(res[0], 0);
    ck_assert_int_eq(uco_event_set(ev), 0); /* setting twice is harmless */
    ck_assert_int_eq(uco_event_wait(ev), 0);
    ck_assert_int_eq(uco_event_destroy(ev), 0);
    return 0;
}

START_TEST(test_event_set_wakes_all_and_clear_makes_wait_block)
{
    log_reset();
    ck_assert_int_eq(uco_run(event_main, NULL, NULL), 0);
    ck_log(1, 2, 3);
}
END_TEST

/* ---- wait group ---- */

static intptr_t wg_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < id; i++)
        uco_yield();
    logv(id);
    return uco_wg_done(wg);
}

static intptr_t wg_waiter(void *arg)
{
    int id = (int)(intptr_t)arg;
    int r = uco_wg_wait(wg);
    logv(r == 0 ? id : -id);
    return r;
}

static intptr_t wg_main(void *arg)
{
    (void)arg;
    uco_task *t[5];
    intptr_t res[5];
    ck_assert_int_eq(uco_wg_create(&wg), 0);
    ck_assert_int_eq(uco_wg_wait(wg), 0); /* count 0: at once */
    ck_assert_int_eq(uco_wg_add(wg, 3), 0);
    t[0] = uco_spawn(wg_waiter, ARG(100));
    t[1] = uco_spawn(wg_waiter, ARG(101));
    for (int i = 0; i < 3; i++)
        t[2 + i] = uco_spawn(wg_worker, ARG(i + 1));
    ck_assert_int_eq(uco_wg_wait(wg), 0);
    logv(200);
    ck_assert_int_eq(uco_gather(t, 5, res), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(res[i], 0);
    ck_assert_int_eq(uco_wg_wait(wg), 0);
    ck_assert_int_eq(uco_wg_destroy(wg), 0);
    return 0;
}

START_TEST(test_wg_wait_returns_when_the_count_reaches_zero)
{
    log_reset();
    ck_assert_int_eq(uco_run(wg_main, NULL, NULL), 0);
    /* All three done first; then the waiters, in the order they queued
     * (main queued before the two tasks it had spawned ran). */
    ck_log(1, 2, 3, 200, 100, 101);
}
END_TEST

START_TEST(test_wg_add_refuses_a_negative_count)
{
    ck_assert_int_eq(uco_wg_create(&wg), 0);
    ck_assert_int_eq(uco_wg_add(wg, -1), -EINVAL);
    ck_assert_int_eq(uco_wg_done(wg), -EINVAL);
    ck_assert_int_eq(uco_wg_add(wg, 2), 0);
    ck_assert_int_eq(uco_wg_add(wg, -3), -EINVAL); /* and the count stays 2 */
    ck_assert_int_eq(uco_wg_done(wg), 0);
    ck_assert_int_eq(uco_wg_done(wg), 0);
    ck_assert_int_eq(uco_wg_done(wg), -EINVAL);
    ck_assert_int_eq(uco_wg_add(wg, 0), 0);
    ck_assert_int_eq(uco_wg_destroy(wg), 0);
}
END_TEST

/* ---- event and wait group: cancellation ---- */

static intptr_t ev_wg_cancel_main(void *arg)
{
    (void)arg;
    intptr_t r;
    ck_assert_int_eq(uco_event_create(&ev), 0);
    uco_task *a = uco_spawn(event_waiter, ARG(1)), *b = uco_spawn(event_waiter, ARG(2));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(a), 1);
    ck_assert_int_eq(uco_join(a, &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    ck_assert_int_eq(uco_event_set(ev), 0);
    ck_assert_int_eq(uco_join(b, &r), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(uco_event_destroy(ev), 0);

    ck_assert_int_eq(uco_wg_create(&wg), 0);
    ck_assert_int_eq(uco_wg_add(wg, 1), 0);
    a = uco_spawn(wg_waiter, ARG(3));
    b = uco_spawn(wg_waiter, ARG(4));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(a), 1);
    ck_assert_int_eq(uco_join(a, &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    ck_assert_int_eq(uco_wg_done(wg), 0);
    ck_assert_int_eq(uco_join(b, &r), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(uco_wg_destroy(wg), 0);
    return 0;
}

START_TEST(test_cancelled_event_and_wg_waiters_return_ecanceled)
{
    log_reset();
    ck_assert_int_eq(uco_run(ev_wg_cancel_main, NULL, NULL), 0);
    ck_log(-1, 2, -3, 4);
}
END_TEST

/* ---- cancellation points ---- */

static intptr_t checkpoint_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(uco_mutex_create(&mu), 0);
    ck_assert_int_eq(uco_event_create(&ev), 0);
    ck_assert_int_eq(uco_event_set(ev), 0);
    /* Delivered by the next wait even though it need not suspend... */
    ck_assert_int_eq(uco_cancel(uco_self()), 1);
    ck_assert_int_eq(uco_mutex_lock(NULL), -EINVAL); /* (not consumed by misuse) */
    ck_assert_int_eq(uco_mutex_lock(mu), -ECANCELED);
    ck_assert_int_eq(uco_mutex_trylock(mu), 0); /* ...and it took nothing */
    ck_assert_int_eq(uco_mutex_unlock(mu), 0);
    /* ...once: delivery consumed the request. */
    ck_assert_int_eq(uco_mutex_lock(mu), 0);
    ck_assert_int_eq(uco_mutex_unlock(mu), 0);
    /* A deadline already passed fails a wait that need not suspend. */
    uint64_t saved;
    ck_assert_int_eq(uco_timeout_begin(0, &saved), 0);
    ck_assert_int_eq(uco_event_wait(ev), -ETIMEDOUT);
    ck_assert_int_eq(uco_timeout_end(saved), 0);
    ck_assert_int_eq(uco_event_wait(ev), 0);
    ck_assert_int_eq(uco_event_destroy(ev), 0);
    ck_assert_int_eq(uco_mutex_destroy(mu), 0);
    return 0;
}

START_TEST(test_sync_waits_are_cancellation_points)
{
    ck_assert_int_eq(uco_run(checkpoint_main, NULL, NULL), 0);
}
END_TEST

/* ---- misuse ---- */

START_TEST(test_sync_awaits_outside_a_coroutine_return_eperm)
{
    int v = 1;
    /* Objects may be made and used without waiting outside a runtime. */
    ck_assert_int_eq(uco_chan_create(sizeof(int), 1, &ch), 0);
    ck_assert_int_eq(uco_mutex_create(&mu), 0);
    ck_assert_int_eq(uco_sem_create(1, &sm), 0);
    ck_assert_int_eq(uco_event_create(&ev), 0);
    ck_assert_int_eq(uco_wg_create(&wg), 0);
    ck_assert_int_eq(uco_chan_send(ch, &v), -EPERM);
    ck_assert_int_eq(uco_chan_recv(ch, &v), -EPERM);
    ck_assert_int_eq(uco_mutex_lock(mu), -EPERM);
    ck_assert_int_eq(uco_mutex_trylock(mu), -EPERM); /* no task to own it */
    ck_assert_int_eq(uco_mutex_unlock(mu), -EPERM);
    ck_assert_int_eq(uco_sem_acquire(sm), -EPERM);
    ck_assert_int_eq(uco_event_wait(ev), -EPERM);
    ck_assert_int_eq(uco_wg_wait(wg), -EPERM);
    ck_assert_int_eq(uco_sem_release(sm), 0);
    ck_assert_int_eq(uco_event_set(ev), 0);
    ck_assert_int_eq(uco_event_clear(ev), 0);
    ck_assert_int_eq(uco_wg_add(wg, 1), 0);
    ck_assert_int_eq(uco_wg_done(wg), 0);
    ck_assert_int_eq(uco_chan_close(ch), 0);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    ck_assert_int_eq(uco_mutex_destroy(mu), 0);
    ck_assert_int_eq(uco_sem_destroy(sm), 0);
    ck_assert_int_eq(uco_event_destroy(ev), 0);
    ck_assert_int_eq(uco_wg_destroy(wg), 0);
}
END_TEST

static intptr_t null_main(void *arg)
{
    (void)arg;
    int v = 0;
    ck_assert_int_eq(uco_chan_send(NULL, &v), -EINVAL);
    ck_assert_int_eq(uco_chan_recv(NULL, &v), -EINVAL);
    ck_assert_int_eq(uco_mutex_lock(NULL), -EINVAL);
    ck_assert_int_eq(uco_mutex_trylock(NULL), -EINVAL);
    ck_assert_int_eq(uco_mutex_unlock(NULL), -EINVAL);
    ck_assert_int_eq(uco_sem_acquire(NULL), -EINVAL);
    ck_assert_int_eq(uco_event_wait(NULL), -EINVAL);
    ck_assert_int_eq(uco_wg_wait(NULL), -EINVAL);
    ck_assert_int_eq(uco_chan_create(sizeof(int), 1, &ch), 0);
    ck_assert_int_eq(uco_chan_send(ch, NULL), -EINVAL);
    ck_assert_int_eq(uco_chan_recv(ch, NULL), -EINVAL);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    return 0;
}

START_TEST(test_sync_calls_reject_null_with_einval)
{
    uco_chan *c = (uco_chan *)&c;
    ck_assert_int_eq(uco_chan_create(sizeof(int), 1, NULL), -EINVAL);
    ck_assert_int_eq(uco_chan_create(0, 1, &c), -EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(uco_chan_create(SIZE_MAX, 2, &c), -ENOMEM);
    ck_assert_int_eq(uco_mutex_create(NULL), -EINVAL);
    ck_assert_int_eq(uco_sem_create(1, NULL), -EINVAL);
    ck_assert_int_eq(uco_event_create(NULL), -EINVAL);
    ck_assert_int_eq(uco_wg_create(NULL), -EINVAL);
    ck_assert_int_eq(uco_chan_close(NULL), -EINVAL);
    ck_assert_int_eq(uco_sem_release(NULL), -EINVAL);
    ck_assert_int_eq(uco_event_set(NULL), -EINVAL);
    ck_assert_int_eq(uco_event_clear(NULL), -EINVAL);
    ck_assert_int_eq(uco_wg_add(NULL, 1), -EINVAL);
    ck_assert_int_eq(uco_wg_done(NULL), -EINVAL);
    ck_assert_int_eq(uco_chan_destroy(NULL), -EINVAL);
    ck_assert_int_eq(uco_mutex_destroy(NULL), -EINVAL);
    ck_assert_int_eq(uco_sem_destroy(NULL), -EINVAL);
    ck_assert_int_eq(uco_event_destroy(NULL), -EINVAL);
    ck_assert_int_eq(uco_wg_destroy(NULL), -EINVAL);
    ck_assert_int_eq(uco_run(null_main, NULL, NULL), 0);
}
END_TEST

static intptr_t busy_main(void *arg)
{
    (void)arg;
    uco_task *t[4];
    intptr_t res[4];
    ck_assert_int_eq(uco_chan_create(sizeof(int), 0, &ch), 0);
    ck_assert_int_eq(uco_sem_create(0, &sm), 0);
    ck_assert_int_eq(uco_event_create(&ev), 0);
    ck_assert_int_eq(uco_wg_create(&wg), 0);
    ck_assert_int_eq(uco_wg_add(wg, 1), 0);
    t[0] = uco_spawn(recv_into, ARG(0));
    t[1] = uco_spawn(acquire_task, NULL);
    t[2] = uco_spawn(event_waiter, ARG(1));
    t[3] = uco_spawn(wg_waiter, ARG(2));
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_chan_destroy(ch), -EBUSY);
    ck_assert_int_eq(uco_sem_destroy(sm), -EBUSY);
    ck_assert_int_eq(uco_event_destroy(ev), -EBUSY);
    ck_assert_int_eq(uco_wg_destroy(wg), -EBUSY);
    int v = 9;
    ck_assert_int_eq(uco_chan_send(ch, &v), 0);
    ck_assert_int_eq(uco_sem_release(sm), 0);
    ck_assert_int_eq(uco_event_set(ev), 0);
    ck_assert_int_eq(uco_wg_done(wg), 0);
    /* Every waiter was woken and left the queues: nothing waits now,
     * even though none of them has run yet. */
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    ck_assert_int_eq(uco_sem_destroy(sm), 0);
    ck_assert_int_eq(uco_event_destroy(ev), 0);
    ck_assert_int_eq(uco_wg_destroy(wg), 0);
    ck_assert_int_eq(uco_gather(t, 4, res), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(res[i], 0);
    ck_assert_int_eq(got[0], 9);
    return 0;
}

START_TEST(test_destroy_is_refused_while_tasks_wait)
{
    got_reset();
    log_reset();
    ck_assert_int_eq(uco_run(busy_main, NULL, NULL), 0);
}
END_TEST

/* Wakes from a thread without a runtime: each call must refuse. */
static int foreign_res[4];

static void *foreign_wake(void *arg)
{
    (void)arg;
    foreign_res[0] = uco_event_set(ev);
    foreign_res[1] = uco_sem_release(sm);
    foreign_res[2] = uco_chan_close(ch);
    foreign_res[3] = uco_wg_done(wg);
    return NULL;
}

static intptr_t foreign_main(void *arg)
{
    (void)arg;
    uco_task *t[4];
    intptr_t res[4];
    ck_assert_int_eq(uco_chan_create(sizeof(int), 0, &ch), 0);
    ck_assert_int_eq(uco_sem_create(0, &sm), 0);
    ck_assert_int_eq(uco_event_create(&ev), 0);
    ck_assert_int_eq(uco_wg_create(&wg), 0);
    ck_assert_int_eq(uco_wg_add(wg, 1), 0);
    t[0] = uco_spawn(event_waiter, ARG(1));
    t[1] = uco_spawn(acquire_task, NULL);
    t[2] = uco_spawn(recv_into, ARG(0));
    t[3] = uco_spawn(wg_waiter, ARG(2));
    ck_assert_int_eq(uco_yield(), 0);
    /* The loop is blocked in pthread_join meanwhile: no race. */
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, foreign_wake, NULL), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(foreign_res[i], -EPERM);
    /* Nothing changed: the waiters still wait, the count is still 1. */
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(ln, 0);
    ck_assert_int_eq(uco_event_set(ev), 0);
    ck_assert_int_eq(uco_sem_release(sm), 0);
    ck_assert_int_eq(uco_chan_close(ch), 0);
    ck_assert_int_eq(uco_wg_done(wg), 0);
    ck_assert_int_eq(uco_gather(t, 4, res), 0);
    ck_assert_int_eq(res[0], 0);
    ck_assert_int_eq(res[1], 0);
    ck_assert_int_eq(res[2], -EPIPE);
    ck_assert_int_eq(res[3], 0);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    ck_assert_int_eq(uco_sem_destroy(sm), 0);
    ck_assert_int_eq(uco_event_destroy(ev), 0);
    ck_assert_int_eq(uco_wg_destroy(wg), 0);
    return 0;
}

START_TEST(test_waking_from_outside_the_runtime_returns_eperm)
{
    got_reset();
    log_reset();
    ck_assert_int_eq(uco_run(foreign_main, NULL, NULL), 0);
}
END_TEST

/* ---- no allocation per operation ---- */

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);

static uint64_t thread_allocated(mallctl_fn mallctl)
{
    uint64_t v = 0;
    size_t len = sizeof(v);
    if (mallctl("thread.allocated", &v, &len, NULL, 0) != 0)
        return UINT64_MAX / 2; /* makes the difference below fail loudly */
    return v;
}

#define ROUNDS 10000
static uco_chan *pong;

/* Both sides take the mutex and the unit across a switch, so each round
 * makes the other side wait on every primitive.  No ck_assert in the
 * loops: Check records every passing assertion, and that allocates. */
static int contend(void)
{
    int bad = uco_mutex_lock(mu) != 0;
    uco_yield();
    bad += uco_mutex_unlock(mu) != 0;
    bad += uco_sem_acquire(sm) != 0;
    uco_yield();
    bad += uco_sem_release(sm) != 0;
    return bad;
}

static intptr_t echo_task(void *arg)
{
    (void)arg;
    int bad = 0, v;
    for (int i = 0; i < ROUNDS; i++) {
        bad += uco_chan_recv(ch, &v) != 0;
        bad += uco_chan_send(pong, &v) != 0;
        bad += contend();
        bad += uco_event_set(ev) != 0;
        bad += uco_wg_done(wg) != 0;
    }
    return bad;
}

static intptr_t caller_task(void *arg)
{
    (void)arg;
    int bad = 0, v;
    for (int i = 0; i < ROUNDS; i++) {
        bad += uco_wg_add(wg, 1) != 0;
        bad += uco_event_clear(ev) != 0;
        bad += uco_chan_send(ch, &i) != 0;
        bad += uco_chan_recv(pong, &v) != 0 || v != i;
        bad += contend();
        bad += uco_event_wait(ev) != 0;
        bad += uco_wg_wait(wg) != 0;
    }
    return bad;
}

static intptr_t sync_alloc_main(void *arg)
{
    mallctl_fn mallctl = (mallctl_fn)arg;
    ck_assert_int_eq(uco_chan_create(sizeof(int), 0, &ch), 0);
    ck_assert_int_eq(uco_chan_create(sizeof(int), 1, &pong), 0);
    ck_assert_int_eq(uco_mutex_create(&mu), 0);
    ck_assert_int_eq(uco_sem_create(1, &sm), 0);
    ck_assert_int_eq(uco_event_create(&ev), 0);
    ck_assert_int_eq(uco_wg_create(&wg), 0);
    uco_task *t[2] = {uco_spawn(echo_task, NULL), uco_spawn(caller_task, NULL)};
    uint64_t probe;
    size_t len = sizeof(probe);
    ck_assert_int_eq(mallctl("thread.allocated", &probe, &len, NULL, 0), 0);
    uint64_t before = thread_allocated(mallctl);
    intptr_t bad[2];
    int ret = uco_gather(t, 2, bad);
    uint64_t used = thread_allocated(mallctl) - before;
    ck_assert_int_eq(ret, 0);
    ck_assert_int_eq(bad[0] + bad[1], 0);
    ck_assert_int_eq(uco_chan_destroy(ch), 0);
    ck_assert_int_eq(uco_chan_destroy(pong), 0);
    ck_assert_int_eq(uco_mutex_destroy(mu), 0);
    ck_assert_int_eq(uco_sem_destroy(sm), 0);
    ck_assert_int_eq(uco_event_destroy(ev), 0);
    ck_assert_int_eq(uco_wg_destroy(wg), 0);
    return (intptr_t)used;
}

START_TEST(test_sync_operations_allocate_nothing)
{
    mallctl_fn mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
    if (!mallctl) /* sanitizer builds run without jemalloc */
        return;
    ck_assert_int_eq(uco_run(sync_alloc_main, (void *)mallctl, NULL), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sync");
    TCase *tc = tcase_create("sync");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_chan_send_blocks_while_full_and_recv_while_empty);
    tcase_add_test(tc, test_chan_items_of_blocked_senders_arrive_in_fifo_order);
    tcase_add_test(tc, test_chan_blocked_receivers_are_handed_items_in_fifo_order);
    tcase_add_test(tc, test_chan_many_senders_and_receivers_lose_and_reorder_nothing);
    tcase_add_test(tc, test_chan_close_wakes_every_waiter_with_epipe);
    tcase_add_test(tc, test_chan_recv_drains_buffered_items_after_close);
    tcase_add_test(tc, test_chan_recv_on_an_empty_channel_times_out);
    tcase_add_test(tc, test_chan_send_that_times_out_is_never_delivered);
    tcase_add_test(tc, test_cancelled_chan_waiters_take_and_give_nothing);
    tcase_add_test(tc, test_hand_over_before_a_cancel_lands_is_kept);
    tcase_add_test(tc, test_mutex_is_handed_over_in_fifo_order);
    tcase_add_test(tc, test_mutex_unlock_by_non_owner_eperm_and_trylock_ebusy);
    tcase_add_test(tc, test_cancelled_mutex_waiter_does_not_take_the_lock);
    tcase_add_test(tc, test_sem_counts_units_and_serves_waiters_in_fifo_order);
    tcase_add_test(tc, test_cancelled_sem_waiter_does_not_take_the_unit);
    tcase_add_test(tc, test_event_set_wakes_all_and_clear_makes_wait_block);
    tcase_add_test(tc, test_wg_wait_returns_when_the_count_reaches_zero);
    tcase_add_test(tc, test_wg_add_refuses_a_negative_count);
    tcase_add_test(tc, test_cancelled_event_and_wg_waiters_return_ecanceled);
    tcase_add_test(tc, test_sync_waits_are_cancellation_points);
    tcase_add_test(tc, test_sync_awaits_outside_a_coroutine_return_eperm);
    tcase_add_test(tc, test_sync_calls_reject_null_with_einval);
    tcase_add_test(tc, test_destroy_is_refused_while_tasks_wait);
    tcase_add_test(tc, test_waking_from_outside_the_runtime_returns_eperm);
    tcase_add_test(tc, test_sync_operations_allocate_nothing);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
