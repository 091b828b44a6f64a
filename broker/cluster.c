/*
 * cluster.c - the slot map: parse, check, dump, keep, route (see cluster.h).
 */
#include "cluster.h"

#include "fsio.h"
#include "queue.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CLUSTER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

static bool valid_word(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] == '"' || s[i] == '\\' || s[i] == ',' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* ------------------------------------------------------------- parsing */

static int parse_node(const cJSON *jn, struct cluster_node *n, const char *gname, char *err, size_t errlen)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(jn, "id");
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(jn, "host");
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(jn, "port");
    if (!cJSON_IsString(id) || !valid_id(id->valuestring))
        return fail(err, errlen, "a node of group '%s' has no valid \"id\" (1 to %d letters and digits)", gname,
                    CLUSTER_ID_MAX);
    if (!cJSON_IsString(host) || !valid_word(host->valuestring, CLUSTER_HOST_MAX))
        return fail(err, errlen, "node %s has no valid \"host\" (1 to %d bytes, no spaces)", id->valuestring,
                    CLUSTER_HOST_MAX);
    if (!cJSON_IsNumber(port) || port->valuedouble < 1 || port->valuedouble > 65535 ||
        port->valuedouble != (int)port->valuedouble)
        return fail(err, errlen, "node %s has no valid \"port\" (1 to 65535)", id->valuestring);
    snprintf(n->id, sizeof n->id, "%s", id->valuestring);
    snprintf(n->host, sizeof n->host, "%s", host->valuestring);
    n->port = (int)port->valuedouble;
    return 0;
}

static int parse_group(const cJSON *jg, struct cluster_group *g, int gi, char *err, size_t errlen)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(jg, "name");
    const cJSON *leader = cJSON_GetObjectItemCaseSensitive(jg, "leader");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(jg, "nodes");
    if (!cJSON_IsString(name) || !valid_word(name->valuestring, CLUSTER_NAME_MAX))
        return fail(err, errlen, "group %d has no valid \"name\" (1 to %d bytes, no spaces)", gi, CLUSTER_NAME_MAX);
    snprintf(g->name, sizeof g->name, "%s", name->valuestring);
    int n = cJSON_IsArray(nodes) ? cJSON_GetArraySize(nodes) : 0;
    if (n < 1 || n > CLUSTER_GROUP_NODES)
        return fail(err, errlen, "group '%s' needs \"nodes\": 1 to %d of them", g->name, CLUSTER_GROUP_NODES);
    g->nnodes = n;
    for (int i = 0; i < n; i++)
        if (parse_node(cJSON_GetArrayItem(nodes, i), &g->nodes[i], g->name, err, errlen) < 0)
            return -1;
    g->leader = cJSON_IsNumber(leader) ? (int)leader->valuedouble : 0;
    if (g->leader < 0 || g->leader >= n)
        return fail(err, errlen, "group '%s': \"leader\" %d is not an index of its %d nodes", g->name, g->leader, n);
    return 0;
}

static int parse_groups(const cJSON *root, struct cluster_map *m, char *err, size_t errlen)
{
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(root, "groups");
    int n = cJSON_IsArray(groups) ? cJSON_GetArraySize(groups) : 0;
    if (n < 1 || n > CLUSTER_GROUPS_MAX)
        return fail(err, errlen, "the map needs \"groups\": 1 to %d of them", CLUSTER_GROUPS_MAX);
    m->ngroups = n;
    for (int i = 0; i < n; i++)
        if (parse_group(cJSON_GetArrayItem(groups, i), &m->groups[i], i, err, errlen) < 0)
            return -1;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            for (int x = 0; x < m->groups[a].nnodes; x++)
                for (int y = 0; y < m->groups[b].nnodes; y++) {
                    if ((a == b && x == y) || strcmp(m->groups[a].nodes[x].id, m->groups[b].nodes[y].id))
                        continue;
                    return fail(err, errlen, "node id %s appears twice in the map", m->groups[a].nodes[x].id);
                }
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (!strcmp(m->groups[a].name, m->groups[b].name))
                return fail(err, errlen, "group name '%s' appears twice in the map", m->groups[a].name);
    return 0;
}

