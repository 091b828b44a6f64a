/*
 * test_examples.c - the two example workers end to end: a real spoold, the
 * real example binaries as child processes, a real SMTP sink (aiosmtpd,
 * tests/sdk/smtp_sink.py) and real images made with libvips.
 *
 * email-sender: every message arrives exactly once (by its X-Spool-Job
 * header), a 4xx is retried until it goes through, a 5xx ends the job dead
 * with the SMTP server's own words, and SIGTERM stops the worker with exit
 * status 0. image-resize: thumbnails of the requested width and the
 * source's aspect ratio; a corrupt or missing source ends dead with a
 * clear error.
 *
 * Every wait polls state (files, QUEUE.STATS) with a deadline.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vips/vips.h>

#include "harness.h"
#include "spool.h"

#ifndef EMAIL_SENDER_PATH
#define EMAIL_SENDER_PATH "email-sender"
#endif
#ifndef IMAGE_RESIZE_PATH
#define IMAGE_RESIZE_PATH "image-resize"
#endif
#ifndef SMTP_SINK_PATH
#define SMTP_SINK_PATH "smtp_sink.py"
#endif

/* =========================================================== processes */

typedef struct child {
    pid_t pid;
    char log[400];
} child;

static child spawn(const char *dir, const char *name, char *const argv[])
{
    child c;
    snprintf(c.log, sizeof c.log, "%s/%s.log", dir, name);
    pid_t parent = getpid();
    c.pid = fork();
    cr_assert(c.pid >= 0);
    if (c.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        int fd = open(c.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        dprintf(2, "cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return c;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    resp_buf b;
    resp_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        resp_buf_append(&b, chunk, n);
    fclose(f);
    resp_buf_append(&b, "", 1);
    return resp_buf_take(&b, NULL);
}

/* SIGTERM, then the exit status (0..255), or -1 when it did not exit in time. */
static int stop_child(child *c, int timeout_ms)
{
    kill(c->pid, SIGTERM);
    int status = 0;
    bool gone = wait_until(waitpid(c->pid, &status, WNOHANG) == c->pid, timeout_ms);
    if (!gone) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int read_port(const char *path)
{
    char *t = slurp(path);
    int port = atoi(t);
    free(t);
    return port;
}

static char *make_tmpdir(void)
{
    char *d = strdup("/tmp/spool-ex-XXXXXX");
    cr_assert(mkdtemp(d));
    return d;
}

static void rm_rf(const char *dir)
{
    char *argv[] = { "/bin/rm", "-rf", (char *)dir, NULL };
    char *out = NULL;
    run_capture(argv, &out, 10000);
    free(out);
}

/* ============================================================== broker */

static spool_client *client_of(const spoold *s, char *url, size_t cap)
{
    snprintf(url, cap, "spool://127.0.0.1:%d", s->port);
    spool_client *c = NULL;
    cr_assert_eq(spool_connect_url(&c, url), 0, "%s", spool_errmsg(c));
    return c;
}

static spool_queue_stats stats(spool_client *c, const char *q)
{
    spool_queue_stats st;
    cr_assert_eq(spool_queue_stats_get(c, q, &st), 0, "%s", spool_errmsg(c));
    return st;
}

/* ======================================================== email-sender */

typedef struct mail_env {
    spoold *s;
    spool_client *c;
    char url[64];
    char *dir;
    char maildir[300];
    child sink, worker;
} mail_env;

static void mail_start_rate(mail_env *e, const char *rate);

static void mail_start(mail_env *e)
{
    mail_start_rate(e, NULL);
}

static void mail_start_rate(mail_env *e, const char *rate)
{
    e->s = spoold_start(NULL);
    e->c = client_of(e->s, e->url, sizeof e->url);
    e->dir = make_tmpdir();
    snprintf(e->maildir, sizeof e->maildir, "%s/mail", e->dir);
    cr_assert(mkdir(e->maildir, 0700) == 0);
    char portfile[320];
    snprintf(portfile, sizeof portfile, "%s/smtp.port", e->dir);
    char *sargv[] = { "/usr/bin/python3", SMTP_SINK_PATH, portfile, e->maildir, NULL };
    e->sink = spawn(e->dir, "sink", sargv);
    cr_assert(wait_until(access(portfile, R_OK) == 0, 15000), "the SMTP sink did not start: %s",
              slurp(e->sink.log));
    char smtp[64];
    snprintf(smtp, sizeof smtp, "smtp://127.0.0.1:%d", read_port(portfile));
    const char *cfg[] = { "backoff", "100" };
    cr_assert_eq(spool_queue_config_set(e->c, "emails", cfg, 1), 0, "%s", spool_errmsg(e->c));
    char *wargv[] = { EMAIL_SENDER_PATH, "--url", e->url, "--smtp", smtp, "--threads", "2",
                      "--from", "shop@example.com", rate ? "--rate" : NULL, (char *)rate, NULL };
    e->worker = spawn(e->dir, "email-sender", wargv);
}

static void mail_stop(mail_env *e)
{
    int rc = stop_child(&e->worker, 10000);
    char *log = slurp(e->worker.log);
    cr_assert_eq(rc, 0, "email-sender exit status %d on SIGTERM; log:\n%s", rc, log);
    free(log);
    stop_child(&e->sink, 5000);
    spool_close(e->c);
    spoold_stop(e->s);
    rm_rf(e->dir);
    free(e->dir);
}

/* QUEUE.CONFIG queue GET name: 0 with *out malloc'd. */
static int config_value(spool_client *c, const char *queue, const char *name, char **out)
{
    char **pairs = NULL;
    int n = spool_queue_config_get(c, queue, name, &pairs);
    if (n < 1) {
        spool_strv_free(pairs);
        return -1;
    }
    *out = strdup(pairs[1]);
    spool_strv_free(pairs);
    return 0;
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (de->d_name[0] != '.' && l > sl && !strcmp(de->d_name + l - sl, suffix))
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void push_mail(spool_client *c, const char *to, char *id)
{
    char payload[300];
    snprintf(payload, sizeof payload,
             "{\"to\":\"%s\",\"subject\":\"Your order\",\"body\":\"Hello %s,\\nthanks.\"}", to, to);
    cr_assert_eq(spool_push_str(c, "emails", payload, NULL, id), 0, "%s", spool_errmsg(c));
}

Test(examples, email_sender_delivers_every_message_once, .timeout = 120)
{
    mail_env e;
    mail_start(&e);
    enum { NM = 30 };
    static char ids[NM + 1][SPOOL_ID_MAX];
    for (int i = 0; i < NM; i++) {
        char to[64];
        snprintf(to, sizeof to, "user%d@example.com", i);
        push_mail(e.c, to, ids[i]);
    }
    push_mail(e.c, "flaky@example.com", ids[NM]); /* 451 once, then accepted */
    bool all = wait_until(count_files(e.maildir, ".eml") >= NM + 1 && stats(e.c, "emails").done == NM + 1,
                          60000);
    spool_queue_stats st = stats(e.c, "emails");
    cr_assert(all, "%d messages arrived, done %lld, retried %lld, dead %lld; worker log:\n%s",
              count_files(e.maildir, ".eml"), st.done, st.retried, st.dead, slurp(e.worker.log));
    cr_assert_eq(count_files(e.maildir, ".eml"), NM + 1, "a message arrived twice");
    cr_assert_eq(st.retried, 1, "the 451 should cause exactly one retry");
    /* each job's message exactly once */
    static int seen[NM + 1];
    for (int f = 1; f <= NM + 1; f++) {
        char path[400];
        snprintf(path, sizeof path, "%s/%d.eml", e.maildir, f);
        char *m = slurp(path);
        const char *h = strstr(m, "X-Spool-Job: ");
        cr_assert(h, "message %d has no X-Spool-Job header:\n%s", f, m);
        int which = -1;
        for (int i = 0; i <= NM; i++)
            if (!strncmp(h + 13, ids[i], strlen(ids[i])))
                which = i;
        cr_assert(which >= 0, "message %d names an unknown job", f);
        seen[which]++;
        char rcpt[80];
        if (which < NM)
            snprintf(rcpt, sizeof rcpt, "X-Rcpt-To: user%d@example.com\r\n", which);
        else
            snprintf(rcpt, sizeof rcpt, "X-Rcpt-To: flaky@example.com\r\n");
        cr_assert(!strncmp(m, rcpt, strlen(rcpt)), "message %d went to the wrong address:\n%s", f, m);
        cr_assert(strstr(m, "From: <shop@example.com>"), "%s", m);
        free(m);
    }
    for (int i = 0; i <= NM; i++)
        cr_assert_eq(seen[i], 1, "job %d: %d messages", i, seen[i]);
    mail_stop(&e);
}

Test(examples, email_sender_sends_at_its_rate_and_never_sends_an_expired_job, .timeout = 120)
{
    mail_env e;
    mail_start_rate(&e, "20/1s");
    char *rate = NULL;
    bool set = wait_until((free(rate), rate = NULL, config_value(e.c, "emails", "rate", &rate) == 0 &&
                           !strcmp(rate, "20/1s")), 10000);
    cr_assert(set, "email-sender did not set the queue's rate (rate %s); log:\n%s", rate ? rate : "-",
              slurp(e.worker.log));
    free(rate);
    cr_assert_eq(spool_queue_pause(e.c, "emails"), 0);
    char late[SPOOL_ID_MAX];
    spool_push_opts o = { .expires_ms = 100 };
    cr_assert_eq(spool_push_str(e.c, "emails", "{\"to\":\"late@example.com\",\"subject\":\"Reset code\","
                                "\"body\":\"492113\"}", &o, late), 0, "%s", spool_errmsg(e.c));
    cr_assert(wait_until(stats(e.c, "emails").expired == 1, 10000), "the reset code did not expire");
    enum { NM = 20 };
    char id[SPOOL_ID_MAX];
    for (int i = 0; i < NM; i++) {
        char to[64];
        snprintf(to, sizeof to, "user%d@example.com", i);
        push_mail(e.c, to, id);
    }
    long long t0 = now_ms();
    cr_assert_eq(spool_queue_resume(e.c, "emails"), 0);
    bool all = wait_until(stats(e.c, "emails").done == NM, 60000);
    long long took = now_ms() - t0;
    cr_assert(all, "not all sent; log:\n%s", slurp(e.worker.log));
    cr_assert_geq(took, (NM - 1) * 50 - 5, "20 messages at 20/1s took only %lld ms", took);
    cr_assert_eq(count_files(e.maildir, ".eml"), NM, "the expired reset code was sent after all");
    spool_job *j = NULL;
    cr_assert_eq(spool_job_get(e.c, late, &j), 0);
    cr_assert_str_eq(j->state, "expired");
    spool_job_free(j);
    mail_stop(&e);
}

Test(examples, email_sender_fails_a_5xx_with_the_server_text, .timeout = 120)
{
    mail_env e;
    mail_start(&e);
    char rejected[SPOOL_ID_MAX], bad[SPOOL_ID_MAX], ok[SPOOL_ID_MAX];
    push_mail(e.c, "reject@example.com", rejected);
    cr_assert_eq(spool_push_str(e.c, "emails", "{\"to\":\"x@example.com\"}", NULL, bad), 0);
    push_mail(e.c, "fine@example.com", ok);
    bool settled = wait_until(stats(e.c, "emails").dead == 2 && stats(e.c, "emails").done == 1, 30000);
    cr_assert(settled, "dead %lld done %lld; worker log:\n%s", stats(e.c, "emails").dead,
              stats(e.c, "emails").done, slurp(e.worker.log));
    spool_job *j = NULL;
    cr_assert_eq(spool_job_get(e.c, rejected, &j), 0);
    cr_assert_str_eq(j->state, "dead");
    cr_assert_eq(j->attempt, 1, "a 5xx must not be retried");
    cr_assert(j->last_error && strstr(j->last_error, "550 5.1.1 <reject@example.com>: Recipient address "
                                                     "rejected: no such user"),
              "last_error: %s", j->last_error ? j->last_error : "(none)");
    spool_job_free(j);
    cr_assert_eq(spool_job_get(e.c, bad, &j), 0);
    cr_assert_str_eq(j->state, "dead");
    cr_assert(j->last_error && strstr(j->last_error, "payload needs string fields"), "%s", j->last_error);
    spool_job_free(j);
    cr_assert_eq(count_files(e.maildir, ".eml"), 1);
    mail_stop(&e);
}

/* The Subject header of a message as Python's email package decodes it
 * (RFC 2047 encoded-words joined across folded lines); caller frees. */
static char *decoded_subject(const char *eml_path)
{
    char *argv[] = { "/usr/bin/python3", "-c",
                     "import sys, email, email.policy\n"
                     "m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n"
                     "raw = m.get('Subject', failobj=None)\n"
                     "sys.stdout.buffer.write(str(raw).encode('utf-8'))\n",
                     (char *)eml_path, NULL };
    char *out = NULL;
    int rc = run_capture(argv, &out, 20000);
    cr_assert_eq(rc, 0, "python3 email parse failed: %s", out);
    return out;
}

Test(examples, email_sender_encodes_a_utf8_subject, .timeout = 120)
{
    mail_env e;
    mail_start(&e);
    /* long enough for two encoded-words; ü, ß, ö and € are split nowhere */
    const char *subject = "Grüße aus Köln: Ihre Bestellung über 42 € ist unterwegs, schönen Tag!";
    char payload[400], id[SPOOL_ID_MAX];
    snprintf(payload, sizeof payload, "{\"to\":\"ann@example.com\",\"subject\":\"%s\",\"body\":\"Grüße\"}",
             subject);
    cr_assert_eq(spool_push_str(e.c, "emails", payload, NULL, id), 0, "%s", spool_errmsg(e.c));
    cr_assert(wait_until(count_files(e.maildir, ".eml") == 1, 30000), "no message; worker log:\n%s",
              slurp(e.worker.log));
    char path[400];
    snprintf(path, sizeof path, "%s/1.eml", e.maildir);
    char *m = slurp(path);
    const char *h = strstr(m, "\r\nSubject: ");
    cr_assert(h, "no Subject header:\n%s", m);
    for (const unsigned char *p = (const unsigned char *)h + 2; *p && !(p[0] == '\r' && p[1] == '\n' && p[2] != ' '); p++)
        cr_assert(*p < 0x80, "raw 8-bit byte in the Subject header:\n%s", m);
    cr_assert(strstr(h, "=?UTF-8?B?"), "Subject is not an RFC 2047 encoded-word:\n%s", m);
    for (const char *l = h + 2; l && *l != '\r'; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL) {
        const char *end = strstr(l, "\r\n");
        cr_assert(end && end - l <= 76, "a Subject line is longer than 76 characters:\n%s", m);
        if (end[2] != ' ')
            break;
    }
    char *got = decoded_subject(path);
    cr_assert_str_eq(got, subject, "decoded Subject differs:\n%s", m);
    free(got);
    free(m);
    mail_stop(&e);
}

/* ========================================================= image-resize */

typedef struct img_env {
    spoold *s;
    spool_client *c;
    char url[64];
    char *dir;
    child worker;
} img_env;

static void img_start(img_env *e)
{
    cr_assert_eq(VIPS_INIT("test_examples"), 0);
    e->s = spoold_start(NULL);
    e->c = client_of(e->s, e->url, sizeof e->url);
    e->dir = make_tmpdir();
    char *argv[] = { IMAGE_RESIZE_PATH, "--url", e->url, "--threads", "2", NULL };
    e->worker = spawn(e->dir, "image-resize", argv);
}

static void img_stop(img_env *e)
{
    int rc = stop_child(&e->worker, 10000);
    char *log = slurp(e->worker.log);
    cr_assert_eq(rc, 0, "image-resize exit status %d on SIGTERM; log:\n%s", rc, log);
    free(log);
    spool_close(e->c);
    spoold_stop(e->s);
    rm_rf(e->dir);
    free(e->dir);
}

/* A w x h test image (a gradient, so encoders have something to do). */
static void make_image(const char *path, int w, int h)
{
    VipsImage *xy = NULL, *img = NULL;
    cr_assert_eq(vips_xyz(&xy, w, h, NULL), 0, "%s", vips_error_buffer());
    cr_assert_eq(vips_cast_uchar(xy, &img, NULL), 0, "%s", vips_error_buffer());
    cr_assert_eq(vips_image_write_to_file(img, path, NULL), 0, "%s", vips_error_buffer());
    g_object_unref(img);
    g_object_unref(xy);
}

static void push_resize(img_env *e, const char *src, const char *dst, int width, char *id)
{
    char payload[1024];
    snprintf(payload, sizeof payload, "{\"src\":\"%s/%s\",\"dst\":\"%s/%s\",\"width\":%d}", e->dir, src,
             e->dir, dst, width);
    cr_assert_eq(spool_push_str(e->c, "thumbnails", payload, NULL, id), 0, "%s", spool_errmsg(e->c));
}

Test(examples, image_resize_makes_thumbnails, .timeout = 120)
{
    img_env e;
    img_start(&e);
    static const struct { const char *src; int w, h; const char *dst; int width; } cases[] = {
        { "a.png", 400, 300, "a-thumb.png", 100 },
        { "b.jpg", 640, 480, "b-thumb.jpg", 160 },
        { "c.png", 300, 600, "c-thumb.webp", 50 },
        { "d.jpg", 200, 100, "d-big.png", 400 },
    };
    enum { NC = sizeof cases / sizeof cases[0] };
    for (int i = 0; i < NC; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s", e.dir, cases[i].src);
        make_image(path, cases[i].w, cases[i].h);
    }
    char ids[NC][SPOOL_ID_MAX];
    for (int i = 0; i < NC; i++)
        push_resize(&e, cases[i].src, cases[i].dst, cases[i].width, ids[i]);
    bool done = wait_until(stats(e.c, "thumbnails").done == NC, 60000);
    cr_assert(done, "done %lld dead %lld; worker log:\n%s", stats(e.c, "thumbnails").done,
              stats(e.c, "thumbnails").dead, slurp(e.worker.log));
    for (int i = 0; i < NC; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s", e.dir, cases[i].dst);
        VipsImage *img = vips_image_new_from_file(path, NULL);
        cr_assert(img, "%s: %s", path, vips_error_buffer());
        int want_h = (int)((double)cases[i].h * cases[i].width / cases[i].w + 0.5);
        cr_assert_eq(vips_image_get_width(img), cases[i].width, "%s", cases[i].dst);
        cr_assert(abs(vips_image_get_height(img) - want_h) <= 1, "%s: height %d, want %d",
                  cases[i].dst, vips_image_get_height(img), want_h);
        g_object_unref(img);
    }
    cr_assert_eq(count_files(e.dir, ".tmp"), 0);
    img_stop(&e);
}

Test(examples, image_resize_fails_corrupt_and_missing_images, .timeout = 120)
{
    img_env e;
    img_start(&e);
    char path[400];
    snprintf(path, sizeof path, "%s/corrupt.png", e.dir);
    FILE *f = fopen(path, "w");
    fputs("this is not a PNG file at all\n", f);
    fclose(f);
    char corrupt[SPOOL_ID_MAX], missing[SPOOL_ID_MAX], badw[SPOOL_ID_MAX];
    push_resize(&e, "corrupt.png", "out1.png", 100, corrupt);
    push_resize(&e, "missing.png", "out2.png", 100, missing);
    push_resize(&e, "corrupt.png", "out3.png", 0, badw);
    bool dead = wait_until(stats(e.c, "thumbnails").dead == 3, 30000);
    cr_assert(dead, "dead %lld; worker log:\n%s", stats(e.c, "thumbnails").dead, slurp(e.worker.log));
    spool_job *j = NULL;
    cr_assert_eq(spool_job_get(e.c, corrupt, &j), 0);
    cr_assert_eq(j->attempt, 1);
    cr_assert(strstr(j->last_error, "cannot read") && strstr(j->last_error, "corrupt.png as an image"),
              "%s", j->last_error);
    spool_job_free(j);
    cr_assert_eq(spool_job_get(e.c, missing, &j), 0);
    cr_assert(strstr(j->last_error, "missing.png: No such file or directory"), "%s", j->last_error);
    spool_job_free(j);
    cr_assert_eq(spool_job_get(e.c, badw, &j), 0);
    cr_assert(strstr(j->last_error, "width must be"), "%s", j->last_error);
    spool_job_free(j);
    snprintf(path, sizeof path, "%s/out1.png", e.dir);
    cr_assert(access(path, F_OK) != 0, "an output was written for a corrupt input");
    img_stop(&e);
}
