/* The seed's first coroutine:
 *     async def greet(): print("Hello"); await asyncio.sleep(1); print("World")
 *     asyncio.run(greet())
 */
#include <stdio.h>
#include <string.h>
#include <uco.h>

static intptr_t greet(void *arg)
{
    (void)arg;
    printf("Hello\n");
    fflush(stdout);
    uco_sleep(UCO_SEC(1));
    printf("World\n");
    return 0;
}

int main(void)
{
    intptr_t ret = uco_run(greet, NULL, NULL);
    if (ret < 0) {
        fprintf(stderr, "hello: uco_run: %s\n", strerror((int)-ret));
        return 1;
    }
    return 0;
}
