/* Microbenchmarks: each uco case beside the thread version doing the same
 * work, so the ratios come from one run on one machine.
 *   switch/...  one hand-off of control between two parties
 *   spawn/...   create + run + join one task or thread
 *   chan/...    a one-item ping-pong through a channel or a condvar queue
 *   pipe/...    a one-byte ping-pong through two pipes
 *   await/...   NOPs awaited through the runtime vs raw liburing, apart and
 *               side by side (paired_nop: the two alternate every batch)
 *   timers/...  how late 10,000 concurrent sleeps wake
 *   file/...    random 4 KiB reads from the page cache, 1-64 in flight
 *   memory/...  resident bytes per idle coroutine and per idle thread, how
 *               many of each fit in 4 GiB, and a million parked coroutines
 *   cpu/...     CPU-bound work, where threads on both cores win */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "uco.h"

void bench_boost_register(void);

/* Runs fn(s) as the main task of a fresh runtime. */
static void in_runtime(bench_state *s, uco_fn fn)
{
    intptr_t r = uco_run(fn, s, NULL);
    if (r < 0)
        bench_skip(s, "uco_run failed");
}

/* ---- switch ---- */

static volatile bool stop_partner;

static intptr_t yield_partner(void *arg)
{
    (void)arg;
    while (!stop_partner)
        uco_yield();
    return 0;
}

static intptr_t yield_main(void *arg)
{
    bench_state *s = arg;
    stop_partner = false;
    uco_task *p = uco_spawn(yield_partner, NULL);
    while (bench_keep_running(s))
        uco_yield(); /* to the partner and back: two hand-offs */
    stop_partner = true;
    uco_join(p, NULL);
    bench_set_items(s, bench_iterations(s) * 2);
    return 0;
}

static void switch_uco_yield(bench_state *s) { in_runtime(s, yield_main); }

static uco_task *pw_main_task;

static intptr_t pw_partner(void *arg)
{
    (void)arg;
    while (uco_park() == 1)
        uco_wake(pw_main_task, 1);
    return 0;
}

static intptr_t park_wake_main(void *arg)
{
    bench_state *s = arg;
    pw_main_task = uco_self();
    uco_task *p = uco_spawn(pw_partner, NULL);
    uco_yield(); /* the partner parks */
    while (bench_keep_running(s)) {
        uco_wake(p, 1);
        uco_park();
    }
    uco_wake(p, 0);
    uco_join(p, NULL);
    bench_set_items(s, bench_iterations(s) * 2);
    return 0;
}

static void switch_uco_park_wake(bench_state *s) { in_runtime(s, park_wake_main); }

/* The floor: the assembly switch alone, no scheduler. */
static struct coro floor_main, floor_co;

static void floor_entry(void *arg)
{
    (void)arg;
    for (;;)
        coro_switch(&floor_co, &floor_main);
}

static void switch_asm_floor(bench_state *s)
{
    size_t size = 64 * 1024;
    char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    coro_init_thread(&floor_main);
    coro_init(&floor_co, stack, size, floor_entry, NULL);
    while (bench_keep_running(s))
        coro_switch(&floor_main, &floor_co); /* there and back */
    bench_set_items(s, bench_iterations(s) * 2);
    munmap(stack, size);
}

/* Threads handing off through a futex word: 0 = ping's turn, 1 = pong's. */
static _Atomic int turn;
static volatile bool pong_stop;