static bool int_in(const cJSON *v, long lo, long hi, long *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != (long)v->valuedouble || v->valuedouble < lo || v->valuedouble > hi)
        return false;
    *out = (long)v->valuedouble;
    return true;
}

static int parse_slots(const cJSON *root, struct cluster_map *m, char *err, size_t errlen)
{
    const cJSON *slots = cJSON_GetObjectItemCaseSensitive(root, "slots");
    if (slots && !cJSON_IsArray(slots))
        return fail(err, errlen, "\"slots\" must be an array of [first, last, group] ranges");
    const cJSON *r;
    cJSON_ArrayForEach(r, slots) {
        long a, b, g;
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != 3 || !int_in(cJSON_GetArrayItem(r, 0), 0, SLOT_COUNT - 1, &a) ||
            !int_in(cJSON_GetArrayItem(r, 1), a, SLOT_COUNT - 1, &b) ||
            !int_in(cJSON_GetArrayItem(r, 2), 0, m->ngroups - 1, &g))
            return fail(err, errlen, "a slot range is not [first, last, group] with 0 <= first <= last <= %d and a "
                        "group index below %d", SLOT_COUNT - 1, m->ngroups);
        for (long s = a; s <= b; s++) {
            if (m->owner[s] >= 0)
                return fail(err, errlen, "slot %ld is assigned twice", s);
            m->owner[s] = (int16_t)g;
        }
    }
    return 0;
}

static int parse_moves(const cJSON *root, struct cluster_map *m, char *err, size_t errlen)
{
    const cJSON *moves = cJSON_GetObjectItemCaseSensitive(root, "moves");
    if (moves && !cJSON_IsArray(moves))
        return fail(err, errlen, "\"moves\" must be an array of {\"slot\", \"to\", \"state\"}");
    const cJSON *mv;
    cJSON_ArrayForEach(mv, moves) {
        long s, to;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(mv, "state");
        if (!int_in(cJSON_GetObjectItemCaseSensitive(mv, "slot"), 0, SLOT_COUNT - 1, &s) ||
            !int_in(cJSON_GetObjectItemCaseSensitive(mv, "to"), 0, m->ngroups - 1, &to) || !cJSON_IsString(st) ||
            (strcmp(st->valuestring, "frozen") && strcmp(st->valuestring, "moving")))
            return fail(err, errlen, "a move is not {\"slot\": 0..%d, \"to\": group index, \"state\": \"frozen\"|\"moving\"}",
                        SLOT_COUNT - 1);
        if (m->owner[s] < 0 || m->owner[s] == to)
            return fail(err, errlen, "slot %ld cannot move to group %ld: it is %s", s, to,
                        m->owner[s] < 0 ? "not assigned" : "already there");
        m->move_to[s] = (int16_t)to;
        m->move_state[s] = strcmp(st->valuestring, "frozen") ? MOVE_MOVING : MOVE_FROZEN;
    }
    return 0;
}

int cluster_parse(const char *json, size_t len, struct cluster_map *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (int s = 0; s < SLOT_COUNT; s++)
        out->owner[s] = out->move_to[s] = -1;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, errlen, "the cluster map is not a JSON object");
    }
    long epoch;
    int rc = 0;
    if (!int_in(cJSON_GetObjectItemCaseSensitive(root, "epoch"), 1, 1L << 52, &epoch))
        rc = fail(err, errlen, "the map needs \"epoch\": a whole number from 1");
    else
        out->epoch = (uint64_t)epoch;
    if (rc == 0)
        rc = parse_groups(root, out, err, errlen);
    if (rc == 0)
        rc = parse_slots(root, out, err, errlen);
    if (rc == 0)
        rc = parse_moves(root, out, err, errlen);
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------- dumping */

int cluster_group_ranges(const struct cluster_map *m, int g, int (*out)[2], int max)
{
    int n = 0;
    for (int s = 0; s < SLOT_COUNT; s++) {
        if (m->owner[s] != g)
            continue;
        if (n > 0 && out[n - 1][1] == s - 1) {
            out[n - 1][1] = s;
        } else if (n < max) {
            out[n][0] = out[n][1] = s;
            n++;
        } else {
            break;
        }
    }
    return n;
}

