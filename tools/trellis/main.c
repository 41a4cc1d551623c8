/*
 * trellis: the operator CLI. Dispatches `trellis <command> ...` to cmd_<command> through a
 * {name, fn, help} table built from commands.h.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "trellis/trellis.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
#define TRELLIS_COMMAND_ROW(name, help) {#name, cmd_##name, help},
    TRELLIS_COMMANDS(TRELLIS_COMMAND_ROW)
#undef TRELLIS_COMMAND_ROW
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: trellis <command> [options]\n"
                 "       trellis --help | --version\n\n"
                 "Zero-touch device enrollment anchored in a hardware Root of Trust.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n`trellis <command> --help` describes a command. Exit status: 0 success,\n"
                 "1 failure (one line on stderr says why), 2 wrong command line.\n");
}

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TR__EXIT_USAGE;
    }
    const char *arg = argv[1];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        usage(stdout);
        return TR__EXIT_OK;
    }
    if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
        printf("trellis %s\n", TRELLIS_VERSION);
        return TR__EXIT_OK;
    }
    if (strcmp(arg, "help") == 0) {
        if (argc == 2) {
            usage(stdout);
            return TR__EXIT_OK;
        }
        const struct command *cmd = find(argv[2]);
        if (cmd == NULL) {
            fprintf(stderr, "trellis: unknown command '%s' (see trellis --help)\n", argv[2]);
            return TR__EXIT_USAGE;
        }
        static char help_flag[] = "--help";
        char *help_argv[] = {argv[2], help_flag, NULL};
        return cmd->fn(2, help_argv);
    }
    if (arg[0] == '-') {
        fprintf(stderr, "trellis: unknown option '%s' (see trellis --help)\n", arg);
        return TR__EXIT_USAGE;
    }
    const struct command *cmd = find(arg);
    if (cmd == NULL) {
        fprintf(stderr, "trellis: unknown command '%s' (see trellis --help)\n", arg);
        return TR__EXIT_USAGE;
    }
    return cmd->fn(argc - 1, argv + 1);
}
