/*
 * harness.c - spoold process control and a blocking RESP client for the
 * integration tests. See harness.h for the contract.
 *
 * Servers that are still registered when the test process exits (a failed
 * assertion skips spoold_stop) are killed and their directories removed by
 * an atexit hook; PR_SET_PDEATHSIG covers a test process that dies hard.
 *
 * The client keeps the bytes it has received but not yet parsed in `in`.
 * Sends poll for both directions and drain incoming replies into `in`
 * while the socket is not writable, so a large pipelined write cannot
 * deadlock against a server that stops reading until its replies are read.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef SPOOLD_PATH
#define SPOOLD_PATH "spoold"
#endif

#define LOG_TAIL_MAX 4000
#define MAX_SERVERS 8
#define MAX_ARGS 64

/* ================================================================ time */

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void http_port_path(char path[64])
{
    strcpy(path, "/tmp/spool-http-port-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    close(fd);
    unlink(path);
}

int http_port_from_file(const char *path)
{
    int port = 0;
    long long deadline = now_ms() + 5000;
    while (port <= 0 && now_ms() < deadline) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port <= 0)
            sleep_ms(20);
    }
    unlink(path);
    cr_assert_gt(port, 0, "no HTTP port in %s", path);
    return port;
}

/* ================================================================ files */

static char *read_file_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    resp_buf b;
    resp_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        resp_buf_append(&b, chunk, n);
    fclose(f);
    resp_buf_append(&b, "", 1);
    return resp_buf_take(&b, &n);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *dir)
{
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ================================================================ server */

static spoold *registry[MAX_SERVERS];
static bool cleanup_installed;

static void cleanup_at_exit(void)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        spoold *s = registry[i];
        if (!s)
            continue;
        if (s->running) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        rm_tree(s->dir);
        registry[i] = NULL;
    }
}

static void registry_add(spoold *s)
{
    if (!cleanup_installed) {
        atexit(cleanup_at_exit);
        cleanup_installed = true;
    }
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (!registry[i]) {
            registry[i] = s;
            return;
        }
    }
    cr_assert_fail("harness: more than %d servers in one test", MAX_SERVERS);
}

static void registry_remove(spoold *s)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (registry[i] == s)
            registry[i] = NULL;
}

const char *spoold_path(void)
{
    const char *p = getenv("SPOOLD");
    return p && p[0] ? p : SPOOLD_PATH;
}

bool spoold_sanitized(void)
{
    static int known = -1;
    if (known >= 0)
        return known;
    known = 0;
    int fd = open(spoold_path(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return false;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            known = memmem(m, (size_t)st.st_size, "__asan_init", 11) ||
                    memmem(m, (size_t)st.st_size, "__tsan_init", 11);
            munmap(m, (size_t)st.st_size);
        }
    }
    close(fd);
    return known;
}

char *spoold_log(const spoold *s)
{
    char path[320];
    resp_buf b;
    resp_buf_init(&b);
    const char *names[] = { "spoold.log", "stderr.log" };
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, names[i]);
        char *text = read_file_all(path);
        if (text && text[0])
            resp_buf_printf(&b, "--- %s ---\n%s\n", names[i], text);
        free(text);
    }
    resp_buf_append(&b, "", 1);
    size_t n;
    char *all = resp_buf_take(&b, &n);
    if (n > LOG_TAIL_MAX) {
        memmove(all, all + n - LOG_TAIL_MAX, LOG_TAIL_MAX);
        all[LOG_TAIL_MAX - 1] = 0;
    }
    return all;
}

