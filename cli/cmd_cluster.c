/*
 * cmd_cluster.c - `spool cluster create|add-group|move-slots|info`: the
 * slot map of a spoold cluster (docs/cluster.md), after `redis-cli
 * --cluster` in spirit.
 *
 * The map is JSON (CLUSTER GETMAP shows it); every change makes a copy
 * with the next epoch and commits it through the map's first group, which
 * keeps the map (CLUSTER CASMAP on its leader: taken only if the map is
 * still at the epoch the change was made from, so of two changes at once
 * one wins and the other is told to run again), then sends it to every
 * other node with CLUSTER SETMAP (a node keeps the map with the highest
 * epoch, and asks the first group for a newer one every second). Moving
 * slots goes batch by batch through three maps: the slots frozen (their node answers
 * -TRYAGAIN) while each slot's contents are exported from the source's
 * leader (SLOTMOVE EXPORT parks them there as one blob) and imported on
 * the target's (SLOTMOVE IMPORT), then moving (-ASK to the target) while
 * the source drops its parked copy, then owned by the target. The map
 * and the parked blobs record every step, so running a move again
 * finishes one cut short (docs/cluster.md, "Moving slots").
 */
#include "cli.h"
#include "cluster_map.h"
#include "fmt.h"
#include "rawinfo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 16384


/* ------------------------------------------------------------ create */

static cJSON *make_group(int i, cJSON *nodes)
{
    char name[32];
    snprintf(name, sizeof name, "g%d", i + 1);
    cJSON *g = cJSON_CreateObject();
    cJSON_AddStringToObject(g, "name", name);
    cJSON_AddNumberToObject(g, "leader", 0);
    cJSON_AddItemToObject(g, "nodes", nodes);
    return g;
}

/* spool cluster create ADDR... [--replicas N] */
static int cluster_create(cli_ctx *x)
{
    long long replicas = 0;
    const char *r = args_get(x->a, "replicas");
    int naddr = x->a->npos - 1;
    if (r && args_int(r, 0, 6, &replicas) < 0)
        return cli_fail(CLI_USAGE, "cluster create: --replicas takes 0 to 6 (nodes per group beside the leader)");
    if (naddr < 1 || naddr % (int)(replicas + 1))
        return cli_fail(CLI_USAGE, "cluster create: %d node(s) do not make groups of %lld (--replicas %lld + 1)",
                        naddr, replicas + 1, replicas);
    int ngroups = naddr / (int)(replicas + 1), first = 0;
    double per = (double)SLOTS / ngroups, cursor = 0; /* redis-cli --cluster create's split */
    cJSON *map = cJSON_CreateObject(), *groups = cJSON_CreateArray(), *slots = cJSON_CreateArray();
    cJSON_AddNumberToObject(map, "epoch", 1);
    cJSON_AddItemToObject(map, "groups", groups);
    cJSON_AddItemToObject(map, "slots", slots);
    for (int g = 0; g < ngroups; g++) {
        cJSON *nodes = cJSON_CreateArray();
        for (int i = 0; i <= replicas; i++) {
            cJSON *n = new_node(x, x->a->pos[1 + g * (replicas + 1) + i]);
            if (!n) {
                cJSON_Delete(nodes);
                cJSON_Delete(map);
                return CLI_REFUSED;
            }
            cJSON_AddItemToArray(nodes, n);
        }
        cJSON_AddItemToArray(groups, make_group(g, nodes));
        int last = g == ngroups - 1 ? SLOTS - 1 : (int)lround(cursor + per - 1);
        int range[3] = { first, last < first ? first : last, g };
        cJSON_AddItemToArray(slots, cJSON_CreateIntArray(range, 3));
        first = range[1] + 1;
        cursor += per;
    }
    int failed = commit_map(x, map, NULL, 0) < 0;
    if (!failed)
        printf("cluster created: %d group(s) of %lld node(s), 16384 slots, map epoch 1\n", ngroups, replicas + 1);
    cJSON_Delete(map);
    return failed ? CLI_REFUSED : CLI_OK;
}

