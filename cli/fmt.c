/*
 * fmt.c - see fmt.h. Local time for absolute times (operators read their
 * own clock), integer arithmetic for durations.
 */
#include "fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool color_on;

long long fmt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double fmt_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ============================================================ durations */

char *fmt_duration(char *buf, size_t cap, long long ms)
{
    if (ms < 0)
        ms = -ms;
    long long s = ms / 1000, m = s / 60, h = m / 60, d = h / 24;
    if (ms < 1000)
        snprintf(buf, cap, "%lldms", ms);
    else if (s < 60)
        snprintf(buf, cap, "%llds", s);
    else if (m < 60)
        snprintf(buf, cap, "%lldm%02llds", m, s % 60);
    else if (h < 24)
        snprintf(buf, cap, "%lldh%02lldm", h, m % 60);
    else
        snprintf(buf, cap, "%lldd%02lldh", d, h % 24);
    if (!strcmp(buf, "0ms"))
        snprintf(buf, cap, "0s");
    return buf;
}

char *fmt_clock(char *buf, size_t cap, long long unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

char *fmt_when(char *buf, size_t cap, long long unix_ms, long long now_ms)
{
    if (unix_ms <= 0) {
        snprintf(buf, cap, "-");
        return buf;
    }
    char d[32], c[32];
    fmt_duration(d, sizeof d, now_ms - unix_ms);
    fmt_clock(c, sizeof c, unix_ms);
    if (unix_ms > now_ms)
        snprintf(buf, cap, "in %s (%s)", d, c);
    else
        snprintf(buf, cap, "%s ago (%s)", d, c);
    return buf;
}

char *fmt_rate(char *buf, size_t cap, double per_sec)
{
    if (per_sec < 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.1f", per_sec);
    return buf;
}

/* ============================================================= previews */

/* Appends s to buf (cap bytes), escaping control characters. */
static size_t append_escaped(char *buf, size_t cap, size_t at, const char *s, size_t len)
{
    for (size_t i = 0; i < len && at + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            at += (size_t)snprintf(buf + at, cap - at, "\\x%02x", ch);
        else
            buf[at++] = (char)ch;
    }
    buf[at] = '\0';
    return at;
}

/* Cuts buf to max characters (UTF-8 aware), ending in "…". */
static void cut_chars(char *buf, size_t cap, size_t max)
{
    size_t chars = 0, i = 0;
    for (; buf[i]; i++) {
        if (((unsigned char)buf[i] & 0xC0) != 0x80 && ++chars > max)
            break;
    }
    if (!buf[i] || max < 1)
        return;
    /* step back one character to make room for the ellipsis */
    size_t j = i;
    do
        j--;
    while (j > 0 && ((unsigned char)buf[j] & 0xC0) == 0x80);
    if (j + 4 <= cap)
        memcpy(buf + j, "\xe2\x80\xa6", 4);
}

cJSON *fmt_json_parse_whole(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!j)
        return NULL;
    /* cJSON stops after the first value: "550 5.1.1 no such user" parses
     * as the number 550. Only trailing white space may follow. */
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(j);
            return NULL;
        }
    }
    return j;
}

char *fmt_text(char *buf, size_t cap, const char *text, size_t max)
{
    buf[0] = '\0';
    if (text)
        append_escaped(buf, cap, 0, text, strlen(text));
    cut_chars(buf, cap, max);
    return buf;
}

char *fmt_preview(char *buf, size_t cap, const char *payload, size_t len, size_t max)
{
    buf[0] = '\0';
    cJSON *j = fmt_json_parse_whole(payload, len);
    char *compact = j ? cJSON_PrintUnformatted(j) : NULL;
    if (compact)
        append_escaped(buf, cap, 0, compact, strlen(compact));
    else
        append_escaped(buf, cap, 0, payload, len);
    free(compact);
    cJSON_Delete(j);
    cut_chars(buf, cap, max);
    return buf;
}

/* =============================================================== colour */

void fmt_set_color(bool on)
{
    color_on = on;
}

const char *fmt_c(fmt_color c)
{
    static const char *const seq[] = {
        [FMT_RESET] = "\033[0m", [FMT_BOLD] = "\033[1m", [FMT_DIM] = "\033[2m",
        [FMT_RED] = "\033[31m", [FMT_GREEN] = "\033[32m", [FMT_YELLOW] = "\033[33m",
        [FMT_BLUE] = "\033[34m", [FMT_MAGENTA] = "\033[35m", [FMT_CYAN] = "\033[36m",
    };
    return color_on ? seq[c] : "";
}

fmt_color fmt_state_color(const char *state)
{
    static const struct { const char *name; fmt_color c; } map[] = {
        { "ready", FMT_GREEN },   { "pushed", FMT_GREEN },   { "reserved", FMT_YELLOW },
        { "delayed", FMT_CYAN },  { "retried", FMT_CYAN },   { "expired", FMT_MAGENTA },
        { "dead", FMT_RED },      { "done", FMT_DIM },       { "acked", FMT_BLUE },
        { "lease-expired", FMT_MAGENTA },
    };
    for (size_t i = 0; state && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].name, state))
            return map[i].c;
    return FMT_RESET;
}

/* ================================================================= JSON */

void fmt_json_print(cJSON *item)
{
    char *s = item ? cJSON_PrintUnformatted(item) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(item);
    fflush(stdout);
}
