/*
 * fmt.h - how `spool` shows values to people: durations ("3m12s"), times
 * (relative and absolute), colours (ANSI, only when the context allows),
 * one-line payload previews; and the one way JSON documents are printed.
 *
 * Functions that return strings write into a caller's buffer and return
 * it, so several can be used in one printf.
 */
#ifndef SPOOL_CLI_FMT_H
#define SPOOL_CLI_FMT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define FMT_BUF 96

/* Wall-clock Unix milliseconds. */
long long fmt_now_ms(void);
/* Milliseconds on the monotonic clock (for intervals). */
double fmt_mono_ms(void);
/* "0s", "850ms", "12s", "3m12s", "2h05m", "3d04h". */
char *fmt_duration(char *buf, size_t cap, long long ms);
/* "3m12s ago (2026-11-27 00:22:07)", "in 5s (…)", "-" for 0. */
char *fmt_when(char *buf, size_t cap, long long unix_ms, long long now_ms);
/* "2026-11-27 00:22:07" in local time. */
char *fmt_clock(char *buf, size_t cap, long long unix_ms);
/* A rate per second with one decimal ("12.5"), "-" when unknown (< 0). */
char *fmt_rate(char *buf, size_t cap, double per_sec);
/* The payload on one line: compact JSON (or the raw text with control
 * characters escaped), cut to at most max characters with "…". */
char *fmt_preview(char *buf, size_t cap, const char *payload, size_t len, size_t max);
/* Plain text (an error message) on one line, control characters escaped,
 * cut to at most max characters with "…". Never read as JSON. */
char *fmt_text(char *buf, size_t cap, const char *text, size_t max);
/* Parses text[0..len) as one JSON document, or NULL when it is not one
 * (a valid prefix followed by more text is not: "550 5.1.1" is text). */
cJSON *fmt_json_parse_whole(const char *text, size_t len);

/* Colours: the escape sequence, or "" when colour is off. */
typedef enum fmt_color { FMT_RESET, FMT_BOLD, FMT_DIM, FMT_RED, FMT_GREEN, FMT_YELLOW,
                         FMT_BLUE, FMT_MAGENTA, FMT_CYAN } fmt_color;
void fmt_set_color(bool on);
const char *fmt_c(fmt_color c);
/* The colour for a job state or event name ("dead" is red, ...). */
fmt_color fmt_state_color(const char *state);

/* Prints item as one line of compact JSON on stdout and frees it. */
void fmt_json_print(cJSON *item);

#endif