/* ----------------------------------------------------------- add-group */

static int group_index(const cJSON *map, const char *name)
{
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(map, "groups");
    for (int g = 0; g < cJSON_GetArraySize(groups); g++)
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(groups, g), "name")->valuestring, name))
            return g;
    return -1;
}


/* The map of the node at pos[1], or the newer one its first group keeps;
 * NULL after printing why. */
static cJSON *cluster_map_of(cli_ctx *x)
{
    bool failed;
    cJSON *map = node_map(x, x->a->pos[1], &failed);
    if (!map && !failed)
        cli_fail(CLI_REFUSED, "cluster: %s has no slot map yet (spool cluster create makes one)", x->a->pos[1]);
    return newest_map(x, map);
}

/* spool cluster add-group ADDR NEWADDR... */
static int cluster_add_group(cli_ctx *x)
{
    if (x->a->npos < 3)
        return cli_fail(CLI_USAGE, "cluster add-group ADDR NEWADDR...: give a node of the cluster and the new "
                        "group's nodes (its leader first)");
    cJSON *old = cluster_map_of(x);
    if (!old)
        return CLI_REFUSED;
    cJSON *map = next_epoch(old);
    cJSON_Delete(old);
    cJSON *groups = cJSON_GetObjectItemCaseSensitive(map, "groups"), *nodes = cJSON_CreateArray();
    int g = cJSON_GetArraySize(groups), rc = CLI_OK;
    for (int i = 2; i < x->a->npos && rc == CLI_OK; i++) {
        cJSON *n = new_node(x, x->a->pos[i]);
        if (n)
            cJSON_AddItemToArray(nodes, n);
        else
            rc = CLI_REFUSED;
    }
    cJSON *group = make_group(g, nodes);
    while (group_index(map, cJSON_GetObjectItemCaseSensitive(group, "name")->valuestring) >= 0) {
        char name[32];
        snprintf(name, sizeof name, "g%d", ++g + 1);
        cJSON_ReplaceItemInObjectCaseSensitive(group, "name", cJSON_CreateString(name));
    }
    cJSON_AddItemToArray(groups, group);
    if (rc == CLI_OK && commit_map(x, map, NULL, 0) < 0)
        rc = CLI_REFUSED;
    if (rc == CLI_OK)
        printf("group %s added with %d node(s) and no slots, map epoch %lld (spool cluster move-slots gives it "
               "slots)\n", cJSON_GetObjectItemCaseSensitive(group, "name")->valuestring, x->a->npos - 2,
               map_epoch(map));
    cJSON_Delete(map);
    return rc;
}

/* ---------------------------------------------------------- move-slots */

static void map_owners(const cJSON *map, int *owner)
{
    for (int s = 0; s < SLOTS; s++)
        owner[s] = -1;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(map, "slots")) {
        int a = (int)cJSON_GetArrayItem(r, 0)->valuedouble, b = (int)cJSON_GetArrayItem(r, 1)->valuedouble;
        for (int s = a; s <= b && s >= 0 && s < SLOTS; s++)
            owner[s] = (int)cJSON_GetArrayItem(r, 2)->valuedouble;
    }
}