static void futex_wait(_Atomic int *w, int v)
{
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *pong(void *arg)
{
    pin((int)(intptr_t)arg);
    for (;;) {
        while (atomic_load(&turn) != 1)
            futex_wait(&turn, 0);
        if (pong_stop)
            return NULL;
        atomic_store(&turn, 0);
        futex_wake(&turn);
    }
}

static void futex_pingpong(bench_state *s, int cpu_a, int cpu_b)
{
    pthread_t t;
    atomic_store(&turn, 0);
    pong_stop = false;
    pthread_create(&t, NULL, pong, (void *)(intptr_t)cpu_b);
    pin(cpu_a);
    while (bench_keep_running(s)) {
        atomic_store(&turn, 1);
        futex_wake(&turn);
        while (atomic_load(&turn) != 0)
            futex_wait(&turn, 1);
    }
    pong_stop = true;
    atomic_store(&turn, 1);
    futex_wake(&turn);
    pthread_join(t, NULL);
    cpu_set_t all; /* unpin the benchmark thread again */
    CPU_ZERO(&all);
    for (int i = 0; i < sysconf(_SC_NPROCESSORS_ONLN); i++)
        CPU_SET(i, &all);
    pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
    bench_set_items(s, bench_iterations(s) * 2);
}

static void switch_thread_futex_same_core(bench_state *s) { futex_pingpong(s, 0, 0); }
static void switch_thread_futex_cross_core(bench_state *s) { futex_pingpong(s, 0, 1); }

/* ---- spawn ---- */

static intptr_t nothing(void *arg) { return (intptr_t)arg; }

static intptr_t spawn_main(void *arg)
{
    bench_state *s = arg;
    while (bench_keep_running(s))
        uco_join(uco_spawn(nothing, NULL), NULL);
    bench_set_items(s, bench_iterations(s));
    return 0;
}

static void spawn_uco(bench_state *s) { in_runtime(s, spawn_main); }

static void *thread_nothing(void *arg) { return arg; }

static void spawn_pthread(bench_state *s)
{
    while (bench_keep_running(s)) {
        pthread_t t;
        pthread_create(&t, NULL, thread_nothing, NULL);
        pthread_join(t, NULL);
    }
    bench_set_items(s, bench_iterations(s));
}

/* ---- channel ping-pong ---- */

static uco_chan *ch_a, *ch_b;

static intptr_t chan_echo(void *arg)
{
    (void)arg;
    long v;
    while (uco_chan_recv(ch_a, &v) == 0)
        uco_chan_send(ch_b, &v);
    return 0;
}

static intptr_t chan_main(void *arg)
{
    bench_state *s = arg;
    uco_chan_create(sizeof(long), 1, &ch_a);
    uco_chan_create(sizeof(long), 1, &ch_b);
    uco_task *e = uco_spawn(chan_echo, NULL);
    long v = 0;
    while (bench_keep_running(s)) {
        uco_chan_send(ch_a, &v);
        uco_chan_recv(ch_b, &v);
        v++;
    }
    uco_chan_close(ch_a);
    uco_join(e, NULL);
    uco_chan_destroy(ch_a);
    uco_chan_destroy(ch_b);
    bench_set_items(s, bench_iterations(s));
    return 0;
}

static void chan_uco(bench_state *s) { in_runtime(s, chan_main); }

/* A one-slot queue guarded by a mutex, signalled with condvars. */
struct tq {
    pthread_mutex_t m;
    pthread_cond_t c;
    long v;
    bool full, closed;
};

static struct tq tq_a, tq_b;

static void tq_init(struct tq *q)
{
    pthread_mutex_init(&q->m, NULL);
    pthread_cond_init(&q->c, NULL);
    q->full = q->closed = false;
}

static void tq_put(struct tq *q, long v)
{
    pthread_mutex_lock(&q->m);
    while (q->full)
        pthread_cond_wait(&q->c, &q->m);
    q->v = v;
    q->full = true;
    pthread_cond_broadcast(&q->c);
    pthread_mutex_unlock(&q->m);
}

static bool tq_get(struct tq *q, long *v)
{
    pthread_mutex_lock(&q->m);
    while (!q->full && !q->closed)
        pthread_cond_wait(&q->c, &q->m);
    bool ok = q->full;
    *v = q->v;
    q->full = false;
    pthread_cond_broadcast(&q->c);
    pthread_mutex_unlock(&q->m);
    return ok;
}

static void *tq_echo(void *arg)
{
    (void)arg;
    long v;
    while (tq_get(&tq_a, &v))
        tq_put(&tq_b, v);
    return NULL;
}

static void chan_thread_condvar(bench_state *s)
{
    tq_init(&tq_a);
    tq_init(&tq_b);
    pthread_t t;
    pthread_create(&t, NULL, tq_echo, NULL);
    long v = 0;
    while (bench_keep_running(s)) {
        tq_put(&tq_a, v);
        tq_get(&tq_b, &v);
        v++;
    }
    pthread_mutex_lock(&tq_a.m);
    tq_a.closed = true;
    pthread_cond_broadcast(&tq_a.c);
    pthread_mutex_unlock(&tq_a.m);
    pthread_join(t, NULL);
    bench_set_items(s, bench_iterations(s));
}

/* ---- pipe ping-pong ---- */

static int p_ab[2], p_ba[2];

static intptr_t pipe_echo(void *arg)
{
    (void)arg;
    char c;
    while (uco_read(p_ab[0], &c, 1, -1) == 1)
        uco_write(p_ba[1], &c, 1, -1);
    return 0;
}

static intptr_t pipe_main(void *arg)
{
    bench_state *s = arg;
    uco_task *e = uco_spawn(pipe_echo, NULL);
    char c = 'x';
    while (bench_keep_running(s)) {
        uco_write(p_ab[1], &c, 1, -1);
        uco_read(p_ba[0], &c, 1, -1);
    }
    close(p_ab[1]);
    uco_join(e, NULL);
    bench_set_items(s, bench_iterations(s));
    return 0;
}

static void pipes_open(void)
{
    if (pipe(p_ab) < 0 || pipe(p_ba) < 0)
        abort();
}

static void pipes_close(void)
{
    close(p_ab[0]);
    close(p_ba[0]);
    close(p_ba[1]);
}

static void pipe_uco(bench_state *s)
{
    pipes_open();
    in_runtime(s, pipe_main);
    pipes_close();
}

static void *pipe_thread_echo(void *arg)
{
    (void)arg;
    char c;
    while (read(p_ab[0], &c, 1) == 1)
        if (write(p_ba[1], &c, 1) != 1)
            break;
    return NULL;
}

static void pipe_threads(bench_state *s)
{
    pipes_open();
    pthread_t t;
    pthread_create(&t, NULL, pipe_thread_echo, NULL);
    char c = 'x';
    while (bench_keep_running(s)) {
        if (write(p_ab[1], &c, 1) != 1 || read(p_ba[0], &c, 1) != 1)
            break;
    }
    close(p_ab[1]);
    pthread_join(t, NULL);
    pipes_close();
    bench_set_items(s, bench_iterations(s));
}

/* ---- await overhead: NOPs ---- */

#define NOPS_PER_TASK 256 /* per task (raw: per batch slot) and iteration */

static intptr_t nop_loop(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = uco_sqe();
        io_uring_prep_nop(sqe);
        uco_await(sqe);
    }
    return 0;
}

