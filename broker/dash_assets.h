/*
 * dash_assets.h - the dashboard's files (broker/dashboard/), embedded at
 * build time by broker/dashboard/embed.py into dash_assets.c.
 */
#ifndef SPOOL_DASH_ASSETS_H
#define SPOOL_DASH_ASSETS_H

#include <stddef.h>

struct dash_asset {
    const char *path;            /* "/index.html", "/app.js", ... */
    const char *type;            /* Content-Type */
    const unsigned char *data;
    size_t len;
    const char *etag;            /* hash of the content, without quotes */
};

extern const struct dash_asset dash_assets[];
extern const int dash_nassets;

#endif