static void set_owners(cJSON *map, const int *owner)
{
    cJSON *slots = cJSON_CreateArray();
    for (int s = 0; s < SLOTS;) {
        int e = s;
        while (e + 1 < SLOTS && owner[e + 1] == owner[s])
            e++;
        int range[3] = { s, e, owner[s] };
        if (owner[s] >= 0)
            cJSON_AddItemToArray(slots, cJSON_CreateIntArray(range, 3));
        s = e + 1;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(map, "slots", slots);
}

/* The moves of map: to[s] the group slot s moves to (-1 none), state[s] 1
 * frozen, 2 moving. */
static void map_moves(const cJSON *map, int *to, int *state)
{
    for (int s = 0; s < SLOTS; s++)
        to[s] = -1, state[s] = 0;
    const cJSON *mv;
    cJSON_ArrayForEach(mv, cJSON_GetObjectItemCaseSensitive(map, "moves")) {
        int s = (int)cJSON_GetObjectItemCaseSensitive(mv, "slot")->valuedouble;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(mv, "state");
        if (s < 0 || s >= SLOTS)
            continue;
        to[s] = (int)cJSON_GetObjectItemCaseSensitive(mv, "to")->valuedouble;
        state[s] = cJSON_IsString(st) && !strcmp(st->valuestring, "moving") ? 2 : 1;
    }
}

/* The next map: the slots in list (n of them) in state ("frozen",
 * "moving") toward group to, owned by to (state NULL), or out of any move
 * (state "none"). The other slots keep their moves. */
static cJSON *move_map(const cJSON *prev, const int *list, int n, int to, const char *state)
{
    cJSON *map = next_epoch(prev), *moves = cJSON_CreateArray();
    int *owner = malloc(3 * SLOTS * sizeof *owner), *mto = owner + SLOTS, *mst = owner + 2 * SLOTS;
    map_owners(map, owner);
    map_moves(map, mto, mst);
    for (int i = 0; i < n; i++) {
        int s = list[i];
        if (!state)
            owner[s] = to, mto[s] = -1;
        else if (!strcmp(state, "none"))
            mto[s] = -1;
        else
            mto[s] = to, mst[s] = strcmp(state, "frozen") ? 2 : 1;
    }
    for (int s = 0; s < SLOTS; s++) {
        if (mto[s] < 0)
            continue;
        cJSON *mv = cJSON_CreateObject();
        cJSON_AddNumberToObject(mv, "slot", s);
        cJSON_AddNumberToObject(mv, "to", mto[s]);
        cJSON_AddStringToObject(mv, "state", mst[s] == 2 ? "moving" : "frozen");
        cJSON_AddItemToArray(moves, mv);
    }
    set_owners(map, owner);
    cJSON_ReplaceItemInObjectCaseSensitive(map, "moves", moves);
    free(owner);
    return map;
}

/* The slots to move: --range A-B (the source's; those the target has
 * already are skipped), else the first --count N of the source (less
 * `done`, moved already by finishing a move cut short). Returns how many,
 * or minus the exit code after printing why. */
static int pick_slots(cli_ctx *x, const cJSON *map, int from, int to, int done, int *list)
{
    int *owner = malloc(SLOTS * sizeof *owner), n = 0, a = 0, b = -1;
    map_owners(map, owner);
    const char *range = args_get(x->a, "range"), *count = args_get(x->a, "count");
    long long want = SLOTS;
    if ((!range) == (!count) || (range && (sscanf(range, "%d-%d", &a, &b) != 2 || a < 0 || b < a || b >= SLOTS)) ||
        (count && args_int(count, 1, SLOTS, &want) < 0)) {
        free(owner);
        return -cli_fail(CLI_USAGE, "cluster move-slots: give --count N (1..16384) or --range A-B (0 <= A <= B <= "
                         "16383)");
    }
    want -= done;
    for (int s = range ? a : 0; s < SLOTS && (range ? s <= b : n < want); s++) {
        if (owner[s] == from) {
            list[n++] = s;
        } else if (range && owner[s] != to) {
            free(owner);
            return -cli_fail(CLI_REFUSED, "cluster move-slots: slot %d is not the source group's", s);
        }
    }
    free(owner);
    if (n == 0 && !done)
        return -cli_fail(CLI_REFUSED, "cluster move-slots: the source group has no slots to move");
    return n;
}

static void leader_addr(const cJSON *map, int g, char *out, size_t n)
{
    const cJSON *group = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(map, "groups"), g);
    int l = (int)cJSON_GetObjectItemCaseSensitive(group, "leader")->valuedouble;
    node_addr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(group, "nodes"), l), out, n);
}

/* One move between two groups: the map as it goes, the serving node of
 * each side (a connection kept to each), and what was measured. */
struct mover {
    cli_ctx *x;
    cJSON *map;
    int from, to, nshards;
    char src[300], dst[300];
    struct rawconn *sc, *dc;
    int batches, slots, parts;
    long long bytes;
    double freeze_max, freeze_sum, ask_max;
};

