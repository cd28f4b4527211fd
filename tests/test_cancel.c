/* Deadlines and cancellation: every blocking kind times out and can be
 * cancelled; nothing completed is lost, nothing is written after return. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

/* The blocking operation kinds, each parked until cancelled or timed out. */
enum kind { K_ACCEPT, K_RECV, K_PIPE_READ, K_CONNECT, K_SLEEP, K_POLL, K_JOIN, K_PARK, K_COUNT };
static const char *kind_name[] = {"accept", "recv", "pipe read", "connect",
                                  "sleep", "poll", "join", "park"};

struct env {
    int lfd;       /* a listener nobody connects to */
    int full_port; /* a listener whose accept queue is full: connect hangs */
    int full_lfd, filler;
    int sv[2];     /* a socketpair with no data */
    int p[2];      /* a pipe with no data */
};

static intptr_t forever(void *arg)
{
    (void)arg;
    return uco_park();
}

static void env_open(struct env *e)
{
    e->lfd = uco_listen_tcp("127.0.0.1", 0, 8);
    /* Backlog 0 holds one connection; the next SYN is dropped and its
     * connect waits for retransmissions (on loopback, nothing leaves). */
    e->full_lfd = uco_listen_tcp("127.0.0.1", 0, 0);
    e->full_port = uco_local_port(e->full_lfd);
    e->filler = uco_dial_tcp("127.0.0.1", (uint16_t)e->full_port);
    ck_assert_int_ge(e->filler, 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e->sv), 0);
    ck_assert_int_eq(pipe2(e->p, O_CLOEXEC), 0);
}