static void child_exec(const spoold *s, char *const argv[], pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    char path[320];
    snprintf(path, sizeof path, "%s/stderr.log", s->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null_fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    if (null_fd >= 0)
        dup2(null_fd, 0);
    execv(argv[0], argv);
    dprintf(2, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int build_argv(const spoold *s, char **argv, char bufs[][320], const char *arg, va_list ap)
{
    int n = 0;
    argv[n++] = (char *)spoold_path();
    const char *fixed[] = { "--port", "0", "--bind", "127.0.0.1", "--loglevel", "warn", "--http-port", "0" };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = (char *)fixed[i];
    snprintf(bufs[0], 320, "%s/data", s->dir);
    snprintf(bufs[1], 320, "%s/port", s->dir);
    argv[n++] = "--data-dir";
    argv[n++] = bufs[0];
    argv[n++] = "--port-file";
    argv[n++] = bufs[1];
    argv[n++] = "--logfile";
    argv[n++] = (char *)s->log_path;
    for (; arg && n < MAX_ARGS - 1; arg = va_arg(ap, const char *))
        argv[n++] = (char *)arg;
    argv[n] = NULL;
    return n;
}

/* Reads the port file: 1 = port known, 0 = not there yet. */
static int read_port_file(spoold *s)
{
    char path[320];
    snprintf(path, sizeof path, "%s/port", s->dir);
    char *text = read_file_all(path);
    if (!text)
        return 0;
    char *end = NULL;
    long port = strtol(text, &end, 10);
    bool ok = end != text && *end == '\n' && port > 0 && port < 65536;
    free(text);
    cr_assert(ok, "harness: port file %s is not a port followed by a newline", path);
    s->port = (int)port;
    return 1;
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Fails the test after removing the server's directory: an assertion
 * in a fixture ends the test process without running atexit hooks. */
static void fail_early_exit(spoold *s, int code)
{
    char *log = spoold_log(s);
    rm_tree(s->dir);
    cr_assert_fail("spoold (%s) exited before listening (%s %d); log:\n%s", spoold_path(),
                   code >= 0 ? "exit status" : "signal", code >= 0 ? code : -code, log);
    free(log);
}

/* Waits for the port file: 0 = listening, otherwise the early exit code
 * (see exit_code; 0 is reported as 256). Fails the test on timeout. */
static int wait_listening(spoold *s)
{
    long long deadline = now_ms() + HARNESS_START_TIMEOUT_MS;
    for (;;) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->running = false;
            int code = exit_code(status);
            return code == 0 ? 256 : code;
        }
        if (read_port_file(s))
            return 0;
        if (now_ms() > deadline)
            break;
        sleep_ms(5);
    }
    char *log = spoold_log(s);
    spoold_kill9(s);
    rm_tree(s->dir);
    cr_assert_fail("spoold did not write its port file within %d ms; log:\n%s",
                   HARNESS_START_TIMEOUT_MS, log);
    free(log);
    return -1;
}

/* Forks/execs spoold in s->dir; returns as wait_listening. */
static int launch(spoold *s, const char *arg, va_list ap)
{
    char *argv[MAX_ARGS];
    char bufs[2][320];
    char port_file[320];
    snprintf(port_file, sizeof port_file, "%s/port", s->dir);
    unlink(port_file);
    build_argv(s, argv, bufs, arg, ap);
    pid_t parent = getpid();
    s->pid = fork();
    cr_assert(s->pid >= 0, "harness: fork: %s", strerror(errno));
    if (s->pid == 0)
        child_exec(s, argv, parent);
    s->running = true;
    s->port = 0;
    return wait_listening(s);
}

spoold *spoold_start(const char *arg, ...)
{
    signal(SIGPIPE, SIG_IGN);
    spoold *s = calloc(1, sizeof *s);
    cr_assert(s);
    strcpy(s->dir, "/tmp/spool-it-XXXXXX");
    cr_assert(mkdtemp(s->dir), "harness: mkdtemp: %s", strerror(errno));
    snprintf(s->log_path, sizeof s->log_path, "%s/spoold.log", s->dir);
    registry_add(s);
    char data[320];
    snprintf(data, sizeof data, "%s/data", s->dir);
    cr_assert(mkdir(data, 0700) == 0, "harness: mkdir %s: %s", data, strerror(errno));
    va_list ap;
    va_start(ap, arg);
    int code = launch(s, arg, ap);
    va_end(ap);
    if (code != 0)
        fail_early_exit(s, code);
    return s;
}

void spoold_restart(spoold *s, const char *arg, ...)
{
    cr_assert(!s->running, "harness: restart of a running spoold");
    va_list ap;
    va_start(ap, arg);
    int code = launch(s, arg, ap);
    va_end(ap);
    if (code != 0)
        fail_early_exit(s, code);
}

int spoold_restart_may_fail(spoold *s, const char *arg, ...)
{
    cr_assert(!s->running, "harness: restart of a running spoold");
    va_list ap;
    va_start(ap, arg);
    int code = launch(s, arg, ap);
    va_end(ap);
    return code;
}

/* Waits for the process to exit: true with *status set, false on timeout. */
static bool reap(spoold *s, int timeout_ms, int *status)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(s->pid, status, WNOHANG);
        if (r == s->pid || (r < 0 && errno == ECHILD)) {
            s->running = false;
            return true;
        }
        if (now_ms() > deadline)
            return false;
        sleep_ms(5);
    }
}

