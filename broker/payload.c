/*
 * payload.c - see payload.h.
 */
#include "payload.h"

#include <cjson/cJSON.h>

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

bool payload_is_json(const char *p, size_t n, size_t *err_at)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(p, n, &end, 0);
    if (!v) {
        size_t at = end && end >= p ? (size_t)(end - p) : 0;
        *err_at = at > n ? n : at;
        return false;
    }
    cJSON_Delete(v);
    size_t at = (size_t)(end - p);
    while (at < n && is_ws(p[at]))
        at++;
    if (at < n) {
        *err_at = at; /* something follows the value */
        return false;
    }
    return true;
}