/* Untimed: the tasks of one iteration, each awaiting NOPS_PER_TASK NOPs. */
static void spawn_nop_tasks(bench_state *s, uco_task **t, int tasks)
{
    bench_pause(s);
    for (int i = 0; i < tasks; i++)
        t[i] = uco_spawn(nop_loop, (void *)(intptr_t)NOPS_PER_TASK);
    bench_resume(s);
}

/* Each iteration: `tasks` tasks each await one NOP (one batch of NOPs). */
static intptr_t await_main(void *arg)
{
    bench_state *s = arg;
    int tasks = (int)bench_range(s, 0);
    uco_task *t[64];
    while (bench_keep_running(s)) {
        spawn_nop_tasks(s, t, tasks);
        uco_gather(t, (size_t)tasks, NULL);
    }
    bench_set_items(s, bench_iterations(s) * tasks * NOPS_PER_TASK);
    return 0;
}

static void await_uco(bench_state *s) { in_runtime(s, await_main); }

/* The raw side's ring: set up as the runtime's own, where the kernel allows. */
static int raw_ring_init(struct io_uring *ring)
{
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    if (io_uring_queue_init_params(256, ring, &p) < 0 && io_uring_queue_init(256, ring, 0) < 0)
        return -1;
    (void)io_uring_register_ring_fd(ring); /* as the runtime does; optional */
    return 0;
}

/* rounds batches of `batch` NOPs, each submitted and reaped at once. */
static int raw_nops(struct io_uring *ring, int batch, long rounds)
{
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < batch; i++)
            io_uring_prep_nop(io_uring_get_sqe(ring));
        int ret = io_uring_submit_and_wait(ring, (unsigned)batch);
        if (ret < 0)
            return ret;
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(ring, head, cqe) n++;
        io_uring_cq_advance(ring, n);
    }
    return 0;
}

/* Raw liburing: the same NOPs in batches of `batch`, submit_and_wait. */
static void await_raw_liburing(bench_state *s)
{
    int batch = (int)bench_range(s, 0);
    struct io_uring ring;
    if (raw_ring_init(&ring) < 0) {
        bench_skip(s, "io_uring_queue_init failed");
        return;
    }
    while (bench_keep_running(s)) {
        if (raw_nops(&ring, batch, NOPS_PER_TASK) < 0) {
            bench_skip(s, "io_uring_submit_and_wait failed");
            break;
        }
    }
    io_uring_queue_exit(&ring);
    bench_set_items(s, bench_iterations(s) * batch * NOPS_PER_TASK);
}

/* The two sides again, side by side in time: each iteration runs one
 * batch through the runtime and the same NOPs through a raw ring, timed
 * apart, so the ratio of the two compares runs a millisecond apart
 * rather than seconds (this VM's speed drifts between repetitions). */
static intptr_t paired_main(void *arg)
{
    bench_state *s = arg;
    int tasks = (int)bench_range(s, 0);
    struct io_uring ring;
    if (raw_ring_init(&ring) < 0) {
        bench_skip(s, "io_uring_queue_init failed");
        return 0;
    }
    uco_task *t[64];
    uint64_t uco_ns = 0, raw_ns = 0;
    while (bench_keep_running(s)) {
        spawn_nop_tasks(s, t, tasks);
        uint64_t t0 = uco_now();
        uco_gather(t, (size_t)tasks, NULL);
        uint64_t t1 = uco_now();
        if (raw_nops(&ring, tasks, NOPS_PER_TASK) < 0) {
            bench_skip(s, "io_uring_submit_and_wait failed");
            break;
        }
        uco_ns += t1 - t0;
        raw_ns += uco_now() - t1;
    }
    io_uring_queue_exit(&ring);
    double nops = (double)bench_iterations(s) * tasks * NOPS_PER_TASK;
    bench_set_items(s, (int64_t)(2 * nops));
    if (nops > 0 && raw_ns) {
        bench_counter(s, "uco_ns_per_nop", (double)uco_ns / nops);
        bench_counter(s, "raw_ns_per_nop", (double)raw_ns / nops);
        bench_counter(s, "uco_over_raw", (double)uco_ns / (double)raw_ns);
    }
    return 0;
}

