/*
 * context.c - the address book of thread inboxes (see context.h).
 */
#include "context.h"

#include "xalloc.h"

#include <stdlib.h>

int ctx_init(struct server *srv)
{
    srv->inboxes = xcalloc((size_t)ctx_inboxes(srv), sizeof *srv->inboxes);
    return 0;
}

void ctx_free(struct server *srv)
{
    free(srv->inboxes);
    srv->inboxes = NULL;
}

void ctx_register(struct server *srv, int slot, struct inbox *ib)
{
    srv->inboxes[slot] = ib;
}
