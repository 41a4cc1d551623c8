#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sync_counter.h"

static atomic_long calls;

long trellis_test_fdatasync_calls(void)
{
    return atomic_load(&calls);
}

int fdatasync(int fd)
{
    atomic_fetch_add(&calls, 1);
    return (int)syscall(SYS_fdatasync, fd);
}