/* SIGTERM and wait: 0 = clean exit, 1 = bad exit status, 2 = had to kill. */
static int terminate(spoold *s, int *code)
{
    int status = 0;
    *code = 0;
    if (!s->running)
        return 0;
    kill(s->pid, SIGTERM);
    if (!reap(s, HARNESS_STOP_TIMEOUT_MS, &status)) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        s->running = false;
        return 2;
    }
    *code = exit_code(status);
    return *code == 0 ? 0 : 1;
}

static void check_terminated(int how, int code, char *log)
{
    if (how == 2)
        cr_assert_fail("spoold did not exit within %d ms of SIGTERM; log:\n%s",
                       HARNESS_STOP_TIMEOUT_MS, log);
    if (how == 1)
        cr_assert_fail("spoold did not exit cleanly on SIGTERM (%s %d); log:\n%s",
                       code < 0 ? "signal" : "exit status", code < 0 ? -code : code, log);
    free(log);
}

void spoold_term(spoold *s)
{
    int code;
    int how = terminate(s, &code);
    check_terminated(how, code, spoold_log(s));
}

void spoold_stop(spoold *s)
{
    int code;
    int how = terminate(s, &code);
    char *log = spoold_log(s);
    spoold_destroy(s);
    check_terminated(how, code, log);
}

void spoold_kill9(spoold *s)
{
    if (!s->running)
        return;
    kill(s->pid, SIGKILL);
    int status;
    waitpid(s->pid, &status, 0);
    s->running = false;
}

void spoold_destroy(spoold *s)
{
    if (!s)
        return;
    spoold_kill9(s);
    rm_tree(s->dir);
    registry_remove(s);
    free(s);
}

/* ================================================================ client */

struct cli {
    int fd;
    resp_reader *reader;
    char *in;      /* received, not yet parsed: in[off..len) */
    size_t off, len, cap;
    bool broken;
};

int cli_fd(const cli *c)
{
    return c->fd;
}

size_t cli_pending(const cli *c)
{
    return c->len - c->off;
}

