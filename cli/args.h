/*
 * args.h - command-line parsing for `spool`: options declared as data
 * (name, whether it takes a value, help), parsed into a small struct, and
 * the value parsers (durations, times, integers) the subcommands share.
 *
 * Options are GNU-style long options: "--name value" or "--name=value",
 * anywhere among the positional arguments; "--" ends options; "-" alone
 * is a positional argument (stdin). The global options (--url, --json,
 * --no-color, --help) are accepted by every subcommand.
 */
#ifndef SPOOL_CLI_ARGS_H
#define SPOOL_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#define ARGS_MAX_POS 256
#define ARGS_MAX_OPTS 24

typedef struct arg_opt {
    const char *name;  /* without the dashes */
    const char *value; /* the value's name in help ("N", "DUR"), NULL: a flag */
    const char *help;
} arg_opt;

typedef struct args {
    int npos;
    const char *pos[ARGS_MAX_POS];
    int nopts;
    const arg_opt *opt[ARGS_MAX_OPTS];
    const char *val[ARGS_MAX_OPTS]; /* "" for a flag that was given */
} args;

/* The options every subcommand takes (NULL-name terminated). */
extern const arg_opt args_global[];

/* Parses argv[0..argc) against opts (NULL-name terminated, may be NULL)
 * plus args_global. 0, or -1 after printing the problem on stderr. */
int args_parse(args *a, const arg_opt *opts, int argc, char **argv);
/* The value of option name, "" for a given flag, NULL when absent. */
const char *args_get(const args *a, const char *name);
bool args_has(const args *a, const char *name);

/* "1500ms", "5s", "3m12s", "1h", "2d", or a bare number of seconds
 * (decimals allowed): 0 with *ms set, -1 when malformed. */
int args_duration_ms(const char *s, int64_t *ms);
/* An absolute time: Unix seconds ("1764201108"), "@<unix seconds>",
 * "YYYY-MM-DD[ T]HH:MM[:SS]" (local time, or UTC with a "Z"), or
 * relative "+5m": 0 with *ms (Unix ms) set, -1 when malformed. */
int args_time_ms(const char *s, int64_t *ms);
/* A decimal integer within [lo, hi]: 0, or -1. */
int args_int(const char *s, long long lo, long long hi, long long *out);

#endif
