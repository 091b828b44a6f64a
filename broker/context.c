/*
 * context.c - the address book of thread inboxes (see context.h).
 */
#include "context.h"

#include "log.h"
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

void ctx_disk_update(struct server *srv, long long measured)
{
    long long fake = atomic_load(&srv->disk_free_fake);
    long long free_b = fake >= 0 ? fake : measured;
    bool low = free_b >= 0 && srv->cfg.disk_reserve > 0 && free_b < srv->cfg.disk_reserve;
    atomic_store(&srv->disk_free, free_b);
    if (atomic_exchange(&srv->disk_low, low) == low)
        return;
    if (low)
        log_warn("disk low: %lld bytes free where the data directory %s is, below disk-reserve (%lld): pushes are "
                 "refused (-FULL) until space is freed; reserve, ack and delete keep working", free_b,
                 srv->cfg.data_dir, (long long)srv->cfg.disk_reserve);
    else
        log_info("disk space is back above disk-reserve (%lld bytes free): pushes are accepted again", free_b);
}
