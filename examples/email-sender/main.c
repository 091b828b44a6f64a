/*
 * email-sender - a spool worker that sends the jobs of queue `emails`
 * through SMTP with libcurl.
 *
 * Payload: {"to": "...", "subject": "...", "body": "..."} (all strings).
 * Outcome per job, from the SMTP server's last reply:
 *   2xx             done (ack)
 *   4xx             retry later (the server said "try again"), or the
 *                   server could not be reached at all
 *   5xx             fail: the job goes dead with the server's own text as
 *                   its last_error (e.g. "550 5.1.1 <x@y>: Recipient
 *                   address rejected")
 *   a bad payload   fail, saying which field is wrong
 *
 * A subject that is not plain ASCII is sent as RFC 2047 encoded-words
 * (=?UTF-8?B?...?=), as mail readers expect; the body is UTF-8, 8bit.
 *
 * Each message carries "X-Spool-Job: <job id>" and a Message-ID made from
 * the job id, so a receiving system can drop the duplicate a retry after a
 * lost acknowledgement may produce (at-least-once delivery).
 *
 * Settings, flag or environment: --url / SPOOL_URL, --smtp / SMTP_URL
 * (smtp://127.0.0.1:25), --from / SMTP_FROM, --user / SMTP_USER,
 * --password / SMTP_PASSWORD, --threads N, --queue NAME, --timeout-ms,
 * --rate / SMTP_RATE: the provider's sending limit, e.g. 14/1s, set once on
 * the queue at start (QUEUE.CONFIG emails SET rate 14/1s): the broker then
 * paces every worker of the fleet together, however many there are.
 * Stops cleanly on SIGTERM/SIGINT (running sends finish first).
 *
 * Threads: the worker runtime's; each thread keeps its own CURL handle
 * (thread_start/thread_stop hooks), so connections to the SMTP server are
 * reused between jobs.
 */
#include <curl/curl.h>
#include <spool.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 64

typedef struct settings {
    const char *url, *smtp, *from, *user, *password, *queue, *rate;
    int threads;
    long timeout_ms;
} settings;

typedef struct app {
    settings s;
    CURL *curl[MAX_THREADS];
} app;

/* ================================================================ the send */

typedef struct upload {
    const char *data;
    size_t len, off;
} upload;

static size_t read_cb(char *buf, size_t size, size_t n, void *arg)
{
    upload *u = arg;
    size_t room = size * n, left = u->len - u->off;
    size_t k = left < room ? left : room;
    memcpy(buf, u->data + u->off, k);
    u->off += k;
    return k;
}

/* Keeps the server's first error reply line ("550 5.1.1 ..."): the one
 * that failed the send (libcurl's QUIT afterwards gets a 221). */
static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
    (void)h;
    char *last = arg;
    if (type != CURLINFO_HEADER_IN || size < 3 || last[0] || data[0] < '4' || data[0] > '5' ||
        !isdigit((unsigned char)data[1]) || !isdigit((unsigned char)data[2]))
        return 0;
    while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
        size--;
    if (size > 511)
        size = 511;
    memcpy(last, data, size);
    last[size] = 0;
    return 0;
}

/* True when s can go into a header line. */
static bool header_safe(const char *s)
{
    return !strpbrk(s, "\r\n");
}

/* ==================================================== RFC 2047 subject */

/* True when s can go into a header as it is: printable ASCII only. */
static bool header_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return false;
    return true;
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

/* The Subject as a header value: ASCII as it is; anything else as RFC 2047
 * encoded-words ("=?UTF-8?B?...?="), each at most 64 characters, split
 * only between UTF-8 characters and folded onto continuation lines, so
 * that every line stays under 76 characters. Caller frees. */
