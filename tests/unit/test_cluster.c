/*
 * test_cluster.c - the slot map alone (broker/cluster.c): its checks, the
 * route of a slot (serve, MOVED, ASK, TRYAGAIN, no leader, down) with the
 * leader hook the replication layer registers, the node file; the slot
 * tags (slot.c) and the tagged ids (queue.c).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "queue.h"
#include "slot.h"

#define MAP_AB(epoch, moves)                                                                                     \
    "{\"epoch\":" #epoch ",\"groups\":[{\"name\":\"a\",\"leader\":0,\"nodes\":[{\"id\":\"me\",\"host\":\"h1\","  \
    "\"port\":1},{\"id\":\"peer\",\"host\":\"h2\",\"port\":2}]},{\"name\":\"b\",\"nodes\":[{\"id\":\"x\","        \
    "\"host\":\"h3\",\"port\":3}]}],\"slots\":[[0,99,0],[100,16383,1]],\"moves\":" moves "}"

static char dir[] = "/tmp/spool-cluster-unit-XXXXXX";
static struct cluster cl;

static void open_node(void)
{
    cr_assert(mkdtemp(dir));
    char err[256];
    cr_assert_eq(cluster_open(&cl, dir, "me", err, sizeof err), 0, "%s", err);
}

static void close_node(void)
{
    cluster_close(&cl);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cluster_map, .init = open_node, .fini = close_node);

static void install(const char *json, int want)
{
    char err[256] = "";
    cr_assert_eq(cluster_install(&cl, json, strlen(json), err, sizeof err), want, "%s", err);
}

static enum cluster_verdict route(int slot, bool asking, const char **host)
{
    const struct cluster_node *to;
    enum cluster_verdict v = cluster_route(&cl, cluster_current(&cl), slot, asking, &to);
    *host = to ? to->host : "";
    return v;
}

Test(cluster_map, routes_by_the_named_leader)
{
    const char *h;
    cr_assert_eq(route(5, false, &h), ROUTE_DOWN, "no map yet");
    install(MAP_AB(1, "[]"), 1);
    cr_assert_eq(route(5, false, &h), ROUTE_SERVE);
    cr_assert_eq(route(100, false, &h), ROUTE_MOVED);
    cr_assert_str_eq(h, "h3");
    cr_assert_eq(cluster_my_group(&cl, cluster_current(&cl)), 0);
}

static int hook_answer;

static int leader_hook(void *arg, const struct cluster_map *m, int g)
{
    (void)arg;
    return g == 0 ? hook_answer : m->groups[g].leader;
}

Test(cluster_map, the_leader_hook_decides)
{
    const char *h;
    install(MAP_AB(1, "[]"), 1);
    cluster_set_leader_hook(&cl, leader_hook, NULL);
    hook_answer = 1; /* the peer won an election */
    cr_assert_eq(route(5, false, &h), ROUTE_MOVED);
    cr_assert_str_eq(h, "h2");
    hook_answer = -1; /* an election runs */
    cr_assert_eq(route(5, false, &h), ROUTE_NOLEADER);
    hook_answer = 0;
    cr_assert_eq(route(5, false, &h), ROUTE_SERVE);
}

Test(cluster_map, moves_freeze_then_ask)
{
    const char *h;
    install(MAP_AB(1, "[]"), 1);
    install(MAP_AB(2, "[{\"slot\":5,\"to\":1,\"state\":\"frozen\"}]"), 1);
    cr_assert_eq(route(5, false, &h), ROUTE_TRYAGAIN);
    cr_assert_eq(route(6, false, &h), ROUTE_SERVE);
    install(MAP_AB(3, "[{\"slot\":5,\"to\":1,\"state\":\"moving\"},{\"slot\":200,\"to\":0,\"state\":\"moving\"}]"), 1);
    cr_assert_eq(route(5, false, &h), ROUTE_ASK);
    cr_assert_str_eq(h, "h3");
    cr_assert_eq(route(200, false, &h), ROUTE_TRYAGAIN, "the map giving it here may be on its way");
    cr_assert_eq(route(200, true, &h), ROUTE_SERVE, "ASKING for a slot moving here");
}

/* A slot on its way here answers -TRYAGAIN, not -MOVED back to its source:
 * the first group has each step's map a moment before the others. */
