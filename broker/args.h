/*
 * args.h - the argument parsers every command uses: one copy each.
 *
 * Contracts layer: reads a message's request (msg.h) and calls only the
 * ground (proto/'s number parser, the clock). Handlers on any thread use
 * these; none of them replies or allocates.
 */
#ifndef SPOOL_ARGS_H
#define SPOOL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

struct msg;

/* True when argv[i] exists and equals s, ignoring case. */
bool arg_is(const struct msg *m, int i, const char *s);

/* argv[i] as a strict decimal (resp_parse_ll); false when it is missing or
 * not a number. */
bool arg_ll(const struct msg *m, int i, long long *out);

/* argv[i] as a number in [min, max]; false when missing, no number or out
 * of range. */
bool arg_range(const struct msg *m, int i, long long min, long long max, long long *out);

/* argv[i] as a Redis blocking timeout: seconds, decimals allowed, 0 =
 * forever. Sets *deadline (unix ms, 0 = forever) and returns 0, -ERANGE
 * when negative, -EINVAL when it is no number. */
int arg_timeout(const struct msg *m, int i, int64_t *deadline);

/* argv[i] as a float: decimal, exponent, inf/+inf/-inf (any case); false
 * when missing, NaN or no number. */
bool arg_double(const struct msg *m, int i, double *out);

#endif