#define WORD_BYTES 39 /* 52 base64 characters + 12 for "=?UTF-8?B?" "?=" */
static char *encode_subject(const char *subject)
{
    if (header_ascii(subject))
        return strdup(subject);
    size_t n = strlen(subject);
    char *out = malloc((n / WORD_BYTES + 1) * 72 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t at = 0; at < n;) {
        size_t take = n - at < WORD_BYTES ? n - at : WORD_BYTES;
        while (take < n - at && take > 1 && ((unsigned char)subject[at + take] & 0xC0) == 0x80)
            take--; /* never cut a character in two */
        char b64[WORD_BYTES / 3 * 4 + 8];
        base64((const unsigned char *)subject + at, take, b64);
        o += sprintf(o, "%s=?UTF-8?B?%s?=", at ? "\r\n " : "", b64);
        at += take;
    }
    return out;
}

static char *build_message(const settings *s, const spool_job *job, const char *to,
                           const char *subject, const char *body, size_t *len)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    char *subj = encode_subject(subject);
    if (!subj)
        return NULL;
#define MESSAGE_FMT                                                                    \
    "Date: %s\r\nTo: <%s>\r\nFrom: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@spool>\r\n"     \
    "X-Spool-Job: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"       \
    "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"
    int n = snprintf(NULL, 0, MESSAGE_FMT, date, to, s->from, subj, job->id, job->id, body);
    char *m = malloc((size_t)n + 1);
    if (m) {
        snprintf(m, (size_t)n + 1, MESSAGE_FMT, date, to, s->from, subj, job->id, job->id, body);
        *len = (size_t)n;
    }
    free(subj);
    return m;
}

/* Maps the outcome of one send to a handler result. */
static int outcome(CURLcode rc, long code, const char *last, const char *curl_err, spool_ctx *ctx)
{
    if (rc == CURLE_OK)
        return SPOOL_OK;
    if (code >= 500) {
        spool_ctx_set_error(ctx, "%s", last[0] ? last : curl_err);
        return SPOOL_FAIL;
    }
    if (code >= 400)
        spool_ctx_set_error(ctx, "%s", last[0] ? last : curl_err);
    else
        spool_ctx_set_error(ctx, "smtp: %s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
    return SPOOL_RETRY;
}

static int send_mail(app *a, CURL *h, const spool_job *job, const char *to, const char *subject,
                     const char *body, spool_ctx *ctx)
{
    size_t len = 0;
    char *msg = build_message(&a->s, job, to, subject, body, &len);
    if (!msg) {
        spool_ctx_set_error(ctx, "out of memory");
        return SPOOL_RETRY;
    }
    char rcpt_addr[600], from_addr[600], last[512] = "", err[CURL_ERROR_SIZE] = "";
    snprintf(rcpt_addr, sizeof rcpt_addr, "<%s>", to);
    snprintf(from_addr, sizeof from_addr, "<%s>", a->s.from);
    struct curl_slist *rcpt = curl_slist_append(NULL, rcpt_addr);
    upload up = { msg, len, 0 };
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, a->s.smtp);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from_addr);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, a->s.timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, a->s.timeout_ms * 3);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L); /* needed for the debug callback */
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, last);
    if (a->s.user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, a->s.user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, a->s.password ? a->s.password : "");
    }
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(rcpt);
    free(msg);
    return outcome(rc, code, last, err, ctx);
}

/* ============================================================== the worker */

static int handle(spool_job *job, spool_ctx *ctx, void *arg)
{
    app *a = arg;
    const char *to = spool_job_json_str(job, "to");
    const char *subject = spool_job_json_str(job, "subject");
    const char *body = spool_job_json_str(job, "body");
    if (!to || !subject || !body) {
        spool_ctx_set_error(ctx, "payload needs string fields \"to\", \"subject\" and \"body\"");
        return SPOOL_FAIL;
    }
    if (!header_safe(to) || !header_safe(subject) || !to[0] || strpbrk(to, "<> ")) {
        spool_ctx_set_error(ctx, "\"to\" must be one address and \"subject\" one line");
        return SPOOL_FAIL;
    }
    return send_mail(a, a->curl[spool_ctx_thread(ctx)], job, to, subject, body, ctx);
}

static void thread_start(int idx, void *arg)
{
    app *a = arg;
    a->curl[idx] = curl_easy_init();
}

static void thread_stop(int idx, void *arg)
{
    app *a = arg;
    curl_easy_cleanup(a->curl[idx]);
    a->curl[idx] = NULL;
}