Test(cluster_map, a_slot_moving_here_waits)
{
    const char *h;
    install(MAP_AB(1, "[{\"slot\":200,\"to\":0,\"state\":\"frozen\"}]"), 1);
    cr_assert_eq(route(200, true, &h), ROUTE_TRYAGAIN, "frozen: not served even to ASKING");
    cr_assert_eq(route(200, false, &h), ROUTE_TRYAGAIN);
    cr_assert_eq(route(300, false, &h), ROUTE_MOVED, "a slot not moving: to its owner");
    cr_assert_str_eq(h, "h3");
}

static int cas(uint64_t old, const char *json, char *err, size_t cap)
{
    return cluster_cas(&cl, old, json, strlen(json), err, cap);
}

/* The map's first group keeps it: a change made from epoch N is taken
 * only while the map is at N, and makes N + 1. */
Test(cluster_map, compare_and_set)
{
    char err[300] = "";
    const char *theirs = "{\"epoch\":1,\"groups\":[{\"name\":\"b\",\"nodes\":[{\"id\":\"x\",\"host\":\"h3\","
                         "\"port\":3}]},{\"name\":\"a\",\"nodes\":[{\"id\":\"me\",\"host\":\"h1\",\"port\":1}]}]}";
    cr_assert_eq(cas(0, theirs, err, sizeof err), -1);
    cr_assert(strstr(err, "no map yet and is not in the new map's first group (b)"), "%s", err);
    cr_assert_eq(cas(0, MAP_AB(1, "[]"), err, sizeof err), 1, "%s", err);
    cr_assert_eq(cas(0, MAP_AB(1, "[]"), err, sizeof err), -2);
    cr_assert(strstr(err, "the slot map is at epoch 1, this change was made from epoch 0"), "%s", err);
    cr_assert_eq(cas(1, MAP_AB(3, "[]"), err, sizeof err), -1);
    cr_assert(strstr(err, "a change made from epoch 1 gives epoch 2"), "%s", err);
    cr_assert_eq(cas(1, MAP_AB(2, "[{\"slot\":5,\"to\":1,\"state\":\"frozen\"}]"), err, sizeof err), 1, "%s", err);
    cr_assert_eq(cas(1, MAP_AB(2, "[]"), err, sizeof err), -2, "the second change made from epoch 1 loses");
    cr_assert_eq(cluster_current(&cl)->move_state[5], MOVE_FROZEN, "the first one stands");
}

/* A map committed by the first group (its log, a snapshot, a pull) is
 * taken only when newer: a replay of older entries changes nothing. */
Test(cluster_map, committed_maps_newer_only)
{
    char err[300] = "";
    const char *m3 = MAP_AB(3, "[]"), *m2 = MAP_AB(2, "[{\"slot\":5,\"to\":1,\"state\":\"frozen\"}]");
    cr_assert_eq(cluster_take_committed(&cl, m3, strlen(m3), err, sizeof err), 1, "%s", err);
    cr_assert_eq(cluster_take_committed(&cl, m2, strlen(m2), err, sizeof err), 0);
    cr_assert_eq(cluster_take_committed(&cl, m3, strlen(m3), err, sizeof err), 0);
    const char *other3 = MAP_AB(3, "[{\"slot\":6,\"to\":1,\"state\":\"frozen\"}]");
    cr_assert_eq(cluster_take_committed(&cl, other3, strlen(other3), err, sizeof err), 0, "%s", err);
    cr_assert_eq(cluster_current(&cl)->epoch, 3);
    cr_assert_eq(cluster_current(&cl)->move_state[6], MOVE_NONE);
    cr_assert_eq(cluster_current(&cl)->move_state[5], MOVE_NONE);
    cr_assert_eq(cluster_take_committed(&cl, "{", 1, err, sizeof err), -1);
}