static void await_paired(bench_state *s) { in_runtime(s, paired_main); }

/* ---- timers: 10,000 concurrent sleeps, how late they wake ---- */

#define TIMERS 10000
static uint64_t *lateness;
static int late_n;

static intptr_t timer_task(void *arg)
{
    uint64_t ns = (uint64_t)(intptr_t)arg;
    uint64_t due = uco_now() + ns;
    uco_sleep(ns);
    lateness[late_n++] = uco_now() - due;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static intptr_t timers_main(void *arg)
{
    bench_state *s = arg;
    static uco_task *t[TIMERS];
    lateness = malloc(TIMERS * sizeof(*lateness));
    unsigned seed = 1;
    while (bench_keep_running(s)) {
        late_n = 0;
        for (int i = 0; i < TIMERS; i++) {
            seed = seed * 1103515245u + 12345u;
            t[i] = uco_spawn(timer_task, (void *)(intptr_t)(UCO_MSEC(1) + seed % UCO_MSEC(50)));
        }
        uco_gather(t, TIMERS, NULL);
    }
    qsort(lateness, TIMERS, sizeof(*lateness), cmp_u64);
    bench_counter(s, "late_p50_us", (double)lateness[TIMERS / 2] / 1e3);
    bench_counter(s, "late_p99_us", (double)lateness[TIMERS * 99 / 100] / 1e3);
    bench_set_items(s, bench_iterations(s) * TIMERS);
    free(lateness);
    return 0;
}

static void timers_uco(bench_state *s) { in_runtime(s, timers_main); }

/* ---- file reads: random 4 KiB reads from a file in the page cache ---- */

#define FILE_BYTES ((long)64 << 20)
#define FILE_BLOCK 4096
#define FILE_BLOCKS (FILE_BYTES / FILE_BLOCK)
#define FILE_READS 8192 /* per iteration, split among the readers */
#define FILE_DEPTH_MAX 64

static int file_fd = -1;
static _Alignas(FILE_BLOCK) char file_buf[FILE_DEPTH_MAX][FILE_BLOCK];
static _Atomic long file_errors;

/* The file is written once, synced (no writeback during the runs), read
 * whole to be sure it sits in the page cache, and unlinked at once: the
 * open fd keeps it, and nothing is left behind if the run is killed. */
static int file_setup(void)
{
    if (file_fd >= 0)
        return 0;
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_MAX], path[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/uco-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -errno;
    snprintf(path, sizeof(path), "%s/data", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int err = fd < 0 ? -errno : 0;
    unlink(path);
    rmdir(dir);
    if (err)
        return err;
    char *chunk = malloc(1 << 20);
    for (long off = 0; chunk && off < FILE_BYTES && !err; off += 1 << 20) {
        memset(chunk, (int)(off >> 20) | 1, 1 << 20); /* real data, no holes */
        if (pwrite(fd, chunk, 1 << 20, off) != 1 << 20)
            err = -EIO;
    }
    if (!chunk || err || fsync(fd) < 0)
        err = err ? err : -ENOMEM;
    for (long off = 0; !err && off < FILE_BYTES; off += 1 << 20)
        if (pread(fd, chunk, 1 << 20, off) != 1 << 20)
            err = -EIO;
    free(chunk);
    if (err) {
        close(fd);
        return err;
    }
    file_fd = fd;
    return 0;
}

/* xorshift64: a few cycles per offset, one state per reader. */
static inline uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static inline off_t file_offset(uint64_t *x)
{
    return (off_t)((rng_next(x) >> 20) % FILE_BLOCKS) * FILE_BLOCK;
}

struct file_reader {
    int id;
    long reads;
    uint64_t rng;
};

static intptr_t file_uco_reader(void *arg)
{
    struct file_reader *r = arg;
    for (long i = 0; i < r->reads; i++)
        if (uco_read(file_fd, file_buf[r->id], FILE_BLOCK, file_offset(&r->rng)) != FILE_BLOCK)
            atomic_fetch_add(&file_errors, 1);
    return 0;
}

/* Each iteration: `depth` coroutines share FILE_READS reads, so up to
 * `depth` reads are in flight; the PRNG state carries over iterations. */
static intptr_t file_uco_main(void *arg)
{
    bench_state *s = arg;
    int depth = (int)bench_range(s, 0);
    struct file_reader r[FILE_DEPTH_MAX];
    uco_task *t[FILE_DEPTH_MAX];
    for (int i = 0; i < depth; i++)
        r[i] = (struct file_reader){i, FILE_READS / depth, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)};
    while (bench_keep_running(s)) {
        for (int i = 0; i < depth; i++)
            t[i] = uco_spawn(file_uco_reader, &r[i]);
        uco_gather(t, (size_t)depth, NULL);
    }
    bench_set_items(s, bench_iterations(s) * depth * (FILE_READS / depth));
    return 0;
}

static void file_uco(bench_state *s)
{
    if (file_setup() < 0) {
        bench_skip(s, "could not create the data file");
        return;
    }
    atomic_store(&file_errors, 0);
    in_runtime(s, file_uco_main);
    if (atomic_load(&file_errors))
        bench_skip(s, "a read failed or was short");
}

/* The thread version: a pool of `depth` threads, each blocking in pread;
 * two barriers start and end each iteration. */
static pthread_barrier_t file_start, file_done;
static volatile bool file_stop;

static void *file_thread_reader(void *arg)
{
    struct file_reader *r = arg;
    for (;;) {
        pthread_barrier_wait(&file_start);
        if (file_stop)
            return NULL;
        for (long i = 0; i < r->reads; i++)
            if (pread(file_fd, file_buf[r->id], FILE_BLOCK, file_offset(&r->rng)) != FILE_BLOCK)
                atomic_fetch_add(&file_errors, 1);
        pthread_barrier_wait(&file_done);
    }
}

static void file_threads(bench_state *s)
{
    int depth = (int)bench_range(s, 0);
    struct file_reader r[FILE_DEPTH_MAX];
    pthread_t t[FILE_DEPTH_MAX];
    if (file_setup() < 0) {
        bench_skip(s, "could not create the data file");
        return;
    }
    atomic_store(&file_errors, 0);
    file_stop = false;
    pthread_barrier_init(&file_start, NULL, (unsigned)depth + 1);
    pthread_barrier_init(&file_done, NULL, (unsigned)depth + 1);
    for (int i = 0; i < depth; i++) {
        r[i] = (struct file_reader){i, FILE_READS / depth, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)};
        if (pthread_create(&t[i], NULL, file_thread_reader, &r[i]) != 0)
            abort(); /* the barriers count on every thread */
    }
    while (bench_keep_running(s)) {
        pthread_barrier_wait(&file_start);
        pthread_barrier_wait(&file_done);
    }
    file_stop = true;
    pthread_barrier_wait(&file_start);
    for (int i = 0; i < depth; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&file_start);
    pthread_barrier_destroy(&file_done);
    bench_set_items(s, bench_iterations(s) * depth * (FILE_READS / depth));
    if (atomic_load(&file_errors))
        bench_skip(s, "a read failed or was short");
}

