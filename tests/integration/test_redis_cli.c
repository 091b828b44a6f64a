/*
 * test_redis_cli.c - the real redis-cli binary as a client of spoold.
 *
 * redis-cli is run with posix_spawn (no shell, so payloads need no
 * quoting) and its stdout+stderr compared as text. With stdout not a
 * terminal redis-cli prints raw replies ("1", "q\n{...}") unless --no-raw
 * is given, in which case it prints "(integer) 1" style text.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define REDIS_CLI "/usr/bin/redis-cli"
#define MAX_CLI_ARGS 16

static spoold *srv;

static void start_default(void)
{
    if (access(REDIS_CLI, X_OK) != 0)
        cr_skip_test("%s is not installed", REDIS_CLI);
    srv = spoold_start(NULL);
}

static void stop_default(void)
{
    if (srv)
        spoold_stop(srv);
    srv = NULL;
}

TestSuite(redis_cli, .init = start_default, .fini = stop_default, .timeout = 60);

/* Runs redis-cli -p PORT <args...> (NULL-terminated); returns its output
 * (caller frees). *status is its exit status (-1: killed after 15 s). */
static char *redis_cli_status(int *status, const char *arg, va_list ap)
{
    char port[16];
    snprintf(port, sizeof port, "%d", srv->port);
    char *argv[MAX_CLI_ARGS];
    int n = 0;
    argv[n++] = REDIS_CLI;
    argv[n++] = "-h";
    argv[n++] = "127.0.0.1";
    argv[n++] = "-p";
    argv[n++] = port;
    for (; arg && n < MAX_CLI_ARGS - 1; arg = va_arg(ap, const char *))
        argv[n++] = (char *)arg;
    argv[n] = NULL;
    char *out = NULL;
    *status = run_capture(argv, &out, 15000);
    cr_assert(*status >= 0, "redis-cli did not finish within 15 s; output:\n%s", out);
    return out;
}

/* The same, asserting it exited 0. */
static char *redis_cli(const char *arg, ...)
{
    int status;
    va_list ap;
    va_start(ap, arg);
    char *out = redis_cli_status(&status, arg, ap);
    va_end(ap);
    cr_assert(status == 0, "redis-cli exited with %d; output:\n%s", status, out);
    return out;
}

/* The same, for commands that answer with an error (exit status ignored). */
static char *redis_cli_err(const char *arg, ...)
{
    int status;
    va_list ap;
    va_start(ap, arg);
    char *out = redis_cli_status(&status, arg, ap);
    va_end(ap);
    return out;
}

static void expect_output(char *out, const char *want)
{
    cr_assert(strcmp(out, want) == 0, "redis-cli output: expected \"%s\", got \"%s\"", want, out);
    free(out);
}

Test(redis_cli, lpush_then_brpop_round_trip)
{
    expect_output(redis_cli("LPUSH", "q", "{\"a\":1}", NULL), "1\n");
    expect_output(redis_cli("LPUSH", "q", "{\"a\":2}", NULL), "2\n");
    expect_output(redis_cli("BRPOP", "q", "1", NULL), "q\n{\"a\":1}\n");
    expect_output(redis_cli("LLEN", "q", NULL), "1\n");
    expect_output(redis_cli("RPOP", "q", NULL), "{\"a\":2}\n");
}

Test(redis_cli, formatted_replies)
{
    expect_output(redis_cli("--no-raw", "PING", NULL), "PONG\n");
    expect_output(redis_cli("--no-raw", "RPUSH", "jobs", "{\"b\":2}", NULL), "(integer) 1\n");
    expect_output(redis_cli("--no-raw", "LRANGE", "jobs", "0", "-1", NULL), "1) \"{\\\"b\\\":2}\"\n");
    expect_output(redis_cli("--no-raw", "BRPOP", "empty", "0.1", NULL), "(nil)\n");
    expect_output(redis_cli("--no-raw", "TYPE", "jobs", NULL), "list\n");
}

Test(redis_cli, errors_are_printed)
{
    char *out = redis_cli_err("--no-raw", "LPUSH", "q", "{\"a\":}", NULL);
    cr_assert(strncmp(out, "(error) BADJSON payload is not valid JSON at byte 5", 51) == 0,
              "redis-cli output: %s", out);
    free(out);
    expect_output(redis_cli("LLEN", "q", NULL), "0\n");
}

Test(redis_cli, resp3_hello)
{
    char *out = redis_cli("-3", "HELLO", "3", NULL);
    /* redis-cli prints a RESP3 map in raw mode as "key value" lines. */
    cr_assert(strstr(out, "\nproto 3\n"), "redis-cli -3 HELLO 3 output lacks proto 3:\n%s", out);
    free(out);
    expect_output(redis_cli("-3", "--no-raw", "RPOP", "missing", NULL), "(nil)\n");
}

static void start_with_password(void)
{
    if (access(REDIS_CLI, X_OK) != 0)
        cr_skip_test("%s is not installed", REDIS_CLI);
    srv = spoold_start("--requirepass", "secret", NULL);
}

TestSuite(redis_cli_auth, .init = start_with_password, .fini = stop_default, .timeout = 60);

Test(redis_cli_auth, password_option)
{
    expect_output(redis_cli("-a", "secret", "--no-auth-warning", "PING", NULL), "PONG\n");
    expect_output(redis_cli("-a", "secret", "--no-auth-warning", "RPUSH", "q", "[1]", NULL), "1\n");
    char *out = redis_cli_err("PING", NULL);
    cr_assert(strstr(out, "NOAUTH"), "redis-cli without password: %s", out);
    free(out);
}