/* ============================================================== settings */

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && v[0] ? v : dflt;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: email-sender [--url spool://host:port] [--smtp smtp://host:port] "
                 "[--from addr] [--user u] [--password p] [--threads N] [--queue emails] "
                 "[--timeout-ms MS] [--rate N/PERIOD]\n"
                 "environment: SPOOL_URL, SMTP_URL, SMTP_FROM, SMTP_USER, SMTP_PASSWORD, SMTP_RATE\n");
}

static int parse_args(int argc, char **argv, settings *s)
{
    *s = (settings){ .url = env_or("SPOOL_URL", NULL), .smtp = env_or("SMTP_URL", "smtp://127.0.0.1:25"),
                     .from = env_or("SMTP_FROM", "spool@localhost"), .user = env_or("SMTP_USER", NULL),
                     .password = env_or("SMTP_PASSWORD", NULL), .queue = "emails", .threads = 4,
                     .rate = env_or("SMTP_RATE", NULL),
                     .timeout_ms = 10000 };
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "email-sender: %s needs a value\n", f);
            return -1;
        }
        i++;
        if (!strcmp(f, "--url")) s->url = v;
        else if (!strcmp(f, "--smtp")) s->smtp = v;
        else if (!strcmp(f, "--from")) s->from = v;
        else if (!strcmp(f, "--user")) s->user = v;
        else if (!strcmp(f, "--password")) s->password = v;
        else if (!strcmp(f, "--queue")) s->queue = v;
        else if (!strcmp(f, "--threads")) s->threads = atoi(v);
        else if (!strcmp(f, "--timeout-ms")) s->timeout_ms = atol(v);
        else if (!strcmp(f, "--rate")) s->rate = v;
        else {
            fprintf(stderr, "email-sender: unknown flag %s\n", f);
            usage(stderr);
            return -1;
        }
    }
    if (s->threads < 1 || s->threads > MAX_THREADS || s->timeout_ms < 1) {
        fprintf(stderr, "email-sender: --threads must be 1..%d and --timeout-ms positive\n", MAX_THREADS);
        return -1;
    }
    return 0;
}

/* --rate: the queue's delivery rate, set on the broker for the whole fleet. */
static int set_rate(const settings *s)
{
    spool_client *c = NULL;
    int rc = spool_connect_url(&c, s->url);
    const char *pairs[] = { "rate", s->rate };
    if (rc == 0)
        rc = spool_queue_config_set(c, s->queue, pairs, 1);
    if (rc < 0)
        fprintf(stderr, "email-sender: cannot set rate %s on queue %s: %s\n", s->rate, s->queue,
                c ? spool_errmsg(c) : spool_strerror(rc));
    else
        printf("email-sender: queue %s delivers at most %s\n", s->queue, s->rate);
    spool_close(c);
    return rc;
}

int main(int argc, char **argv)
{
    static app a;
    if (parse_args(argc, argv, &a.s) < 0)
        return 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "email-sender: curl_global_init failed\n");
        return 1;
    }
    if (a.s.rate && set_rate(&a.s) < 0)
        return 2;
    const char *queues[] = { a.s.queue, NULL };
    spool_worker_config cfg = {
        .url = a.s.url, .queues = queues, .handler = handle, .handler_arg = &a,
        .threads = a.s.threads, .log_level = SPOOL_LOG_INFO, .name = "email-sender",
        .thread_start = thread_start, .thread_stop = thread_stop,
    };
    spool_worker *w = NULL;
    int rc = spool_worker_new(&w, &cfg);
    if (rc < 0) {
        fprintf(stderr, "email-sender: %s (check --url / SPOOL_URL)\n", spool_strerror(rc));
        curl_global_cleanup();
        return 2;
    }
    rc = spool_worker_run(w);
    spool_worker_counters ct;
    spool_worker_counters_get(w, &ct);
    spool_worker_free(w);
    curl_global_cleanup();
    printf("email-sender: %lld sent, %lld retried, %lld failed\n", ct.done, ct.retried, ct.failed);
    return rc == 0 ? 0 : 1;
}