/* ---- memory: resident bytes per idle task ---- */

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

#define IDLE_TASKS 100000
#define IDLE_THREADS 10000

static intptr_t idle_task(void *arg)
{
    (void)arg;
    return uco_park();
}

static intptr_t memory_main(void *arg)
{
    bench_state *s = arg;
    uco_task **t = malloc(IDLE_TASKS * sizeof(*t));
    while (bench_keep_running(s)) {
        long before = rss_bytes();
        for (int i = 0; i < IDLE_TASKS; i++)
            t[i] = uco_spawn(idle_task, NULL);
        uco_yield(); /* every task runs and parks */
        bench_counter(s, "bytes_per_task", (double)(rss_bytes() - before) / IDLE_TASKS);
        for (int i = 0; i < IDLE_TASKS; i++)
            uco_wake(t[i], 0);
        uco_gather(t, IDLE_TASKS, NULL);
    }
    free(t);
    bench_set_items(s, bench_iterations(s) * IDLE_TASKS);
    return 0;
}

static void memory_uco(bench_state *s) { in_runtime(s, memory_main); }

static pthread_mutex_t idle_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_c = PTHREAD_COND_INITIALIZER;
static bool idle_go;

static void *idle_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&idle_m);
    while (!idle_go)
        pthread_cond_wait(&idle_c, &idle_m);
    pthread_mutex_unlock(&idle_m);
    return NULL;
}

static void memory_threads(bench_state *s)
{
    pthread_t *t = malloc(IDLE_THREADS * sizeof(*t));
    while (bench_keep_running(s)) {
        idle_go = false;
        long before = rss_bytes();
        int n = 0;
        while (n < IDLE_THREADS && pthread_create(&t[n], NULL, idle_thread, NULL) == 0)
            n++;
        usleep(200000); /* let them all block */
        bench_counter(s, "bytes_per_task", (double)(rss_bytes() - before) / (n ? n : 1));
        bench_counter(s, "threads", n);
        pthread_mutex_lock(&idle_m);
        idle_go = true;
        pthread_cond_broadcast(&idle_c);
        pthread_mutex_unlock(&idle_m);
        for (int i = 0; i < n; i++)
            pthread_join(t[i], NULL);
    }
    free(t);
}

