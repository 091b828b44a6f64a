/*
 * image-resize - a spool worker that makes thumbnails of the jobs of queue
 * `thumbnails` with libvips.
 *
 * Payload: {"src": "in.jpg", "dst": "out.png", "width": 200}. The output
 * is `width` pixels wide with the source's aspect ratio, in the format
 * dst's extension names (.jpg, .png, .webp, ... whatever this libvips
 * saves). It is written next to dst under a temporary name and renamed
 * into place, so a reader never sees half an image; running a job twice
 * (at-least-once delivery) just writes the same file again.
 *
 * Outcome: done; or fail (the job goes dead) with a clear last_error when
 * the payload is wrong, the source is missing or not a readable image, or
 * the output cannot be written. Nothing here is worth retrying: a missing
 * file does not appear by waiting. (Return SPOOL_RETRY for a source on a
 * network share that may come back, if that is your setup.)
 *
 * Settings, flag or environment: --url / SPOOL_URL, --threads N,
 * --queue NAME. Stops cleanly on SIGTERM/SIGINT.
 *
 * Threads: the runtime's worker threads call libvips concurrently (it is
 * thread-safe); each calls vips_thread_shutdown() before it exits. The
 * operation cache is off: a file rewritten under the same name must be
 * read again.
 */
#include <spool.h>
#include <vips/vips.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WIDTH 10000

/* The vips error text (taken and cleared), without the trailing newline. */
static void vips_reason(char *out, size_t cap)
{
    char *e = vips_error_buffer_copy();
    size_t n = e ? strlen(e) : 0;
    while (n > 0 && (e[n - 1] == '\n' || e[n - 1] == ' '))
        n--;
    for (size_t i = 0; i < n; i++)
        if (e[i] == '\n')
            e[i] = ' ';
    snprintf(out, cap, "%.*s", (int)n, e ? e : "");
    g_free(e);
}

/* A temporary name next to dst with the same extension. */
static void temp_name(char *out, size_t cap, const char *dst, const char *id)
{
    char *d1 = strdup(dst), *d2 = strdup(dst);
    snprintf(out, cap, "%s/.%s.tmp-%s", dirname(d1), id, basename(d2));
    free(d1);
    free(d2);
}

static int resize(const char *src, const char *dst, int width, const char *id, spool_ctx *ctx)
{
    char why[600];
    if (access(src, R_OK) != 0) {
        spool_ctx_set_error(ctx, "source image %s: %s", src, strerror(errno));
        return SPOOL_FAIL;
    }
    VipsImage *out = NULL;
    if (vips_thumbnail(src, &out, width, "height", VIPS_MAX_COORD, "size", VIPS_SIZE_BOTH, NULL) != 0) {
        vips_reason(why, sizeof why);
        spool_ctx_set_error(ctx, "cannot read %s as an image: %s", src, why);
        return SPOOL_FAIL;
    }
    char tmp[4200];
    temp_name(tmp, sizeof tmp, dst, id);
    int rc = vips_image_write_to_file(out, tmp, NULL);
    g_object_unref(out);
    if (rc != 0) {
        vips_reason(why, sizeof why);
        unlink(tmp);
        spool_ctx_set_error(ctx, "cannot write %s: %s", dst, why);
        return SPOOL_FAIL;
    }
    if (rename(tmp, dst) != 0) {
        spool_ctx_set_error(ctx, "cannot move the thumbnail to %s: %s", dst, strerror(errno));
        unlink(tmp);
        return SPOOL_FAIL;
    }
    return SPOOL_OK;
}

static int handle(spool_job *job, spool_ctx *ctx, void *arg)
{
    (void)arg;
    const char *src = spool_job_json_str(job, "src");
    const char *dst = spool_job_json_str(job, "dst");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(spool_job_json(job), "width");
    if (!src || !dst || !src[0] || !dst[0] || !cJSON_IsNumber(w)) {
        spool_ctx_set_error(ctx, "payload needs \"src\" and \"dst\" (strings) and \"width\" (a number)");
        return SPOOL_FAIL;
    }
    if (w->valuedouble < 1 || w->valuedouble > MAX_WIDTH || w->valuedouble != (int)w->valuedouble) {
        spool_ctx_set_error(ctx, "width must be a whole number from 1 to %d", MAX_WIDTH);
        return SPOOL_FAIL;
    }
    return resize(src, dst, (int)w->valuedouble, job->id, ctx);
}

static void thread_stop(int idx, void *arg)
{
    (void)idx;
    (void)arg;
    vips_thread_shutdown();
}

static void usage(FILE *out)
{
    fprintf(out, "usage: image-resize [--url spool://host:port] [--threads N] [--queue thumbnails]\n"
                 "environment: SPOOL_URL\n");
}

int main(int argc, char **argv)
{
    const char *url = NULL, *queue = "thumbnails";
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "image-resize: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *f = argv[i], *v = argv[++i];
        if (!strcmp(f, "--url")) url = v;
        else if (!strcmp(f, "--queue")) queue = v;
        else if (!strcmp(f, "--threads")) threads = atoi(v);
        else {
            fprintf(stderr, "image-resize: unknown flag %s\n", f);
            usage(stderr);
            return 2;
        }
    }
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "image-resize: --threads must be 1..64\n");
        return 2;
    }
    if (VIPS_INIT(argv[0]) != 0) {
        fprintf(stderr, "image-resize: cannot start libvips: %s\n", vips_error_buffer());
        return 1;
    }
    vips_cache_set_max(0);
    const char *queues[] = { queue, NULL };
    spool_worker_config cfg = {
        .url = url, .queues = queues, .handler = handle, .threads = threads,
        .log_level = SPOOL_LOG_INFO, .name = "image-resize", .thread_stop = thread_stop,
    };
    spool_worker *w = NULL;
    int rc = spool_worker_new(&w, &cfg);
    if (rc < 0) {
        fprintf(stderr, "image-resize: %s (check --url / SPOOL_URL)\n", spool_strerror(rc));
        return 2;
    }
    rc = spool_worker_run(w);
    spool_worker_counters ct;
    spool_worker_counters_get(w, &ct);
    spool_worker_free(w);
    vips_shutdown();
    printf("image-resize: %lld resized, %lld failed\n", ct.done, ct.failed);
    return rc == 0 ? 0 : 1;
}