static cJSON *dump_group(const struct cluster_group *g)
{
    cJSON *jg = cJSON_CreateObject();
    cJSON_AddStringToObject(jg, "name", g->name);
    cJSON_AddNumberToObject(jg, "leader", g->leader);
    cJSON *nodes = cJSON_AddArrayToObject(jg, "nodes");
    for (int i = 0; i < g->nnodes; i++) {
        cJSON *jn = cJSON_CreateObject();
        cJSON_AddStringToObject(jn, "id", g->nodes[i].id);
        cJSON_AddStringToObject(jn, "host", g->nodes[i].host);
        cJSON_AddNumberToObject(jn, "port", g->nodes[i].port);
        cJSON_AddItemToArray(nodes, jn);
    }
    return jg;
}

char *cluster_dump(const struct cluster_map *m)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "epoch", (double)m->epoch);
    cJSON *groups = cJSON_AddArrayToObject(root, "groups");
    for (int g = 0; g < m->ngroups; g++)
        cJSON_AddItemToArray(groups, dump_group(&m->groups[g]));
    cJSON *slots = cJSON_AddArrayToObject(root, "slots");
    for (int s = 0; s < SLOT_COUNT;) {
        int e = s;
        while (e + 1 < SLOT_COUNT && m->owner[e + 1] == m->owner[s])
            e++;
        if (m->owner[s] >= 0) {
            int r[3] = { s, e, m->owner[s] };
            cJSON_AddItemToArray(slots, cJSON_CreateIntArray(r, 3));
        }
        s = e + 1;
    }
    cJSON *moves = cJSON_AddArrayToObject(root, "moves");
    for (int s = 0; s < SLOT_COUNT; s++) {
        if (m->move_to[s] < 0)
            continue;
        cJSON *mv = cJSON_CreateObject();
        cJSON_AddNumberToObject(mv, "slot", s);
        cJSON_AddNumberToObject(mv, "to", m->move_to[s]);
        cJSON_AddStringToObject(mv, "state", m->move_state[s] == MOVE_FROZEN ? "frozen" : "moving");
        cJSON_AddItemToArray(moves, mv);
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

/* ----------------------------------------------------------- node file */

/* {"myself": id, "map": map or null} */
static int save(const struct cluster *cl, const struct cluster_map *m)
{
    char *map = m ? cluster_dump(m) : NULL;
    size_t n = strlen(cl->myid) + (map ? strlen(map) : 4) + 32;
    char *text = xmalloc(n);
    int len = snprintf(text, n, "{\"myself\":\"%s\",\"map\":%s}\n", cl->myid, map ? map : "null");
    int rc = fsio_write_atomic(cl->path, text, (size_t)len);
    free(text);
    cJSON_free(map);
    return rc;
}

static int load(struct cluster *cl, const char *text, size_t len, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *me = cJSON_GetObjectItemCaseSensitive(root, "myself");
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "map");
    int rc = 0;
    if (!cJSON_IsString(me) || !valid_id(me->valuestring)) {
        rc = fail(err, errlen, "%s is damaged: no \"myself\" node id (restore it, or remove it to start as a new node)",
                  cl->path);
    } else {
        snprintf(cl->myid, sizeof cl->myid, "%s", me->valuestring);
    }
    if (rc == 0 && map && !cJSON_IsNull(map)) {
        char *mtext = cJSON_PrintUnformatted(map);
        struct cluster_map *m = xmalloc(sizeof *m);
        char why[256];
        if (cluster_parse(mtext, strlen(mtext), m, why, sizeof why) < 0) {
            rc = fail(err, errlen, "%s holds a bad map: %s", cl->path, why);
            free(m);
        } else {
            atomic_store_explicit(&cl->map, m, memory_order_release);
            job_id_origin_set(cluster_my_group(cl, m));
        }
        cJSON_free(mtext);
    }
    cJSON_Delete(root);
    return rc;
}