static void env_close(struct env *e)
{
    int fds[] = {e->lfd, e->full_lfd, e->filler, e->sv[0], e->sv[1], e->p[0], e->p[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        uco_close(fds[i]);
}

/* Runs one blocking operation of kind k; returns its result. */
static intptr_t block_on(struct env *e, enum kind k, char *buf)
{
    switch (k) {
    case K_ACCEPT: return uco_accept(e->lfd, NULL, NULL, SOCK_CLOEXEC);
    case K_RECV: return uco_recv(e->sv[0], buf, 16, 0);
    case K_PIPE_READ: return uco_read(e->p[0], buf, 16, -1);
    case K_CONNECT: {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->full_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = uco_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int r = uco_connect(fd, (struct sockaddr *)&a, sizeof(a));
        uco_close(fd);
        return r;
    }
    case K_SLEEP: return uco_sleep(UCO_SEC(30));
    case K_POLL: return uco_wait_fd(e->sv[0], POLLIN);
    case K_JOIN: {
        uco_task *t = uco_spawn(forever, NULL);
        intptr_t r = uco_join(t, NULL);
        uco_cancel(t); /* clean up: t is still joinable after our failed join */
        uco_detach(t);
        return r;
    }
    case K_PARK: return uco_park();
    default: return -EINVAL;
    }
}

struct victim {
    struct env *e;
    enum kind k;
    intptr_t res;
    char buf[16];
    int next_await; /* what the await after it returned */
};

static intptr_t victim_task(void *arg)
{
    struct victim *v = arg;
    v->res = block_on(v->e, v->k, v->buf);
    v->next_await = uco_yield();
    return 0;
}

static intptr_t cancel_main(void *arg)
{
    (void)arg;
    struct env e;
    env_open(&e);
    for (int k = 0; k < K_COUNT; k++) {
        struct victim v = {.e = &e, .k = (enum kind)k};
        uco_task *t = uco_spawn(victim_task, &v);
        for (int i = 0; i < 5; i++) /* let it block */
            uco_yield();
        uco_sleep(UCO_MSEC(5));
        double t0 = now_sec();
        ck_assert_int_eq(uco_cancel(t), 1);
        ck_assert_int_eq(uco_cancel(t), 1); /* idempotent */
        ck_assert_int_eq(uco_join(t, NULL), 0);
        ck_assert_msg(v.res == -ECANCELED, "%s: %ld", kind_name[k], (long)v.res);
        ck_assert_msg(now_sec() - t0 < 1.0, "%s: cancel took %.3f s", kind_name[k], now_sec() - t0);
        /* Delivered once: the next await runs normally. */
        ck_assert_msg(v.next_await == 0, "%s: next await %d", kind_name[k], v.next_await);
    }
    env_close(&e);
    return 0;
}

START_TEST(test_cancel_wakes_every_blocking_kind_with_ecanceled)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(cancel_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

static intptr_t timeout_main(void *arg)
{
    (void)arg;
    struct env e;
    env_open(&e);
    for (int k = 0; k < K_COUNT; k++) {
        char buf[16];
        uint64_t saved;
        double t0 = now_sec();
        ck_assert_int_eq(uco_timeout_begin(UCO_MSEC(50), &saved), 0);
        intptr_t r = block_on(&e, (enum kind)k, buf);
        ck_assert_int_eq(uco_timeout_end(saved), 0);
        double dt = now_sec() - t0;
        ck_assert_msg(r == -ETIMEDOUT, "%s: %ld", kind_name[k], (long)r);
        ck_assert_msg(dt >= 0.045 && dt < 0.5, "%s: timed out after %.3f s", kind_name[k], dt);
        ck_assert_int_eq(uco_yield(), 0); /* the scope is over */
    }
    env_close(&e);
    return 0;
}

START_TEST(test_timeout_scope_ends_every_blocking_kind_with_etimedout)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(timeout_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

static intptr_t nested_main(void *arg)
{
    (void)arg;
    uint64_t outer, inner;
    ck_assert_int_eq(uco_timeout_begin(UCO_MSEC(80), &outer), 0);
    ck_assert_int_eq(outer, 0);
    /* An inner scope cannot extend the outer one. */
    ck_assert_int_eq(uco_timeout_begin(UCO_SEC(10), &inner), 0);
    double t0 = now_sec();
    ck_assert_int_eq(uco_sleep(UCO_SEC(5)), -ETIMEDOUT);
    ck_assert_msg(now_sec() - t0 < 0.5, "outer deadline ignored");
    ck_assert_int_eq(uco_timeout_end(inner), 0);
    /* Still in the outer scope, now expired: fails at once. */
    ck_assert_int_eq(uco_yield(), -ETIMEDOUT);
    ck_assert_int_eq(uco_timeout_end(outer), 0);
    /* An operation that finishes in time is untouched by its deadline. */
    ck_assert_int_eq(uco_timeout_begin(UCO_MSEC(200), &outer), 0);
    ck_assert_int_eq(uco_sleep(UCO_MSEC(10)), 0);
    ck_assert_int_eq(uco_timeout_end(outer), 0);
    ck_assert_int_eq(uco_sleep(UCO_MSEC(250)), 0); /* the old link timeout is gone */
    ck_assert_int_eq(uco_timeout_begin(1, NULL), -EINVAL);
    return 0;
}

START_TEST(test_timeout_scopes_nest_and_end)
{
    ck_assert_int_eq(uco_run(nested_main, NULL, NULL), 0);
    ck_assert_int_eq(uco_timeout_begin(1, &(uint64_t){0}), -EPERM);
    ck_assert_int_eq(uco_timeout_end(0), -EPERM);
    ck_assert_int_eq(uco_cancel(NULL), -EINVAL);
}
END_TEST

/* ---- races: cancel against completion ---- */

struct racer {
    int fd;
    ssize_t got;
    int after;
    char buf[8];
};

static intptr_t race_recv(void *arg)
{
    struct racer *r = arg;
    r->got = uco_recv(r->fd, r->buf, 1, 0);
    r->after = uco_yield();
    return 0;
}

/* The byte is sent and the reader cancelled in the same pass: either it
 * got the byte (then its next await sees the cancel) or it got
 * -ECANCELED and the byte is still in the socket.  Never both, never lost. */
static intptr_t recv_race_main(void *arg)
{
    int rounds = (int)(intptr_t)arg, got_data = 0, got_cancel = 0;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    for (int i = 0; i < rounds; i++) {
        struct racer r = {.fd = sv[0]};
        uco_task *t = uco_spawn(race_recv, &r);
        uco_yield(); /* t parks in recv */
        char c = (char)('a' + i % 26);
        if (i % 3 == 1) { /* the cancel goes first, and is submitted */
            uco_cancel(t);
            uco_yield();
            uco_yield();
        }
        ck_assert_int_eq(write(sv[1], &c, 1), 1);
        if (i % 3 == 0)
            uco_yield(); /* the data wins clearly */
        uco_cancel(t); /* i % 3 == 2: both in the same pass, a real race */
        uco_join(t, NULL);
        if (r.got == 1) {
            got_data++;
            ck_assert_int_eq(r.buf[0], c);
            ck_assert_int_eq(r.after, -ECANCELED);
        } else {
            got_cancel++;
            ck_assert_int_eq(r.got, -ECANCELED);
            ck_assert_int_eq(r.after, 0);
            char back;
            ck_assert_int_eq(uco_recv(sv[0], &back, 1, 0), 1);
            ck_assert_int_eq(back, c);
        }
    }
    uco_close(sv[0]);
    uco_close(sv[1]);
    ck_assert_int_eq(got_data + got_cancel, rounds);
    return got_data;
}

START_TEST(test_cancel_racing_recv_loses_no_byte)
{
    int fds = count_fds();
    intptr_t data = uco_run(recv_race_main, (void *)2000, NULL);
    ck_assert_int_ge(data, 1); /* both outcomes happen */
    ck_assert_int_lt(data, 2000);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

struct acc_racer {
    int lfd;
    int fd;
};

static intptr_t race_accept(void *arg)
{
    struct acc_racer *a = arg;
    a->fd = uco_accept(a->lfd, NULL, NULL, SOCK_CLOEXEC);
    return 0;
}

/* Accepted fds are returned even when the cancel came too late: none leaks. */
static intptr_t accept_race_main(void *arg)
{
    int rounds = (int)(intptr_t)arg, accepted = 0;
    int lfd = uco_listen_tcp("127.0.0.1", 0, 64);
    int port = uco_local_port(lfd);
    for (int i = 0; i < rounds; i++) {
        struct acc_racer a = {.lfd = lfd, .fd = -1};
        uco_task *t = uco_spawn(race_accept, &a);
        uco_yield();
        int c = uco_dial_tcp("127.0.0.1", (uint16_t)port);
        ck_assert_int_ge(c, 0);
        uco_cancel(t);
        uco_join(t, NULL);
        if (a.fd >= 0) {
            accepted++;
            uco_close(a.fd);
        } else {
            ck_assert_int_eq(a.fd, -ECANCELED);
            int s = uco_accept(lfd, NULL, NULL, SOCK_CLOEXEC); /* still queued */
            ck_assert_int_ge(s, 0);
            uco_close(s);
        }
        uco_close(c);
    }
    uco_close(lfd);
    return accepted;
}

START_TEST(test_cancel_racing_accept_leaks_no_fd)
{
    int fds = count_fds();
    intptr_t r = uco_run(accept_race_main, (void *)300, NULL);
    ck_assert_int_ge(r, 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- buffers are not written after a cancelled recv returns ---- */

static intptr_t stack_victim(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    memset(buf, 'z', sizeof(buf));
    ssize_t r = uco_recv(fd, buf, sizeof(buf), 0);
    if (r != -ECANCELED)
        return -1;
    uco_sleep(UCO_MSEC(30)); /* the peer sends meanwhile */
    for (size_t i = 0; i < sizeof(buf); i++)
        if (buf[i] != 'z')
            return -2;
    return 0;
}

static intptr_t late_write_main(void *arg)
{
    (void)arg;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uco_task *t = uco_spawn(stack_victim, (void *)(intptr_t)sv[0]);
    uco_yield();
    uco_cancel(t);
    uco_sleep(UCO_MSEC(5));
    ck_assert_int_eq(uco_send(sv[1], "late", 4, 0), 4);
    intptr_t r;
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, 0);
    char got[8] = {0};
    ck_assert_int_eq(uco_recv(sv[0], got, sizeof(got), 0), 4); /* still there */
    ck_assert_str_eq(got, "late");
    uco_close(sv[0]);
    uco_close(sv[1]);
    return 0;
}

START_TEST(test_cancelled_recv_never_writes_after_returning)
{
    ck_assert_int_eq(uco_run(late_write_main, NULL, NULL), 0);
}
END_TEST

/* A deadline that passes while an operation it cannot interrupt runs: a
 * buffered read of a big cached file in an io-wq worker (IOSQE_ASYNC)
 * takes milliseconds and ignores the cancel the deadline sends once it
 * has started (-EALREADY).  Its bytes come back, never -ETIMEDOUT over
 * them; the next await in the scope sees the deadline.  A read the worker
 * had not yet picked up is cancelled (-ETIMEDOUT, nothing read): tried
 * again, and at least one try must be a read that outlived its deadline. */
#define BIG_READ (64u << 20)

/* One read of fd into got under a 2 ms deadline (long enough for valgrind
 * to submit before it passes); 1 when it tested the rule, 0 when the read
 * was cancelled before it started. */
static int read_past_deadline(int fd, const char *want, char *got)
{
    memset(got, 0, BIG_READ); /* faulted in: the read only copies */
    uint64_t saved, t0 = uco_now();
    ck_assert_int_eq(uco_timeout_begin(UCO_MSEC(2), &saved), 0);
    struct io_uring_sqe *sqe = uco_sqe();
    io_uring_prep_read(sqe, fd, got, BIG_READ, 0);
    sqe->flags |= IOSQE_ASYNC;
    int r = uco_await(sqe);
    uint64_t took = uco_now() - t0;
    ck_assert_int_eq(uco_yield(), -ETIMEDOUT);
    ck_assert_int_eq(uco_timeout_end(saved), 0);
    if (r == -ETIMEDOUT)
        return 0;
    ck_assert_int_gt(r, 0); /* a partial read keeps its bytes too */
    ck_assert_int_eq(memcmp(want, got, (size_t)r), 0);
    return r == BIG_READ && took > UCO_MSEC(2);
}

static intptr_t uninterruptible_main(void *arg)
{
    (void)arg;
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    char *want = malloc(BIG_READ), *got = malloc(BIG_READ);
    ck_assert(want && got);
    for (size_t i = 0; i < BIG_READ; i++)
        want[i] = (char)(i * 7 + i / 4096);
    ck_assert_int_eq(pwrite(fd, want, BIG_READ, 0), BIG_READ);
    /* A first async read starts an io-wq worker for the ones timed. */
    struct io_uring_sqe *sqe = uco_sqe();
    io_uring_prep_read(sqe, fd, got, 4096, 0);
    sqe->flags |= IOSQE_ASYNC;
    ck_assert_int_eq(uco_await(sqe), 4096);
    int tested = 0;
    for (int i = 0; i < 8 && !tested; i++)
        tested = read_past_deadline(fd, want, got);
    ck_assert_msg(tested, "no read outlived its deadline in 8 tries");
    free(got);
    free(want);
    ck_assert_int_eq(uco_close(fd), 0);
    return 0;
}

START_TEST(test_deadline_keeps_the_result_of_an_uninterruptible_read)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(uninterruptible_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- the rules for finished tasks, oneself, runnable tasks ---- */

static intptr_t cleanup_task(void *arg)
{
    int *fds = arg;
    int r = uco_sleep(UCO_SEC(10));
    /* Cleanup after the cancel: close must work. */
    int c0 = uco_close(fds[0]), c1 = uco_close(fds[1]);
    return r == -ECANCELED && c0 == 0 && c1 == 0 ? 0 : -1;
}

static intptr_t first_await(void *arg)
{
    (void)arg;
    return uco_sleep(UCO_MSEC(1));
}

static intptr_t rules_main(void *arg)
{
    (void)arg;
    /* A finished task: nothing to do. */
    uco_task *t = uco_spawn(first_await, NULL);
    uco_sleep(UCO_MSEC(20));
    ck_assert_int_eq(uco_cancel(t), 0);
    intptr_t r;
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, 0);
    /* Oneself: delivered by the next await, once. */
    ck_assert_int_eq(uco_cancel(uco_self()), 1);
    ck_assert_int_eq(uco_sleep(UCO_MSEC(1)), -ECANCELED);
    ck_assert_int_eq(uco_sleep(UCO_MSEC(1)), 0);
    /* A pending cancel does not stop close. */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(uco_cancel(uco_self()), 1);
    ck_assert_int_eq(uco_close(p[0]), 0);
    ck_assert_int_eq(uco_yield(), -ECANCELED);
    ck_assert_int_eq(uco_close(p[1]), 0);
    /* A runnable task that has not started: its first await. */
    t = uco_spawn(first_await, NULL);
    ck_assert_int_eq(uco_cancel(t), 1);
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    /* A cancelled task cleans up. */
    ck_assert_int_eq(pipe(p), 0);
    t = uco_spawn(cleanup_task, p);
    uco_yield();
    uco_cancel(t);
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, 0);
    return 0;
}

START_TEST(test_cancel_rules_for_finished_self_and_runnable_tasks)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(rules_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- wait_any ---- */

static intptr_t nap(void *arg)
{
    uco_sleep(UCO_MSEC((intptr_t)arg));
    return (intptr_t)arg;
}

static intptr_t any_main(void *arg)
{
    (void)arg;
    uco_task *t[3] = {uco_spawn(nap, (void *)60), uco_spawn(nap, (void *)20),
                      uco_spawn(nap, (void *)40)};
    ck_assert_int_eq(uco_wait_any(t, 3), 1);
    intptr_t r;
    ck_assert_int_eq(uco_join(t[1], &r), 0);
    ck_assert_int_eq(r, 20);
    uco_task *rest[2] = {t[0], t[2]};
    ck_assert_int_eq(uco_wait_any(rest, 2), 1);
    ck_assert_int_eq(uco_wait_any(rest, 2), 1); /* already done: at once */
    uint64_t saved;
    uco_timeout_begin(UCO_MSEC(5), &saved);
    ck_assert_int_eq(uco_wait_any(rest, 1), -ETIMEDOUT);
    uco_timeout_end(saved);
    ck_assert_int_eq(uco_wait_any(rest, 0), -EINVAL);
    ck_assert_int_eq(uco_gather(rest, 2, NULL), 0);
    return 0;
}

START_TEST(test_wait_any_returns_the_first_finished)
{
    ck_assert_int_eq(uco_run(any_main, NULL, NULL), 0);
    ck_assert_int_eq(uco_wait_any(NULL, 0), -EPERM);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cancel");
    TCase *tc = tcase_create("cancel");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cancel_wakes_every_blocking_kind_with_ecanceled);
    tcase_add_test(tc, test_timeout_scope_ends_every_blocking_kind_with_etimedout);
    tcase_add_test(tc, test_timeout_scopes_nest_and_end);
    tcase_add_test(tc, test_cancel_racing_recv_loses_no_byte);
    tcase_add_test(tc, test_cancel_racing_accept_leaks_no_fd);
    tcase_add_test(tc, test_cancelled_recv_never_writes_after_returning);
    tcase_add_test(tc, test_deadline_keeps_the_result_of_an_uninterruptible_read);
    tcase_add_test(tc, test_cancel_rules_for_finished_self_and_runnable_tasks);
    tcase_add_test(tc, test_wait_any_returns_the_first_finished);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