/* Which node of group g serves it now: the one whose CLUSTER NODES line
 * for itself says master (the Raft leader in a replicated group). */
static int serving_addr(cli_ctx *x, const cJSON *map, int g, char *out, size_t n)
{
    const cJSON *group = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(map, "groups"), g), *node;
    cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(group, "nodes")) {
        char addr[300], err[512], *text = NULL;
        const char *argv[] = { "CLUSTER", "NODES" };
        node_addr(node, addr, sizeof addr);
        if (rawinfo_command(addr, x->url ? x->url : getenv("SPOOL_URL"), 2, argv, NODE_TIMEOUT_S, &text, err,
                            sizeof err) < 0)
            continue;
        bool leads = text && strstr(text, "myself,master");
        free(text);
        if (leads) {
            snprintf(out, n, "%s", addr);
            return 0;
        }
    }
    return cli_fail(CLI_REFUSED, "cluster move-slots: no node of group %s says it leads it (an election runs, or "
                    "its nodes are down): try again", cJSON_GetObjectItemCaseSensitive(group, "name")->valuestring);
}

/* The shard count of the node at addr (INFO server), -1 unknown. */
static int node_shards(cli_ctx *x, const char *addr)
{
    char *text = NULL, err[512];
    int n = -1;
    if (rawinfo_fetch(addr, x->url ? x->url : getenv("SPOOL_URL"), "server", &text, err, sizeof err) == 0) {
        const char *p = strstr(text, "\nshards:");
        n = p ? atoi(p + 8) : -1;
    }
    free(text);
    return n;
}

/* Finds both sides' serving nodes and connects to them; checks they have
 * the same shard count (job ids name their shard). */
static int mover_open(struct mover *mv)
{
    char err[512];
    const char *url = mv->x->url ? mv->x->url : getenv("SPOOL_URL");
    if (serving_addr(mv->x, mv->map, mv->from, mv->src, sizeof mv->src) < 0 ||
        serving_addr(mv->x, mv->map, mv->to, mv->dst, sizeof mv->dst) < 0)
        return -1;
    int a = node_shards(mv->x, mv->src), b = node_shards(mv->x, mv->dst);
    if (a < 0 || a != b)
        return cli_fail(CLI_REFUSED, "cluster move-slots: %s has %d shards and %s has %d: job ids name their shard, "
                        "so both sides of a move need the same --shards", mv->src, a, mv->dst, b);
    mv->nshards = a;
    if (!(mv->sc = rawconn_open(mv->src, url, NODE_TIMEOUT_S, err, sizeof err)) ||
        !(mv->dc = rawconn_open(mv->dst, url, NODE_TIMEOUT_S, err, sizeof err)))
        return cli_fail(CLI_REFUSED, "cluster move-slots: %s", err);
    return 0;
}

static void mover_close(struct mover *mv)
{
    rawconn_close(mv->sc);
    rawconn_close(mv->dc);
    mv->sc = mv->dc = NULL;
}

static const char *side(const struct mover *mv, const struct rawconn *c)
{
    return c == mv->sc ? mv->src : mv->dst;
}

/* Sends SLOTMOVE sub slot [blob [APPEND]] on c (its reply is read with
 * slotmove_reply): 0, or -1 after printing why. */
static int slotmove_send(struct mover *mv, struct rawconn *c, const char *sub, int slot, const char *blob, size_t len,
                         bool append)
{
    char num[16], err[512];
    snprintf(num, sizeof num, "%d", slot);
    const char *argv[] = { "SLOTMOVE", sub, num, blob, "APPEND" };
    size_t lens[] = { 8, strlen(sub), strlen(num), len, 6 };
    if (rawconn_send(c, blob ? 4 + append : 3, argv, lens, err, sizeof err) == 0)
        return 0;
    cli_fail(CLI_REFUSED, "cluster move-slots: SLOTMOVE %s %d at %s: %s", sub, slot, side(mv, c), err);
    return -1;
}