/* ---- memory capacity: how many idle tasks fit in 4 GiB ----
 * Each side runs in a forked child, so that hitting a limit (or the OOM
 * killer) cannot take the benchmark down; the child reports through a
 * shared page as it goes and leaves with _exit, letting the kernel tear
 * its tasks down.  "Resident" is the child's RSS growth since it started
 * creating, read every CAP_BATCH coroutines (CAP_BATCH / 16 threads) and
 * 16 times as often within 64 MiB of the 4 GiB mark. */

#define CAP_BYTES ((long)4 << 30)
#define CAP_MILLION 1000000L
/* A new task's first stack page fault costs 20-35 us on this VM (mmap and
 * the guard's madvise besides): a million took 35.6 s on 2026-12-04, and a
 * 20 s cap stopped that day's FULL run at 593,920, short of the million. */
#define CAP_SECONDS_UCO 60
#define CAP_SECONDS_THREADS 10
#define CAP_BATCH 4096

enum { CAP_RUNNING = -1, CAP_TIME = -2 }; /* else 0 = 4 GiB reached, or an errno */

struct cap_result {
    long count;          /* the largest count seen with RSS growth under 4 GiB */
    long rss_at_count;   /* RSS growth at that count */
    long created;        /* tasks or threads alive when it stopped */
    long stop;           /* why it stopped: 0, an errno, or CAP_TIME */
    long rss_1m, maps_1m; /* uco: RSS growth and mappings with 1,000,000 parked */
    long maps_at_stop;   /* lines of /proc/self/maps */
    long map_probe_ok;   /* threads: could one more mapping be made at the stop? */
    long sched_entities; /* threads: every thread on the machine (/proc/loadavg) */
    long kernel_stack;   /* threads: growth of KernelStack in /proc/meminfo, bytes
                            (machine-wide: memory a thread costs outside its RSS) */
    double seconds;
};

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = getc_unlocked(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* A number from a /proc file: the first integer after `key` (NULL: at the start). */
static long proc_long(const char *path, const char *key)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = key ? strstr(buf, key) : buf;
    if (!p)
        return -1;
    p += key ? strlen(key) : 0;
    while (*p && (*p < '0' || *p > '9'))
        p++;
    return *p ? atol(p) : -1;
}

/* Total threads on the machine: the 4th field of /proc/loadavg, "running/total". */
static long sched_entities(void)
{
    char buf[128];
    FILE *f = fopen("/proc/loadavg", "r");
    long run = 0, total = -1;
    if (f) {
        if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%*s %*s %*s %ld/%ld", &run, &total) != 2)
            total = -1;
        fclose(f);
    }
    return total;
}

static double elapsed_s(uint64_t t0) { return (double)(uco_now() - t0) / 1e9; }

/* Checks memory after each batch; returns true when the child should stop. */
static bool cap_check(struct cap_result *r, long base, long n, uint64_t t0, double limit)
{
    long grown = rss_bytes() - base;
    r->created = n;
    r->seconds = elapsed_s(t0);
    if (grown < CAP_BYTES) {
        r->count = n;
        r->rss_at_count = grown;
    } else if (r->stop == CAP_RUNNING) {
        r->stop = 0;
    }
    if (r->stop == CAP_RUNNING && r->seconds > limit)
        r->stop = CAP_TIME;
    return r->stop != CAP_RUNNING;
}

static long cap_batch(long base)
{
    return CAP_BYTES - (rss_bytes() - base) > (64L << 20) ? CAP_BATCH : CAP_BATCH / 16;
}

/* Parks coroutines (default stacks) until their RSS reaches 4 GiB or a
 * spawn fails, going on to 1,000,000 if 4 GiB came first. */
static intptr_t cap_uco_main(void *arg)
{
    struct cap_result *r = arg;
    uint64_t t0 = uco_now();
    long base = rss_bytes(), n = 0;
    int err = 0;
    for (;;) {
        long batch = cap_batch(base);
        if (n < CAP_MILLION && batch > CAP_MILLION - n)
            batch = CAP_MILLION - n;
        for (long i = 0; i < batch && !err; i++) {
            uco_task *t;
            err = uco_spawn_ex(&t, idle_task, NULL, 0);
            n += err == 0;
        }
        uco_yield(); /* every new task runs and parks */
        if (err && r->stop == CAP_RUNNING)
            r->stop = -err;
        bool capped = cap_check(r, base, n, t0, CAP_SECONDS_UCO);
        if (n == CAP_MILLION && !r->rss_1m) {
            r->rss_1m = rss_bytes() - base;
            r->maps_1m = count_lines("/proc/self/maps");
        }
        if (err || r->stop == CAP_TIME || (capped && n >= CAP_MILLION) ||
            r->seconds > 2 * CAP_SECONDS_UCO) /* 1,000,000 not reached in time */
            break;
    }
    r->maps_at_stop = count_lines("/proc/self/maps");
    _exit(0); /* the kernel frees a million tasks faster than joining them */
}

static void *blocked_thread(void *arg)
{
    for (;;)
        pause(); /* until the child exits */
    return arg;
}

