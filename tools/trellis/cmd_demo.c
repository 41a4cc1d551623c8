/*
 * `trellis demo [--devices N] [--duration S] [--state DIR]`: the seed scenario end to end. The
 * orchestration (starting and stopping a verifier, a registrar, Mosquitto, the ingest and one
 * agent per device) is a shell script, scripts/demo, which the build copies next to this binary
 * as trellis-demo; this command runs it with the build tree this binary belongs to.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

#define DEMO_MAX_ARGS 64

int cmd_demo(int argc, char **argv)
{
    char exe[PATH_MAX];
    char script[PATH_MAX];
    char build[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return tr__cli_fail("demo", "cannot find the trellis binary: %s", strerror(errno));
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return tr__cli_fail("demo", "cannot find the trellis binary's directory");
    *slash = '\0';
    /* The binary lives in BUILD/tools/trellis/. */
    if (snprintf(script, sizeof(script), "%s/trellis-demo", exe) >= (int)sizeof(script) ||
        snprintf(build, sizeof(build), "%s/../..", exe) >= (int)sizeof(build))
        return tr__cli_fail("demo", "build path too long");
    if (access(script, X_OK) != 0)
        return tr__cli_fail("demo", "%s is missing: rebuild (it is copied from scripts/demo)",
                            script);
    if (argc > DEMO_MAX_ARGS - 4)
        return tr__cli_usage("demo", "too many arguments");

    static char build_flag[] = "--build";
    char *args[DEMO_MAX_ARGS];
    int k = 0;
    args[k++] = script;
    args[k++] = build_flag;
    args[k++] = build;
    for (int i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execv(script, args);
    return tr__cli_fail("demo", "cannot run %s: %s", script, strerror(errno));
}