/* The reply of a SLOTMOVE sent on c, or NULL after printing why (an error
 * reply or a broken connection). */
static resp_val *slotmove_reply(struct mover *mv, struct rawconn *c, const char *sub, int slot)
{
    char err[512];
    resp_val *v = NULL;
    if (rawconn_read(c, &v, err, sizeof err) < 0) {
        cli_fail(CLI_REFUSED, "cluster move-slots: SLOTMOVE %s %d at %s: %s", sub, slot, side(mv, c), err);
        return NULL;
    }
    if (v->type == RESP_T_ERROR) {
        cli_fail(CLI_REFUSED, "cluster move-slots: SLOTMOVE %s %d at %s: %s", sub, slot, side(mv, c), v->str);
        resp_val_free(v);
        return NULL;
    }
    return v;
}

static resp_val *slotmove(struct mover *mv, struct rawconn *c, const char *sub, int slot, const char *blob,
                          size_t len, bool append)
{
    if (slotmove_send(mv, c, sub, slot, blob, len, append) < 0)
        return NULL;
    return slotmove_reply(mv, c, sub, slot);
}

/* Test seam: SPOOL_MOVE_DIE_AT=STEP:K ends the process (exit 9, as if
 * killed) right after the K-th STEP (export, import, moving, drop), so a
 * test can cut a move short at a chosen point and run it again. */
static void die_at(const char *what)
{
    static int count;
    const char *at = getenv("SPOOL_MOVE_DIE_AT");
    size_t n = strlen(what);
    if (at && !strncmp(at, what, n) && at[n] == ':' && ++count == atoi(at + n + 1)) {
        fprintf(stderr, "spool: SPOOL_MOVE_DIE_AT=%s: stopping here\n", at);
        _exit(9);
    }
}

/* SLOTMOVE sub for every slot of list, pipelined on c: out[i] the reply
 * for list[i] (NULL after printing why; out NULL: replies dropped); die
 * names the step for the test seam. */
static int pipeline(struct mover *mv, struct rawconn *c, const char *sub, const int *list, int n, resp_val **out,
                    const char *die)
{
    int sent = 0, rc = 0;
    while (sent < n && slotmove_send(mv, c, sub, list[sent], NULL, 0, false) == 0)
        sent++;
    for (int i = 0; i < sent; i++) {
        resp_val *v = slotmove_reply(mv, c, sub, list[i]);
        rc |= v ? 0 : -1;
        if (out)
            out[i] = v;
        else
            resp_val_free(v);
        die_at(die);
    }
    return sent == n ? rc : -1;
}

/* EXPORT of every slot of the batch on the source (each slot's live copy
 * is parked there): parts[i] the reply for list[i]. */
static int export_batch(struct mover *mv, const int *list, int n, resp_val **parts)
{
    int rc = pipeline(mv, mv->sc, "EXPORT", list, n, parts, "export");
    for (int i = 0; rc == 0 && i < n; i++) {
        if (parts[i]->type == RESP_T_ARRAY && parts[i]->n > 0)
            continue;
        cli_fail(CLI_REFUSED, "cluster move-slots: %s answered SLOTMOVE EXPORT %d with no parts", mv->src, list[i]);
        rc = -1;
    }
    return rc;
}

/* IMPORT of every part of every slot, pipelined on the target. */
static int import_batch(struct mover *mv, const int *list, int n, resp_val **parts)
{
    int rc = 0, sent = 0, want = 0;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < parts[i]->n; k++, want++) {
            resp_val *p = parts[i]->elem[k];
            if (p->type == RESP_T_BULK && slotmove_send(mv, mv->dc, "IMPORT", list[i], p->str, p->len, k > 0) == 0)
                sent++;
            mv->bytes += (long long)p->len;
            mv->parts++;
        }
    for (int i = 0, r = 0; i < n && r < sent; i++) {
        for (size_t k = 0; k < parts[i]->n && r < sent; k++, r++) {
            resp_val *ok = slotmove_reply(mv, mv->dc, "IMPORT", list[i]);
            rc |= ok ? 0 : -1;
            resp_val_free(ok);
        }
        die_at("import");
    }
    return sent == want ? rc : -1;
}