/* Blocked threads with default stacks until their RSS reaches 4 GiB or
 * pthread_create fails. */
static void cap_threads_child(struct cap_result *r)
{
    uint64_t t0 = uco_now();
    long base = rss_bytes(), n = 0, kstack0 = proc_long("/proc/meminfo", "KernelStack:");
    int err = 0;
    pthread_t t;
    do {
        for (long i = 0, batch = cap_batch(base) / 16; i < batch && !err; i++) {
            err = pthread_create(&t, NULL, blocked_thread, NULL);
            n += err == 0;
        }
        if (err && r->stop == CAP_RUNNING)
            r->stop = err;
    } while (!cap_check(r, base, n, t0, CAP_SECONDS_THREADS));
    /* Which limit: a map count at vm.max_map_count fails the next mmap;
     * a pid or thread limit leaves mmap working. */
    void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r->map_probe_ok = p != MAP_FAILED;
    r->maps_at_stop = count_lines("/proc/self/maps");
    r->sched_entities = sched_entities();
    r->kernel_stack = (proc_long("/proc/meminfo", "KernelStack:") - kstack0) * 1024;
    _exit(0);
}

static void cap_run(bench_state *s, bool uco)
{
    struct cap_result *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        bench_skip(s, "mmap failed");
        return;
    }
    while (bench_keep_running(s)) {
        *r = (struct cap_result){.stop = CAP_RUNNING};
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            if (uco)
                uco_run(cap_uco_main, r, NULL);
            else
                cap_threads_child(r);
            _exit(1);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0) {
            bench_skip(s, "fork failed");
            break;
        }
        if (WIFSIGNALED(status))
            bench_counter(s, "killed_by_signal", WTERMSIG(status));
        else if (WEXITSTATUS(status) != 0)
            bench_skip(s, "the child could not start a runtime");
    }
    bench_counter(s, "count", (double)r->count);
    bench_counter(s, "rss_at_count", (double)r->rss_at_count);
    bench_counter(s, "bytes_per_task", r->count ? (double)r->rss_at_count / (double)r->count : 0);
    bench_counter(s, "created", (double)r->created);
    bench_counter(s, "stop", (double)r->stop);
    bench_counter(s, "maps_at_stop", (double)r->maps_at_stop);
    bench_counter(s, "child_seconds", r->seconds);
    if (uco) {
        bench_counter(s, "rss_1m", (double)r->rss_1m);
        bench_counter(s, "maps_1m", (double)r->maps_1m);
        bench_counter(s, "mem_total", (double)proc_long("/proc/meminfo", "MemTotal:") * 1024);
        bench_counter(s, "time_cap_s", CAP_SECONDS_UCO);
    } else {
        struct rlimit nproc;
        getrlimit(RLIMIT_NPROC, &nproc);
        pthread_attr_t a;
        size_t stack = 0;
        if (pthread_getattr_default_np(&a) == 0) {
            pthread_attr_getstacksize(&a, &stack);
            pthread_attr_destroy(&a);
        }
        bench_counter(s, "time_cap_s", CAP_SECONDS_THREADS);
        bench_counter(s, "map_probe_ok", (double)r->map_probe_ok);
        bench_counter(s, "sched_entities", (double)r->sched_entities);
        bench_counter(s, "kernel_stack_per_thread",
                      r->created ? (double)r->kernel_stack / (double)r->created : 0);
        bench_counter(s, "max_map_count", (double)proc_long("/proc/sys/vm/max_map_count", NULL));
        bench_counter(s, "threads_max", (double)proc_long("/proc/sys/kernel/threads-max", NULL));
        bench_counter(s, "pid_max", (double)proc_long("/proc/sys/kernel/pid_max", NULL));
        bench_counter(s, "root", geteuid() == 0);
        bench_counter(s, "rlimit_nproc", nproc.rlim_cur == RLIM_INFINITY ? -1 : (double)nproc.rlim_cur);
        bench_counter(s, "stack_size", (double)stack);
    }
    munmap(r, sizeof(*r));
}

static void memory_uco_capacity(bench_state *s) { cap_run(s, true); }
static void memory_threads_capacity(bench_state *s) { cap_run(s, false); }

/* ---- CPU-bound work: where threads win ---- */

#define UNITS 8

static intptr_t cpu_unit(void *arg)
{
    uint64_t x = (uint64_t)(intptr_t)arg + 1;
    for (int i = 0; i < 20000000; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return (intptr_t)(x >> 33);
}

static volatile intptr_t cpu_sink; /* keeps the work from being optimised away */

static void *cpu_thread(void *arg)
{
    intptr_t acc = 0;
    for (int i = 0; i < UNITS / 2; i++)
        acc += cpu_unit((void *)((intptr_t)arg * UNITS + i));
    cpu_sink = acc;
    return NULL;
}

static void cpu_threads(bench_state *s)
{
    while (bench_keep_running(s)) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, cpu_thread, (void *)(intptr_t)i);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
    }
    bench_set_items(s, bench_iterations(s) * UNITS);
}