Test(cluster_map, epochs_and_bad_maps)
{
    install(MAP_AB(4, "[]"), 1);
    install(MAP_AB(4, "[]"), 0);
    install(MAP_AB(3, "[]"), -1);
    install(MAP_AB(4, "[{\"slot\":5,\"to\":1,\"state\":\"frozen\"}]"), -1);
    const char *bad[] = {
        "[]", "{\"epoch\":0}", MAP_AB(5, "[{\"slot\":5,\"to\":0,\"state\":\"moving\"}]"),
        MAP_AB(5, "[{\"slot\":5,\"to\":1,\"state\":\"sideways\"}]"),
        "{\"epoch\":5,\"groups\":[{\"name\":\"a\",\"nodes\":[{\"id\":\"me\",\"host\":\"h\",\"port\":1},"
        "{\"id\":\"me\",\"host\":\"h\",\"port\":2}]}]}",
        "{\"epoch\":5,\"groups\":[{\"name\":\"a\",\"nodes\":[{\"id\":\"n-1\",\"host\":\"h\",\"port\":1}]}]}",
        "{\"epoch\":5,\"groups\":[{\"name\":\"a\",\"nodes\":[{\"id\":\"n\",\"host\":\"h\",\"port\":70000}]}]}",
        "{\"epoch\":5,\"groups\":[{\"name\":\"a\",\"leader\":2,\"nodes\":[{\"id\":\"n\",\"host\":\"h\",\"port\":7}]}]}",
        "{\"epoch\":5,\"groups\":[{\"name\":\"a\",\"nodes\":[{\"id\":\"n\",\"host\":\"h\",\"port\":7}]}],"
        "\"slots\":[[5,4,0]]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        install(bad[i], -1);
    cr_assert_eq(cluster_current(&cl)->epoch, 4);
}

Test(cluster_map, the_node_file_keeps_id_and_map)
{
    install(MAP_AB(7, "[]"), 1);
    cluster_close(&cl);
    char err[256];
    cr_assert_eq(cluster_open(&cl, dir, "", err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(cl.myid, "me");
    cr_assert_eq(cluster_current(&cl)->epoch, 7);
    char *json = cluster_dump(cluster_current(&cl));
    cr_assert(strstr(json, "\"slots\":[[0,99,0],[100,16383,1]]"), "%s", json);
    free(json);
    cluster_close(&cl);
    cr_assert_eq(cluster_open(&cl, dir, "other", err, sizeof err), -1);
    cr_assert(strstr(err, "differs from the id me"), "%s", err);
}

Test(slot_tags, every_slot_has_a_short_tag_that_hashes_to_it)
{
    for (int s = 0; s < SLOT_COUNT; s++) {
        char tag[SLOT_TAG_MAX + 1], key[SLOT_TAG_MAX + 8];
        size_t n = slot_tag(s, tag);
        cr_assert(n >= 1 && n <= SLOT_TAG_MAX, "slot %d: tag '%s'", s, tag);
        snprintf(key, sizeof key, "{%s}x", tag);
        cr_assert_eq(slot_of(key, strlen(key)), s, "slot %d: tag '%s' hashes to %d", s, tag, slot_of(key, strlen(key)));
    }
}

Test(slot_tags, ids_carry_the_tag_of_their_queue_in_cluster_mode)
{
    struct queue q = { .name = "emails", .namelen = 6 };
    struct job j = { .q = &q, .id = 0x0194f2a3b4c5d007ULL };
    char text[JOB_ID_TEXT];
    job_id_tagging(true);
    size_t n = job_id_text(&j, text);
    job_id_tagging(false);
    cr_assert_eq(text[0], '{');
    cr_assert_eq(slot_of(text, n), slot_of("emails", 6), "%s", text);
    cr_assert_str_eq(strchr(text, '}') + 1, "0194f2a3b4c5d007");
    uint64_t id;
    uint32_t attempt;
    char receipt[64];
    snprintf(receipt, sizeof receipt, "%s-3", text);
    cr_assert(job_id_parse(receipt, strlen(receipt), &id, &attempt));
    cr_assert_eq(id, j.id);
    cr_assert_eq(attempt, 3);
    cr_assert_not(job_id_parse("{}0194f2a3b4c5d007", 18, &id, &attempt), "an empty tag");
    cr_assert_not(job_id_parse("{abcdef}0194f2a3b4c5d007", 24, &id, &attempt), "a tag longer than any slot's");
    job_id_text(&j, text);
    cr_assert_str_eq(text, "0194f2a3b4c5d007", "standalone: 16 hex digits");
}