/* Export from the source (parked there), import on the target. */
static int copy_batch(struct mover *mv, const int *list, int n)
{
    resp_val **parts = calloc((size_t)n, sizeof *parts);
    int rc = export_batch(mv, list, n, parts);
    if (rc == 0)
        rc = import_batch(mv, list, n, parts);
    for (int i = 0; i < n; i++)
        resp_val_free(parts[i]);
    free(parts);
    return rc;
}

/* A copy failed: what the target took of the batch is removed (an empty
 * import), the source takes its parked blobs back, and the slots leave the
 * move. If that fails too, the map keeps them frozen: running the move
 * again finishes it. */
static void give_up(struct mover *mv, const int *list, int n, const int *order)
{
    unsigned char empty[16] = "SPSLOT1\n";
    bool back = true;
    for (int i = 0; i < n && back; i++) {
        for (int k = 0; k < 4; k++)
            empty[8 + k] = (unsigned char)(list[i] >> (8 * k)), empty[12 + k] = (unsigned char)(mv->nshards >> (8 * k));
        resp_val_free(slotmove(mv, mv->dc, "IMPORT", list[i], (const char *)empty, sizeof empty, false));
        resp_val *v = slotmove(mv, mv->sc, "RESTORE", list[i], NULL, 0, false);
        back = v != NULL;
        resp_val_free(v);
    }
    cJSON *none = back ? move_map(mv->map, list, n, mv->to, "none") : NULL;
    if (none && commit_map(mv->x, none, order, 2) == 0)
        fprintf(stderr, "spool: the %d slot(s) of this batch stay with the source, unfrozen, as they were\n", n);
    else
        fprintf(stderr, "spool: slots of this batch stay frozen: run the same move-slots again to finish it\n");
    cJSON_Delete(none);
}

/* Pushes next (a step of the move) and makes it the current map. */
static int step(struct mover *mv, cJSON *next, const int *order)
{
    cJSON_Delete(mv->map);
    mv->map = next;
    return commit_map(mv->x, next, order, 2);
}

/* One batch, from where the map has it: stage 0 not started, 1 frozen
 * (copy it), 2 moving (the target has it: drop the source's copy). */
static int move_batch(struct mover *mv, const int *list, int n, int stage)
{
    int src_first[2] = { mv->from, mv->to }, dst_first[2] = { mv->to, mv->from };
    double t0 = fmt_mono_ms(), t1;
    if (stage == 0 && step(mv, move_map(mv->map, list, n, mv->to, "frozen"), src_first) < 0)
        return -1;
    if (stage <= 1 && copy_batch(mv, list, n) < 0) {
        give_up(mv, list, n, src_first);
        return -1;
    }
    if (stage <= 1 && step(mv, move_map(mv->map, list, n, mv->to, "moving"), dst_first) < 0)
        return -1;
    if (stage <= 1)
        die_at("moving");
    t1 = fmt_mono_ms();
    if (stage == 0) {
        mv->freeze_max = t1 - t0 > mv->freeze_max ? t1 - t0 : mv->freeze_max;
        mv->freeze_sum += t1 - t0;
    }
    if (pipeline(mv, mv->sc, "DROP", list, n, NULL, "drop") < 0) /* the parked copies go */
        return -1;
    if (step(mv, move_map(mv->map, list, n, mv->to, NULL), dst_first) < 0)
        return -1;
    mv->ask_max = fmt_mono_ms() - t1 > mv->ask_max ? fmt_mono_ms() - t1 : mv->ask_max;
    mv->batches++;
    mv->slots += n;
    return 0;
}

/* The slots of list in batches of `batch`, from stage. */
static int move_list(struct mover *mv, const int *list, int n, int stage, int batch)
{
    for (int i = 0; i < n; i += batch)
        if (move_batch(mv, list + i, n - i < batch ? n - i : batch, stage) < 0)
            return -1;
    return 0;
}