static intptr_t cpu_coroutines_main(void *arg)
{
    bench_state *s = arg;
    while (bench_keep_running(s)) {
        uco_task *t[UNITS];
        for (int i = 0; i < UNITS; i++)
            t[i] = uco_spawn(cpu_unit, (void *)(intptr_t)i);
        uco_gather(t, UNITS, NULL);
    }
    bench_set_items(s, bench_iterations(s) * UNITS);
    return 0;
}

static void cpu_coroutines(bench_state *s) { in_runtime(s, cpu_coroutines_main); }

static intptr_t offload_unit(void *arg)
{
    intptr_t r;
    return uco_offload(cpu_unit, arg, &r);
}

static intptr_t cpu_offload_main(void *arg)
{
    bench_state *s = arg;
    while (bench_keep_running(s)) {
        uco_task *t[UNITS];
        for (int i = 0; i < UNITS; i++)
            t[i] = uco_spawn(offload_unit, (void *)(intptr_t)i);
        uco_gather(t, UNITS, NULL);
    }
    bench_set_items(s, bench_iterations(s) * UNITS);
    return 0;
}

static void cpu_uco_offload(bench_state *s)
{
    uco_config c = {.offload_threads = 2};
    if (uco_run(cpu_offload_main, s, &c) < 0)
        bench_skip(s, "uco_run failed");
}

int main(int argc, char **argv)
{
    bench_unit_ns(bench_register("switch/uco_yield", switch_uco_yield));
    bench_unit_ns(bench_register("switch/uco_park_wake", switch_uco_park_wake));
    bench_unit_ns(bench_register("switch/asm_floor", switch_asm_floor));
    bench_boost_register();
    bench_real_time(bench_unit_ns(bench_register("switch/thread_futex_same_core",
                                                 switch_thread_futex_same_core)));
    bench_real_time(bench_unit_ns(bench_register("switch/thread_futex_cross_core",
                                                 switch_thread_futex_cross_core)));
    bench_unit_ns(bench_register("spawn/uco", spawn_uco));
    bench_real_time(bench_unit_ns(bench_register("spawn/pthread", spawn_pthread)));
    bench_unit_ns(bench_register("chan/uco", chan_uco));
    bench_real_time(bench_unit_ns(bench_register("chan/thread_condvar", chan_thread_condvar)));
    bench_real_time(bench_unit_ns(bench_register("pipe/uco", pipe_uco)));
    bench_real_time(bench_unit_ns(bench_register("pipe/threads", pipe_threads)));
    bench_real_time(bench_unit_us(bench_arg(bench_register("await/uco_nop", await_uco), 1)));
    bench_real_time(bench_unit_us(bench_arg(bench_register("await/uco_nop", await_uco), 64)));
    bench_real_time(bench_unit_us(bench_arg(bench_register("await/raw_liburing_nop",
                                                           await_raw_liburing), 1)));
    bench_real_time(bench_unit_us(bench_arg(bench_register("await/raw_liburing_nop",
                                                           await_raw_liburing), 64)));
    bench_real_time(bench_unit_us(bench_arg(bench_register("await/paired_nop", await_paired), 1)));
    bench_real_time(bench_unit_us(bench_arg(bench_register("await/paired_nop", await_paired), 64)));
    bench_real_time(bench_fixed_iterations(bench_register("timers/uco_10k_sleeps", timers_uco), 3));
    bench_real_time(bench_fixed_iterations(bench_register("memory/uco_100k_idle_tasks", memory_uco), 1));
    bench_real_time(bench_fixed_iterations(bench_register("memory/threads_10k_idle", memory_threads), 1));
    /* Once each, whatever --benchmark_repetitions says: a million tasks
     * take seconds to create, and the counts barely move between runs. */
    bench_repetitions(bench_real_time(bench_fixed_iterations(
        bench_register("memory/uco_capacity_4gib", memory_uco_capacity), 1)), 1);
    bench_repetitions(bench_real_time(bench_fixed_iterations(
        bench_register("memory/threads_capacity_4gib", memory_threads_capacity), 1)), 1);
    for (int depth = 1; depth <= FILE_DEPTH_MAX; depth *= 2) {
        bench_real_time(bench_unit_ns(bench_arg(bench_register("file/uco_read", file_uco), depth)));
        bench_real_time(bench_unit_ns(bench_arg(bench_register("file/threads_pread", file_threads), depth)));
    }
    bench_real_time(bench_unit_ns(bench_register("cpu/threads_2_cores", cpu_threads)));
    bench_real_time(bench_unit_ns(bench_register("cpu/coroutines_1_core", cpu_coroutines)));
    bench_real_time(bench_unit_ns(bench_register("cpu/uco_offload_2_threads", cpu_uco_offload)));
    int ret = bench_main(argc, argv);
    if (file_fd >= 0)
        close(file_fd);
    return ret;
}