static void new_id(char out[CLUSTER_ID_MAX + 1])
{
    unsigned char r[20];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = xrealloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

int cluster_open(struct cluster *cl, const char *data_dir, const char *want_id, char *err, size_t errlen)
{
    memset(cl, 0, sizeof *cl);
    pthread_mutex_init(&cl->lock, NULL);
    size_t n = strlen(data_dir) + 16;
    cl->path = xmalloc(n);
    snprintf(cl->path, n, "%s/cluster.json", data_dir);
    if (want_id && *want_id && !valid_id(want_id))
        return fail(err, errlen, "--cluster-node-id '%s' is not 1 to %d letters and digits", want_id, CLUSTER_ID_MAX);
    size_t len;
    char *text = read_file(cl->path, &len);
    if (!text && errno != ENOENT)
        return fail(err, errlen, "cannot read %s: %s", cl->path, strerror(errno));
    if (text) {
        int rc = load(cl, text, len, err, errlen);
        free(text);
        if (rc == 0 && want_id && *want_id && strcmp(want_id, cl->myid))
            rc = fail(err, errlen, "--cluster-node-id %s differs from the id %s this data directory has in %s "
                      "(a node keeps its id: drop the flag, or use a new data directory)", want_id, cl->myid, cl->path);
        return rc;
    }
    if (want_id && *want_id)
        snprintf(cl->myid, sizeof cl->myid, "%s", want_id);
    else
        new_id(cl->myid);
    int rc = save(cl, NULL);
    if (rc < 0)
        return fail(err, errlen, "cannot write %s: %s", cl->path, strerror(-rc));
    return 0;
}

void cluster_close(struct cluster *cl)
{
    job_id_origin_set(-1);
    free(atomic_load(&cl->map));
    for (size_t i = 0; i < cl->nretired; i++)
        free(cl->retired[i]);
    free(cl->retired);
    free(cl->path);
    pthread_mutex_destroy(&cl->lock);
    memset(cl, 0, sizeof *cl);
}

/* -------------------------------------------------------------- install */

static int install_locked(struct cluster *cl, struct cluster_map *m, char *err, size_t errlen)
{
    struct cluster_map *cur = atomic_load_explicit(&cl->map, memory_order_acquire);
    if (cur && m->epoch <= cur->epoch) {
        char *a = cluster_dump(m), *b = cluster_dump(cur);
        bool same = !strcmp(a, b);
        cJSON_free(a);
        cJSON_free(b);
        if (same)
            return 0;
        return fail(err, errlen, "map epoch %llu is not newer than this node's epoch %llu (a changed map needs a "
                    "higher epoch: see spool cluster info)", (unsigned long long)m->epoch,
                    (unsigned long long)cur->epoch);
    }
    int rc = save(cl, m);
    if (rc < 0)
        return fail(err, errlen, "cannot write %s: %s (the map was not installed)", cl->path, strerror(-rc));
    atomic_store_explicit(&cl->map, m, memory_order_release);
    job_id_origin_set(cluster_my_group(cl, m));
    if (cur) {
        cl->retired = xrealloc(cl->retired, (cl->nretired + 1) * sizeof *cl->retired);
        cl->retired[cl->nretired++] = cur;
    }
    return 1;
}

static uint64_t epoch_of(const struct cluster_map *m)
{
    return m ? m->epoch : 0;
}

enum take { TAKE_NEWER, TAKE_NEWER_QUIETLY, TAKE_IF_AT };

/* Parses json and installs it under the lock: TAKE_NEWER as
 * cluster_install, TAKE_NEWER_QUIETLY as cluster_take_committed, TAKE_IF_AT
 * only while the current map has epoch old (-2 otherwise). */
static int take(struct cluster *cl, const char *json, size_t len, enum take how, uint64_t old, char *err,
                size_t errlen)
{
    struct cluster_map *m = xmalloc(sizeof *m);
    if (cluster_parse(json, len, m, err, errlen) < 0) {
        free(m);
        return -1;
    }
    pthread_mutex_lock(&cl->lock);
    uint64_t cur = epoch_of(atomic_load_explicit(&cl->map, memory_order_acquire));
    int rc = how == TAKE_IF_AT && cur != old ? -2
             : how == TAKE_NEWER_QUIETLY && m->epoch <= cur ? 0
             : install_locked(cl, m, err, errlen);
    pthread_mutex_unlock(&cl->lock);
    if (rc == -2)
        cluster_conflict(cur, old, err, errlen);
    if (rc <= 0)
        free(m);
    return rc;
}

int cluster_install(struct cluster *cl, const char *json, size_t len, char *err, size_t errlen)
{
    return take(cl, json, len, TAKE_NEWER, 0, err, errlen);
}

/* ------------------------------------------------- compare-and-set */

int cluster_check_change(const struct cluster *cl, uint64_t old, const char *json, size_t len, char *err,
                         size_t errlen)
{
    struct cluster_map *m = xmalloc(sizeof *m);
    int rc = cluster_parse(json, len, m, err, errlen);
    if (rc == 0 && m->epoch != old + 1)
        rc = fail(err, errlen, "the new map has epoch %llu; a change made from epoch %llu gives epoch %llu",
                  (unsigned long long)m->epoch, (unsigned long long)old, (unsigned long long)old + 1);
    if (rc == 0 && !cluster_current(cl) && cluster_my_group(cl, m) != 0)
        rc = fail(err, errlen, "this node has no map yet and is not in the new map's first group (%s), which "
                  "keeps the map: send the first map to a node of that group", m->groups[0].name);
    free(m);
    return rc;
}

int cluster_cas(struct cluster *cl, uint64_t old, const char *json, size_t len, char *err, size_t errlen)
{
    if (cluster_check_change(cl, old, json, len, err, errlen) < 0)
        return -1;
    return take(cl, json, len, TAKE_IF_AT, old, err, errlen);
}

void cluster_conflict(uint64_t cur, uint64_t old, char *err, size_t errlen)
{
    fail(err, errlen, "the slot map is at epoch %llu, this change was made from epoch %llu: another change came "
         "first; nothing was changed: read the map again and run the command again",
         (unsigned long long)cur, (unsigned long long)old);
}

int cluster_take_committed(struct cluster *cl, const char *json, size_t len, char *err, size_t errlen)
{
    return take(cl, json, len, TAKE_NEWER_QUIETLY, 0, err, errlen);
}

/* -------------------------------------------------------------- routing */

void cluster_set_leader_hook(struct cluster *cl, cluster_leader_fn fn, void *arg)
{
    cl->leader_of = fn;
    cl->leader_arg = arg;
}

int cluster_leader(const struct cluster *cl, const struct cluster_map *m, int g)
{
    if (g < 0 || g >= m->ngroups)
        return -1;
    int l = cl->leader_of ? cl->leader_of(cl->leader_arg, m, g) : m->groups[g].leader;
    return l >= 0 && l < m->groups[g].nnodes ? l : -1;
}

int cluster_my_group(const struct cluster *cl, const struct cluster_map *m)
{
    for (int g = 0; g < m->ngroups; g++)
        for (int i = 0; i < m->groups[g].nnodes; i++)
            if (!strcmp(m->groups[g].nodes[i].id, cl->myid))
                return g;
    return -1;
}

/* Whether this node leads group g now; *to: the leader (NULL unknown). */
static bool leads(const struct cluster *cl, const struct cluster_map *m, int g, const struct cluster_node **to)
{
    int l = cluster_leader(cl, m, g);
    *to = l >= 0 ? &m->groups[g].nodes[l] : NULL;
    return *to && !strcmp((*to)->id, cl->myid);
}

enum cluster_verdict cluster_route(const struct cluster *cl, const struct cluster_map *m, int slot, bool asking,
                                   const struct cluster_node **to)
{
    *to = NULL;
    if (!m || slot < 0 || slot >= SLOT_COUNT || m->owner[slot] < 0)
        return ROUTE_DOWN;
    int g = m->owner[slot];
    if (!leads(cl, m, g, to)) {
        const struct cluster_node *target;
        if (m->move_to[slot] < 0 || !leads(cl, m, m->move_to[slot], &target))
            return *to ? ROUTE_MOVED : ROUTE_NOLEADER;
        /* moving here: served to ASKING once it is MOVING; else the next
         * step's map is on its way (the first group, which keeps the map,
         * may have it before this node: docs/cluster.md) */
        return asking && m->move_state[slot] == MOVE_MOVING ? ROUTE_SERVE : ROUTE_TRYAGAIN;
    }
    if (m->move_state[slot] == MOVE_FROZEN)
        return ROUTE_TRYAGAIN;
    if (m->move_state[slot] == MOVE_MOVING) {
        int t = cluster_leader(cl, m, m->move_to[slot]);
        if (t < 0)
            return ROUTE_NOLEADER;
        *to = &m->groups[m->move_to[slot]].nodes[t];
        return ROUTE_ASK;
    }
    return ROUTE_SERVE;
}