/* Moves left half-done by an earlier run (the map's "moves"), pair by
 * pair of groups. *same counts those that went from->to. */
static int finish_pending(cli_ctx *x, cJSON **map, int from, int to, int batch, int *same)
{
    int *owner = malloc(3 * SLOTS * sizeof *owner), *mto = owner + SLOTS, *mst = owner + 2 * SLOTS, rc = 0;
    int *list = malloc(SLOTS * sizeof *list);
    map_owners(*map, owner);
    map_moves(*map, mto, mst);
    *same = 0;
    for (int s0 = 0; s0 < SLOTS && rc == 0; s0++) {
        if (mto[s0] < 0)
            continue;
        struct mover mv = { .x = x, .map = *map, .from = owner[s0], .to = mto[s0] };
        rc = mover_open(&mv);
        for (int stage = 1; stage <= 2 && rc == 0; stage++) {
            int n = 0;
            for (int s = s0; s < SLOTS; s++)
                if (mto[s] == mv.to && owner[s] == mv.from && mst[s] == stage)
                    list[n++] = s, mto[s] = -1;
            if (n)
                fprintf(stderr, "spool: finishing %d slot(s) left %s by an earlier move\n", n,
                        stage == 1 ? "frozen" : "moving");
            rc = move_list(&mv, list, n, stage, batch);
            *same += mv.from == from && mv.to == to ? n : 0;
        }
        mover_close(&mv);
        *map = mv.map;
    }
    free(owner);
    free(list);
    return rc;
}

static void print_moved(const struct mover *mv, int n, double ms)
{
    printf("moved %d of %d slot(s) from %s to %s in %.0f ms (%d batch(es), %d part(s), %lld bytes), map epoch "
           "%lld\n", mv->slots, n, mv->src, mv->dst, ms, mv->batches, mv->parts, mv->bytes, map_epoch(mv->map));
    if (mv->batches)
        printf("slots answered -TRYAGAIN for %.0f ms per batch at most (%.0f ms on average), then -ASK for %.0f ms "
               "at most\n", mv->freeze_max, mv->freeze_sum / mv->batches, mv->ask_max);
}

/* spool cluster move-slots ADDR --from GROUP --to GROUP (--count N | --range A-B) [--batch N] */
static int cluster_move(cli_ctx *x)
{
    cJSON *map = cluster_map_of(x);
    if (!map)
        return CLI_REFUSED;
    const char *fname = args_get(x->a, "from"), *tname = args_get(x->a, "to"), *bs = args_get(x->a, "batch");
    int from = fname ? group_index(map, fname) : -1, to = tname ? group_index(map, tname) : -1, done = 0, n = -1;
    long long batch = 50;
    int *list = malloc(SLOTS * sizeof *list), rc = CLI_REFUSED;
    double t0 = fmt_mono_ms();
    if (from < 0 || to < 0 || from == to)
        rc = cli_fail(CLI_USAGE, "cluster move-slots: --from and --to must name two groups of the map (spool cluster "
                      "info lists them)");
    else if (bs && args_int(bs, 1, SLOTS, &batch) < 0)
        rc = cli_fail(CLI_USAGE, "cluster move-slots: --batch takes 1 to 16384 (slots frozen together)");
    else if (finish_pending(x, &map, from, to, (int)batch, &done) == 0 &&
             (n = pick_slots(x, map, from, to, done, list)) < 0)
        rc = -n;
    if (n >= 0) {
        struct mover mv = { .x = x, .map = map, .from = from, .to = to };
        int ok = n == 0 ? 0 : mover_open(&mv);
        if (ok == 0)
            ok = move_list(&mv, list, n, 0, (int)batch);
        map = mv.map;
        mover_close(&mv);
        if (ok == 0) {
            first_group_catches_up(x, mv.map);
            print_moved(&mv, n, fmt_mono_ms() - t0);
            rc = CLI_OK;
        }
    }
    free(list);
    cJSON_Delete(map);
    return rc;
}

/* ---------------------------------------------------------------- info */