static void set_timeouts(int fd)
{
    struct timeval tv = { HARNESS_IO_TIMEOUT_MS / 1000, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

cli *cli_try_connect(int port)
{
    signal(SIGPIPE, SIG_IGN);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    set_timeouts(fd);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    cli *c = calloc(1, sizeof *c);
    resp_limits lim = resp_limits_default();
    c->fd = fd;
    c->reader = resp_reader_new(&lim);
    return c;
}

cli *cli_connect(int port)
{
    cli *c = cli_try_connect(port);
    cr_assert(c, "cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
    return c;
}

void cli_close(cli *c)
{
    if (!c)
        return;
    close(c->fd);
    resp_reader_free(c->reader);
    free(c->in);
    free(c);
}

/* Appends up to 64 KiB from the socket to `in`: >0 bytes, 0 EOF, <0 error. */
static ssize_t recv_some(cli *c)
{
    if (c->cap - c->len < 65536) {
        if (c->off > 0) {
            memmove(c->in, c->in + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        if (c->cap - c->len < 65536) {
            c->cap = c->len + 65536 * 2;
            c->in = realloc(c->in, c->cap);
            cr_assert(c->in);
        }
    }
    ssize_t n;
    do {
        n = recv(c->fd, c->in + c->len, c->cap - c->len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

void cli_send_raw(cli *c, const void *p, size_t n)
{
    const char *b = p;
    long long deadline = now_ms() + HARNESS_IO_TIMEOUT_MS;
    while (n > 0) {
        struct pollfd pfd = { c->fd, POLLIN | POLLOUT, 0 };
        int left = (int)(deadline - now_ms());
        cr_assert(left > 0, "send: server accepted no bytes for %d ms", HARNESS_IO_TIMEOUT_MS);
        if (poll(&pfd, 1, left) <= 0)
            continue;
        if ((pfd.revents & POLLIN) && !c->broken && recv_some(c) == 0)
            c->broken = true; /* EOF: the replies already read stay parseable */
        if (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            cr_assert(w > 0, "send: %s", w < 0 ? strerror(errno) : "closed");
            b += w;
            n -= (size_t)w;
            deadline = now_ms() + HARNESS_IO_TIMEOUT_MS;
        }
    }
}

void cli_sendv(cli *c, int argc, const char *const *argv, const size_t *len)
{
    resp_buf b;
    resp_buf_init(&b);
    if (len)
        resp_add_command(&b, argc, argv, len);
    else
        resp_add_commandv(&b, argc, argv);
    cli_send_raw(c, b.data, b.len);
    resp_buf_free(&b);
}

static int collect_args(const char **argv, const char *arg0, va_list ap)
{
    int argc = 0;
    for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
        cr_assert(argc < MAX_ARGS, "harness: too many arguments");
        argv[argc++] = a;
    }
    return argc;
}

void cli_send(cli *c, const char *arg0, ...)
{
    const char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, arg0);
    int argc = collect_args(argv, arg0, ap);
    va_end(ap);
    cli_sendv(c, argc, argv, NULL);
}

resp_val *cli_cmd(cli *c, const char *arg0, ...)
{
    const char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, arg0);
    int argc = collect_args(argv, arg0, ap);
    va_end(ap);
    cli_sendv(c, argc, argv, NULL);
    return cli_read(c);
}

resp_val *cli_cmdv(cli *c, int argc, const char *const *argv, const size_t *len)
{
    cli_sendv(c, argc, argv, len);
    return cli_read(c);
}

/* Tries to parse one reply from `in`: 1 = *out set, 0 = need more, -1 = bad. */
static int parse_pending(cli *c, resp_val **out)
{
    if (c->len == c->off)
        return 0;
    size_t used = 0;
    int r = resp_reader_feed(c->reader, c->in + c->off, c->len - c->off, &used, out);
    c->off += used;
    if (c->off == c->len)
        c->off = c->len = 0;
    if (r == RESP_EPROTO) {
        c->broken = true;
        return -1;
    }
    return r == RESP_OK ? 1 : 0;
}

int cli_poll_reply(cli *c, int timeout_ms, resp_val **out)
{
    *out = NULL;
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        int r = parse_pending(c, out);
        if (r != 0)
            return r;
        if (c->broken)
            return -1;
        int left = (int)(deadline - now_ms());
        struct pollfd pfd = { c->fd, POLLIN, 0 };
        int p = poll(&pfd, 1, left > 0 ? left : 0);
        if (p < 0 && errno == EINTR)
            continue;
        if (p <= 0)
            return 0;
        ssize_t n = recv_some(c);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            c->broken = true;
            return -1;
        }
    }
}

resp_val *cli_read(cli *c)
{
    resp_val *v = NULL;
    int r = cli_poll_reply(c, HARNESS_IO_TIMEOUT_MS, &v);
    cr_assert(r != 0, "no reply within %d ms", HARNESS_IO_TIMEOUT_MS);
    cr_assert(r > 0, "connection closed or reply unreadable (%s) while waiting for a reply",
              resp_reader_error(c->reader) ? resp_reader_error(c->reader) : "EOF");
    return v;
}

static const char *escape(const char *p, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r')
            o += (size_t)snprintf(buf + o, cap - o, "\\r");
        else if (ch == '\n')
            o += (size_t)snprintf(buf + o, cap - o, "\\n");
        else if (ch < 32 || ch >= 127)
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    buf[o] = 0;
    return buf;
}

void cli_expect_raw(cli *c, const char *expected)
{
    size_t want = strlen(expected);
    cr_assert(cli_pending(c) == 0, "harness: raw read with parsed bytes pending");
    long long deadline = now_ms() + HARNESS_IO_TIMEOUT_MS;
    while (c->len < want) {
        struct pollfd pfd = { c->fd, POLLIN, 0 };
        int left = (int)(deadline - now_ms());
        cr_assert(left > 0 && poll(&pfd, 1, left) > 0, "no reply within %d ms (wanted %zu raw bytes, got %zu)",
                  HARNESS_IO_TIMEOUT_MS, want, c->len);
        ssize_t n = recv_some(c);
        cr_assert(n != 0, "connection closed after %zu of %zu raw bytes", c->len, want);
    }
    char got[256], exp[256];
    bool same = memcmp(c->in, expected, want) == 0;
    escape(c->in, want, got, sizeof got);
    escape(expected, want, exp, sizeof exp);
    c->off += want;
    if (c->off == c->len)
        c->off = c->len = 0;
    cr_assert(same, "raw reply: expected \"%s\", got \"%s\"", exp, got);
}

bool cli_wait_closed(cli *c, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        struct pollfd pfd = { c->fd, POLLIN, 0 };
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return false;
        c->off = c->len = 0;
        ssize_t n = recv_some(c);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
}

/* ========================================================== reply checks */

const char *resp_type_name(resp_type t)
{
    static const char *names[] = { "simple", "error", "integer", "bulk", "null", "array",
                                   "map", "set", "push", "double", "bool", "bignum" };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

const char *resp_describe(const resp_val *v)
{
    static char buf[512];
    char text[300];
    if (!v)
        return "(no reply)";
    switch (v->type) {
    case RESP_T_SIMPLE:
    case RESP_T_ERROR:
    case RESP_T_BULK:
    case RESP_T_BIGNUM:
        snprintf(buf, sizeof buf, "%s \"%s\"%s", resp_type_name(v->type),
                 escape(v->str, v->len, text, sizeof text), v->len > 200 ? "..." : "");
        break;
    case RESP_T_INT:
    case RESP_T_BOOL:
        snprintf(buf, sizeof buf, "%s %lld", resp_type_name(v->type), v->integer);
        break;
    case RESP_T_DOUBLE:
        snprintf(buf, sizeof buf, "double %g", v->dbl);
        break;
    case RESP_T_NULL:
        snprintf(buf, sizeof buf, "null");
        break;
    default:
        snprintf(buf, sizeof buf, "%s of %zu", resp_type_name(v->type), v->n);
        break;
    }
    return buf;
}

void expect_simple_at(const char *f, int l, resp_val *v, const char *s)
{
    bool ok = v->type == RESP_T_SIMPLE && strcmp(v->str, s) == 0;
    if (!ok)
        cr_assert_fail("%s:%d: expected +%s, got %s", f, l, s, resp_describe(v));
    resp_val_free(v);
}

void expect_int_at(const char *f, int l, resp_val *v, long long n)
{
    bool ok = v->type == RESP_T_INT && v->integer == n;
    if (!ok)
        cr_assert_fail("%s:%d: expected :%lld, got %s", f, l, n, resp_describe(v));
    resp_val_free(v);
}

static bool is_bulk(const resp_val *v, const void *p, size_t n)
{
    return v && v->type == RESP_T_BULK && v->len == n && memcmp(v->str, p, n) == 0;
}

void expect_bulk_at(const char *f, int l, resp_val *v, const void *p, size_t n)
{
    char text[300];
    if (!is_bulk(v, p, n))
        cr_assert_fail("%s:%d: expected bulk \"%s\" (%zu bytes), got %s", f, l,
                       escape(p, n, text, sizeof text), n, resp_describe(v));
    resp_val_free(v);
}

void expect_null_at(const char *f, int l, resp_val *v)
{
    if (v->type != RESP_T_NULL)
        cr_assert_fail("%s:%d: expected null, got %s", f, l, resp_describe(v));
    resp_val_free(v);
}

void expect_error_at(const char *f, int l, resp_val *v, const char *prefix)
{
    bool ok = v->type == RESP_T_ERROR && strncmp(v->str, prefix, strlen(prefix)) == 0;
    if (!ok)
        cr_assert_fail("%s:%d: expected error \"-%s...\", got %s", f, l, prefix, resp_describe(v));
    resp_val_free(v);
}

void expect_bulks_at(const char *f, int l, resp_val *v, ...)
{
    const char *want[MAX_ARGS * 4];
    size_t n = 0;
    va_list ap;
    va_start(ap, v);
    for (const char *s = va_arg(ap, const char *); s && n < MAX_ARGS * 4; s = va_arg(ap, const char *))
        want[n++] = s;
    va_end(ap);
    if (v->type != RESP_T_ARRAY || v->n != n)
        cr_assert_fail("%s:%d: expected array of %zu bulks, got %s", f, l, n, resp_describe(v));
    for (size_t i = 0; i < n; i++) {
        if (!is_bulk(v->elem[i], want[i], strlen(want[i])))
            cr_assert_fail("%s:%d: element %zu: expected \"%s\", got %s", f, l, i, want[i],
                           resp_describe(v->elem[i]));
    }
    resp_val_free(v);
}

void expect_pop_at(const char *f, int l, resp_val *v, const char *key, const char *elem)
{
    if (v->type != RESP_T_ARRAY || v->n != 2)
        cr_assert_fail("%s:%d: expected [%s, %s], got %s", f, l, key, elem, resp_describe(v));
    if (!is_bulk(v->elem[0], key, strlen(key)))
        cr_assert_fail("%s:%d: expected key \"%s\", got %s", f, l, key, resp_describe(v->elem[0]));
    if (!is_bulk(v->elem[1], elem, strlen(elem)))
        cr_assert_fail("%s:%d: expected element \"%s\", got %s", f, l, elem,
                       resp_describe(v->elem[1]));
    resp_val_free(v);
}

/* ========================================================== server state */

long long info_field(cli *c, const char *section, const char *field)
{
    resp_val *v = CMD(c, "INFO", section);
    cr_assert(v->type == RESP_T_BULK, "INFO %s: expected bulk text, got %s", section,
              resp_describe(v));
    long long out = -1;
    size_t flen = strlen(field);
    for (const char *p = v->str; p && *p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
            out = strtoll(p + flen + 1, NULL, 10);
            break;
        }
    }
    resp_val_free(v);
    return out;
}

void wait_blocked_clients(cli *c, long long n, int timeout_ms)
{
    long long last = -1;
    bool ok = wait_until((last = info_field(c, "clients", "blocked_clients")) == n, timeout_ms);
    cr_assert(ok, "INFO clients blocked_clients: expected %lld within %d ms, last seen %lld%s", n,
              timeout_ms, last, last < 0 ? " (field missing)" : "");
}

void wait_reservations_saved(cli *c, int timeout_ms)
{
    long long last = -1;
    bool ok = wait_until((last = info_field(c, "persistence", "reservations_unsaved")) == 0, timeout_ms);
    cr_assert(ok, "INFO persistence reservations_unsaved: expected 0 within %d ms, last seen %lld%s", timeout_ms,
              last, last < 0 ? " (field missing)" : "");
}

long long llen(cli *c, const char *key)
{
    resp_val *v = CMD(c, "LLEN", key);
    cr_assert(v->type == RESP_T_INT, "LLEN %s: expected integer, got %s", key, resp_describe(v));
    long long n = v->integer;
    resp_val_free(v);
    return n;
}

/* ====================================================== child processes */

static void drain_pipe(int fd, resp_buf *out, long long deadline)
{
    char chunk[4096];
    for (;;) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return;
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        resp_buf_append(out, chunk, (size_t)n);
    }
}

int run_capture(char *const argv[], char **out, int timeout_ms)
{
    int fds[2];
    cr_assert(pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    cr_assert(err == 0, "posix_spawn %s: %s", argv[0], strerror(err));

    resp_buf b;
    resp_buf_init(&b);
    long long deadline = now_ms() + timeout_ms;
    drain_pipe(fds[0], &b, deadline);
    close(fds[0]);
    resp_buf_append(&b, "", 1);
    size_t n;
    *out = resp_buf_take(&b, &n);

    int status;
    bool done = wait_until(waitpid(pid, &status, WNOHANG) == pid, (int)(deadline - now_ms()) + 100);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ================================================== records and fields */

long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const resp_val *resp_field(const resp_val *v, const char *name)
{
    bool ok = v && (v->type == RESP_T_MAP || v->type == RESP_T_ARRAY) && v->n % 2 == 0;
    cr_assert(ok, "expected a map or a flat field/value array, got %s", resp_describe(v));
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const resp_val *k = v->elem[i];
        if ((k->type == RESP_T_BULK || k->type == RESP_T_SIMPLE) && strcmp(k->str, name) == 0)
            return v->elem[i + 1];
    }
    return NULL;
}

long long field_int_at(const char *f, int l, const resp_val *v, const char *name)
{
    const resp_val *x = resp_field(v, name);
    if (!x)
        cr_assert_fail("%s:%d: field '%s' missing", f, l, name);
    if (x->type != RESP_T_INT)
        cr_assert_fail("%s:%d: field '%s': expected an integer, got %s", f, l, name,
                       resp_describe(x));
    return x->integer;
}

const char *field_str_at(const char *f, int l, const resp_val *v, const char *name)
{
    const resp_val *x = resp_field(v, name);
    if (!x)
        cr_assert_fail("%s:%d: field '%s' missing", f, l, name);
    if (x->type != RESP_T_BULK && x->type != RESP_T_SIMPLE)
        cr_assert_fail("%s:%d: field '%s': expected a string, got %s", f, l, name,
                       resp_describe(x));
    return x->str;
}

void field_nil_at(const char *f, int l, const resp_val *v, const char *name)
{
    const resp_val *x = resp_field(v, name);
    if (!x)
        cr_assert_fail("%s:%d: field '%s' missing", f, l, name);
    if (x->type != RESP_T_NULL)
        cr_assert_fail("%s:%d: field '%s': expected nil, got %s", f, l, name, resp_describe(x));
}

void expect_error_has_at(const char *f, int l, resp_val *v, const char *prefix, const char *part)
{
    bool ok = v->type == RESP_T_ERROR && strncmp(v->str, prefix, strlen(prefix)) == 0 &&
              strstr(v->str, part) != NULL;
    if (!ok)
        cr_assert_fail("%s:%d: expected error \"-%s...%s...\", got %s", f, l, prefix, part,
                       resp_describe(v));
    resp_val_free(v);
}

const char *resp_text_at(const char *f, int l, const resp_val *v, char *buf, size_t cap)
{
    if (v && (v->type == RESP_T_BULK || v->type == RESP_T_SIMPLE))
        snprintf(buf, cap, "%s", v->str);
    else if (v && v->type == RESP_T_INT)
        snprintf(buf, cap, "%lld", v->integer);
    else
        cr_assert_fail("%s:%d: expected a string or integer, got %s", f, l, resp_describe(v));
    return buf;
}

/* ------------------------------------------------------------ fixture */

void fixture_start(spoold **srv, cli **c)
{
    *srv = spoold_start(NULL);
    *c = cli_connect((*srv)->port);
}

void fixture_stop(spoold **srv, cli **c)
{
    cli_close(*c);
    *c = NULL;
    spoold_stop(*srv);
    *srv = NULL;
}

/* ------------------------------------------------- reliable-job helpers */

jid push_at(const char *f, int l, cli *cl, const char *q, const char *payload, ...)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = "JOB.PUSH";
    argv[n++] = q;
    argv[n++] = payload;
    va_list ap;
    va_start(ap, payload);
    for (const char *a = va_arg(ap, const char *); a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    resp_val *v = cli_cmdv(cl, n, argv, NULL);
    if (v->type != RESP_T_BULK || v->len != 16)
        cr_assert_fail("%s:%d: JOB.PUSH %s: expected a job id, got %s", f, l, q, resp_describe(v));
    jid id;
    snprintf(id.s, sizeof id.s, "%s", v->str);
    resp_val_free(v);
    return id;
}

void expect_nothing_at(const char *f, int l, cli *cl, const char *q)
{
    resp_val *v = CMD(cl, "JOB.RESERVE", "NOWAIT", "FROM", q);
    if (v->type != RESP_T_NULL)
        cr_assert_fail("%s:%d: JOB.RESERVE NOWAIT FROM %s: expected nil, got %s", f, l, q,
                       resp_describe(v));
    resp_val_free(v);
}

long long stat_of(cli *cl, const char *q, const char *name)
{
    resp_val *v = CMD(cl, "QUEUE.STATS", q);
    long long n = field_int(v, name);
    resp_val_free(v);
    return n;
}

const char *state_of(cli *cl, const char *id)
{
    static char buf[32];
    resp_val *v = CMD(cl, "JOB.GET", id);
    if (v->type == RESP_T_NULL)
        snprintf(buf, sizeof buf, "nil");
    else
        snprintf(buf, sizeof buf, "%s", field_str(v, "state"));
    resp_val_free(v);
    return buf;
}

void expect_word_at(const char *f, int l, resp_val *v, const char *w)
{
    bool ok = (v->type == RESP_T_SIMPLE || v->type == RESP_T_BULK) && strcmp(v->str, w) == 0;
    if (!ok)
        cr_assert_fail("%s:%d: expected \"%s\", got %s", f, l, w, resp_describe(v));
    resp_val_free(v);
}

void expect_no_reply_for(cli *w, int ms, const char *who)
{
    resp_val *v = NULL;
    int r = cli_poll_reply(w, ms, &v);
    cr_assert(r == 0, "%s: expected no reply yet, got %s", who, r > 0 ? resp_describe(v) : "connection closed");
}

bool error_has(resp_val *v, const char *text)
{
    bool yes = v->type == RESP_T_ERROR && strstr(v->str, text) != NULL;
    if (!yes)
        cr_log_error("expected an error with \"%s\", got %s", text, resp_describe(v));
    resp_val_free(v);
    return yes;
}

void other_shard_key(cli *c, const char *key, char *out, size_t n)
{
    for (int i = 0; i < 200; i++) {
        snprintf(out, n, "other%d", i);
        resp_val *v = CMD(c, "EVAL", "return 1", "2", key, out);
        bool cross = v->type == RESP_T_ERROR && strncmp(v->str, "CROSSSLOT", 9) == 0;
        resp_val_free(v);
        if (cross)
            return;
    }
    cr_assert_fail("no key on another shard than %s", key);
}
