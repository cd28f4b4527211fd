/* The seed's concurrent tasks: two tasks of 2 s and 1 s run side by side,
 * so the whole run takes about 2 s, not 3.
 *     await asyncio.gather(task("Task 1", 2), task("Task 2", 1))
 */
#include <stdio.h>
#include <string.h>
#include <uco.h>

struct job {
    const char *name;
    unsigned seconds;
};

static intptr_t task(void *arg)
{
    const struct job *j = arg;
    printf("%s started\n", j->name);
    fflush(stdout);
    uco_sleep(UCO_SEC(j->seconds));
    printf("%s completed\n", j->name);
    fflush(stdout);
    return 0;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    static struct job jobs[] = {{"Task 1", 2}, {"Task 2", 1}};
    uco_task *tasks[2];
    for (int i = 0; i < 2; i++) {
        tasks[i] = uco_spawn(task, &jobs[i]);
        if (!tasks[i])
            return -1;
    }
    return uco_gather(tasks, 2, NULL);
}

int main(void)
{
    intptr_t ret = uco_run(main_task, NULL, NULL);
    if (ret < 0) {
        fprintf(stderr, "gather: %s\n", ret == -1 ? "spawn failed" : strerror((int)-ret));
        return 1;
    }
    return 0;
}