static int count_slots(const cJSON *map, int g)
{
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(map, "slots"))
        if ((int)cJSON_GetArrayItem(r, 2)->valuedouble == g)
            n += (int)cJSON_GetArrayItem(r, 1)->valuedouble - (int)cJSON_GetArrayItem(r, 0)->valuedouble + 1;
    return n;
}

/* Asks every node of the map for its map's epoch; prints those that
 * differ. Returns how many differ or cannot be asked. */
static int check_nodes(cli_ctx *x, const cJSON *map, bool print)
{
    int bad = 0, nodes = 0;
    const cJSON *group, *node;
    cJSON_ArrayForEach(group, cJSON_GetObjectItemCaseSensitive(map, "groups"))
        cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(group, "nodes")) {
            char addr[300];
            bool failed;
            node_addr(node, addr, sizeof addr);
            cJSON *has = node_map(x, addr, &failed);
            nodes++;
            if (!failed && map_epoch(has) != map_epoch(map))
                fprintf(stderr, "spool: %s has map epoch %lld, not %lld (a node takes the map from the first group "
                        "within a second of reaching it)\n", addr, map_epoch(has), map_epoch(map));
            bad += failed || map_epoch(has) != map_epoch(map);
            cJSON_Delete(has);
        }
    if (print && !bad)
        printf("all %d node(s) agree on map epoch %lld\n", nodes, map_epoch(map));
    return bad;
}

/* spool cluster info ADDR */
static int cluster_info(cli_ctx *x)
{
    cJSON *map = cluster_map_of(x);
    if (!map)
        return CLI_REFUSED;
    if (x->json) {
        int bad = check_nodes(x, map, false);
        fmt_json_print(map);
        return bad ? CLI_REFUSED : CLI_OK;
    }
    printf("map epoch %lld (kept by group %s, the first: changed through its leader, committed in its Raft log "
           "when it is replicated)\n", map_epoch(map), cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(
           cJSON_GetObjectItemCaseSensitive(map, "groups"), 0), "name")->valuestring);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(map, "groups");
    for (int g = 0; g < cJSON_GetArraySize(groups); g++) {
        const cJSON *group = cJSON_GetArrayItem(groups, g), *node;
        char lead[300];
        leader_addr(map, g, lead, sizeof lead);
        printf("group %s: %d slot(s), leader %s, nodes:", cJSON_GetObjectItemCaseSensitive(group, "name")->valuestring,
               count_slots(map, g), lead);
        cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(group, "nodes")) {
            char addr[300];
            node_addr(node, addr, sizeof addr);
            printf(" %s (%s)", addr, cJSON_GetObjectItemCaseSensitive(node, "id")->valuestring);
        }
        printf("\n");
    }
    int moves = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(map, "moves"));
    if (moves)
        printf("%d slot(s) in the middle of a move (run the move again to finish it)\n", moves);
    int bad = check_nodes(x, map, true);
    cJSON_Delete(map);
    return bad || moves ? CLI_REFUSED : CLI_OK;
}

/* spool cluster create|add-group|move-slots|info ... */
int cmd_cluster(cli_ctx *x)
{
    const char *sub = x->a->pos[0];
    if (x->a->npos < 2)
        return cli_fail(CLI_USAGE, "cluster %s: give the address (host:port) of a node", sub);
    if (!strcmp(sub, "create"))
        return cluster_create(x);
    if (!strcmp(sub, "add-group"))
        return cluster_add_group(x);
    if (!strcmp(sub, "move-slots"))
        return cluster_move(x);
    if (!strcmp(sub, "info"))
        return cluster_info(x);
    if (!strcmp(sub, "add-replica") || !strcmp(sub, "remove-replica") || !strcmp(sub, "replicas") ||
        !strcmp(sub, "transfer-leader"))
        return cluster_replicas(x, sub); /* a replication group's members: cmd_replicas.c */
    return cli_fail(CLI_USAGE, "cluster: unknown subcommand '%s' (create, add-group, move-slots, info, add-replica, "
                    "remove-replica, replicas or transfer-leader)", sub);
}
