/*
 * test_cluster.c - cluster mode on one spoold (docs/cluster.md): the slot
 * map installed with CLUSTER SETMAP (epochs: the highest wins), routing
 * (-MOVED, -CROSSSLOT, -ASK with ASKING, -TRYAGAIN, -CLUSTERDOWN), job
 * ids and receipts tagged with their slot, the CLUSTER replies, COMMAND
 * GETKEYS, the map and node id kept across a restart. The other node of
 * the map is only named (127.0.0.1:1): a redirect to it is all it gets.
 * tests/cluster/run-suite runs real clients against three real nodes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(cluster, .timeout = 60);

#define ME "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define OTHER "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
/* Slots of these keys: "{bar}…" 5061 (this node's half), "{foo}…" 12182
 * (the other node's). */
#define MINE_SLOT 5061
#define THEIRS_SLOT 12182

/* A map: this node (at port) serves 0-8191, OTHER at 127.0.0.1:1 the rest;
 * moves is the JSON of the "moves" array. */
static char *map_json(int port, int epoch, const char *moves)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"epoch\":%d,\"groups\":[{\"name\":\"a\",\"leader\":0,\"nodes\":[{\"id\":\"" ME "\",\"host\":"
             "\"127.0.0.1\",\"port\":%d}]},{\"name\":\"b\",\"leader\":0,\"nodes\":[{\"id\":\"" OTHER "\",\"host\":"
             "\"127.0.0.1\",\"port\":1}]}],\"slots\":[[0,8191,0],[8192,16383,1]],\"moves\":%s}",
             epoch, port, moves ? moves : "[]");
    return buf;
}

static spoold *start_node(void)
{
    return spoold_start("--cluster", "yes", "--cluster-node-id", ME, "--shards", "2", NULL);
}

static void set_map(cli *c, int port, int epoch, const char *moves)
{
    expect_int(CMD(c, "CLUSTER", "SETMAP", map_json(port, epoch, moves)), 1);
}

static void expect_error_text(resp_val *v, const char *text)
{
    cr_assert(v && v->type == RESP_T_ERROR, "expected -%s, got %s", text, resp_describe(v));
    cr_assert_str_eq(v->str, text);
    resp_val_free(v);
}

Test(cluster, no_map_yet_means_clusterdown)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    expect_bulk(CMD(c, "CLUSTER", "MYID"), ME);
    expect_error(CMD(c, "GET", "{bar}k"), "CLUSTERDOWN Hash slot not served");
    resp_val *v = CMD(c, "CLUSTER", "SLOTS");
    cr_assert_eq(v->type, RESP_T_ARRAY);
    cr_assert_eq(v->n, 0);
    resp_val_free(v);
    v = CMD(c, "CLUSTER", "INFO");
    cr_assert(strstr(v->str, "cluster_state:fail\r\n"), "%s", v->str);
    resp_val_free(v);
    expect_simple(CMD(c, "PING"), "PONG"); /* commands without keys are served */
    cli_close(c);
    spoold_stop(s);
}

Test(cluster, moved_crossslot_and_served)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    set_map(c, s->port, 1, NULL);
    expect_ok(CMD(c, "SET", "{bar}k", "v"));
    expect_bulk(CMD(c, "GET", "{bar}k"), "v");
    expect_error_text(CMD(c, "GET", "{foo}k"), "MOVED 12182 127.0.0.1:1");
    expect_error_text(CMD(c, "MGET", "{bar}a", "{foo}b"), "CROSSSLOT Keys in request don't hash to the same slot");
    expect_error_text(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "{bar}q1", "{foo}q2"),
                      "CROSSSLOT Keys in request don't hash to the same slot");
    resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "{bar}q1", "{bar}q2");
    cr_assert_eq(v->type, RESP_T_NULL, "%s", resp_describe(v));
    resp_val_free(v);
    /* inside MULTI a redirect aborts the transaction, as in Redis */
    expect_ok(CMD(c, "MULTI"));
    expect_error(CMD(c, "GET", "{foo}k"), "MOVED");
    expect_error(CMD(c, "EXEC"), "EXECABORT");
    expect_int(CMD(c, "CLUSTER", "KEYSLOT", "{foo}zz"), THEIRS_SLOT);
    expect_int(CMD(c, "CLUSTER", "KEYSLOT", "{bar}zz"), MINE_SLOT);
    cli_close(c);
    spoold_stop(s);
}

/* The "{tag}" that starts an id: the slot it hashes to. */
static long long tag_slot(cli *c, const char *id)
{
    resp_val *v = CMD(c, "CLUSTER", "KEYSLOT", id);
    long long n = v->integer;
    resp_val_free(v);
    return n;
}

Test(cluster, ids_and_receipts_carry_their_slot)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    set_map(c, s->port, 1, NULL);
    resp_val *v = CMD(c, "JOB.PUSH", "{bar}jobs", "{\"n\":1}");
    cr_assert_eq(v->type, RESP_T_BULK, "%s", resp_describe(v));
    char id[64];
    snprintf(id, sizeof id, "%s", v->str);
    resp_val_free(v);
    cr_assert(id[0] == '{' && strchr(id, '}'), "id %s has no {tag}", id);
    cr_assert_eq(strlen(strchr(id, '}') + 1), 16, "id %s: 16 hex digits after the tag", id);
    cr_assert_eq(tag_slot(c, id), MINE_SLOT, "id %s hashes to its queue's slot", id);
    v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "{bar}jobs");
    cr_assert_eq(v->type, RESP_T_ARRAY);
    const resp_val *job = v->elem[0];
    cr_assert_str_eq(job->elem[1]->str, id);
    char receipt[80];
    snprintf(receipt, sizeof receipt, "%s", job->elem[3]->str);
    resp_val_free(v);
    cr_assert_eq(tag_slot(c, receipt), MINE_SLOT, "receipt %s", receipt);
    expect_int(CMD(c, "JOB.ACK", receipt), 1);
    EXPECT_STATE(c, id, "done");
    EXPECT_STATE(c, strchr(id, '}') + 1, "done"); /* the bare id still works on its node */
    /* an id tagged with another node's slot is redirected without a lookup */
    char foreign[80];
    snprintf(foreign, sizeof foreign, "{foo}%s", strchr(id, '}') + 1);
    expect_error_text(CMD(c, "JOB.GET", foreign), "MOVED 12182 127.0.0.1:1");
    expect_error_text(CMD(c, "JOB.ACK", receipt, foreign), "CROSSSLOT Keys in request don't hash to the same slot");
    expect_error(CMD(c, "BATCH.NEW"), "ERR batches are not available in cluster mode");
    cli_close(c);
    spoold_stop(s);
}

Test(cluster, tryagain_then_ask_during_a_move)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    set_map(c, s->port, 1, NULL);
    char moves[200];
    snprintf(moves, sizeof moves, "[{\"slot\":%d,\"to\":1,\"state\":\"frozen\"}]", MINE_SLOT);
    set_map(c, s->port, 2, moves);
    expect_error(CMD(c, "GET", "{bar}k"), "TRYAGAIN");
    snprintf(moves, sizeof moves, "[{\"slot\":%d,\"to\":1,\"state\":\"moving\"},"
             "{\"slot\":%d,\"to\":0,\"state\":\"moving\"}]", MINE_SLOT, THEIRS_SLOT);
    set_map(c, s->port, 3, moves);
    expect_error_text(CMD(c, "GET", "{bar}k"), "ASK 5061 127.0.0.1:1");
    /* a slot moving here: served after ASKING (for one command); without
     * it -TRYAGAIN (the map that gives it to this node may still be on its
     * way), never -MOVED back to the source, which may send the client here */
    expect_error(CMD(c, "SET", "{foo}k", "v"), "TRYAGAIN slot 12182");
    expect_ok(CMD(c, "ASKING"));
    expect_ok(CMD(c, "SET", "{foo}k", "v"));
    expect_error(CMD(c, "GET", "{foo}k"), "TRYAGAIN");
    resp_val *v = CMD(c, "CLUSTER", "NODES");
    cr_assert(strstr(v->str, "[5061->-" OTHER "]"), "%s", v->str);
    cr_assert(strstr(v->str, "[12182-<-" OTHER "]"), "%s", v->str);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

/* CLUSTER CASMAP: a change of the map made from the epoch it read, taken
 * only while the map is still at that epoch (docs/cluster.md, "The slot
 * map"): of two changes made from one epoch the first wins, the second is
 * told to run again and changes nothing. */
Test(cluster, casmap_the_first_change_wins)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    expect_int(CMD(c, "CLUSTER", "CASMAP", "0", map_json(s->port, 1, NULL)), 1); /* the first map */
    expect_error(CMD(c, "CLUSTER", "CASMAP", "0", map_json(s->port, 1, NULL)),
                 "ERR map conflict: the slot map is at epoch 1, this change was made from epoch 0: another change "
                 "came first; nothing was changed: read the map again and run the command again");
    char moves[100];
    snprintf(moves, sizeof moves, "[{\"slot\":%d,\"to\":1,\"state\":\"frozen\"}]", MINE_SLOT);
    expect_int(CMD(c, "CLUSTER", "CASMAP", "1", map_json(s->port, 2, moves)), 1);
    expect_error(CMD(c, "GET", "{bar}k"), "TRYAGAIN"); /* in force once answered */
    expect_error(CMD(c, "CLUSTER", "CASMAP", "1", map_json(s->port, 2, NULL)), "ERR map conflict: the slot map is at "
                 "epoch 2, this change was made from epoch 1");
    expect_error(CMD(c, "CLUSTER", "CASMAP", "2", map_json(s->port, 4, NULL)), "ERR cluster map refused: the new map "
                 "has epoch 4; a change made from epoch 2 gives epoch 3");
    expect_error(CMD(c, "CLUSTER", "CASMAP", "two", map_json(s->port, 3, NULL)), "ERR CLUSTER CASMAP: the epoch the "
                 "change was made from must be a whole number");
    expect_error(CMD(c, "CLUSTER", "CASMAP", "2"), "ERR wrong number of arguments for 'cluster|casmap'");
    resp_val *v = CMD(c, "CLUSTER", "GETMAP");
    cr_assert(strstr(v->str, "\"epoch\":2,") && strstr(v->str, "frozen"), "%s", v->str);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

/* A map whose first group is OTHER's: this node (at port) is in the second. */
static void theirs_map(char *out, size_t cap, int port, int epoch)
{
    snprintf(out, cap,
             "{\"epoch\":%d,\"groups\":[{\"name\":\"a\",\"leader\":0,\"nodes\":[{\"id\":\"" OTHER "\",\"host\":"
             "\"127.0.0.1\",\"port\":1}]},{\"name\":\"b\",\"leader\":0,\"nodes\":[{\"id\":\"" ME "\",\"host\":"
             "\"127.0.0.1\",\"port\":%d}]}],\"slots\":[[0,8191,0],[8192,16383,1]]}", epoch, port);
}

/* The map's first group keeps it: a node outside it refuses CASMAP and
 * names that group's node; a node with no map takes a first map only if
 * it is in that map's first group. */
Test(cluster, casmap_only_in_the_first_group)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    char m1[1024], m2[1024];
    theirs_map(m1, sizeof m1, s->port, 1);
    theirs_map(m2, sizeof m2, s->port, 2);
    expect_error(CMD(c, "CLUSTER", "CASMAP", "0", m1), "ERR cluster map refused: this node has no map yet and is not "
                 "in the new map's first group (a)");
    expect_int(CMD(c, "CLUSTER", "SETMAP", m1), 1); /* a committed map, delivered */
    expect_error(CMD(c, "CLUSTER", "CASMAP", "1", m2), "ERR CLUSTER CASMAP: this node is not in a, the group that "
                 "keeps the slot map (the map's first group): send it to that group's leader (127.0.0.1:1 per this "
                 "node's map)");
    resp_val *v = CMD(c, "CLUSTER", "GETMAP");
    cr_assert(strstr(v->str, "\"epoch\":1,"), "%s", v->str);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

Test(cluster, epochs_decide_which_map_wins)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    set_map(c, s->port, 5, NULL);
    expect_int(CMD(c, "CLUSTER", "SETMAP", map_json(s->port, 5, NULL)), 0); /* the same map again */
    expect_error(CMD(c, "CLUSTER", "SETMAP", map_json(s->port, 4, NULL)),
                 "ERR cluster map refused: map epoch 4 is not newer than this node's epoch 5");
    expect_error(CMD(c, "CLUSTER", "SETMAP", "{\"epoch\":9,\"groups\":[]}"),
                 "ERR cluster map refused: the map needs \"groups\"");
    expect_error(CMD(c, "CLUSTER", "SETMAP", "not json"), "ERR cluster map refused: the cluster map is not a JSON object");
    char twice[2048];
    snprintf(twice, sizeof twice, "%s", map_json(s->port, 6, NULL));
    char *r = strstr(twice, "[8192,16383,1]");
    memcpy(r, "[8000,16383,1]", 14);
    expect_error(CMD(c, "CLUSTER", "SETMAP", twice), "ERR cluster map refused: slot 8000 is assigned twice");
    resp_val *v = CMD(c, "CLUSTER", "INFO");
    cr_assert(strstr(v->str, "cluster_current_epoch:5\r\n"), "%s", v->str);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

Test(cluster, map_and_id_survive_a_restart)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    set_map(c, s->port, 3, NULL);
    cli_close(c);
    spoold_term(s);
    spoold_restart(s, "--cluster", "yes", "--shards", "2", NULL);
    c = cli_connect(s->port);
    expect_bulk(CMD(c, "CLUSTER", "MYID"), ME);
    resp_val *v = CMD(c, "CLUSTER", "INFO");
    cr_assert(strstr(v->str, "cluster_state:ok\r\n") && strstr(v->str, "cluster_current_epoch:3\r\n"), "%s", v->str);
    resp_val_free(v);
    expect_error_text(CMD(c, "GET", "{foo}k"), "MOVED 12182 127.0.0.1:1");
    cli_close(c);
    spoold_term(s);
    int rc = spoold_restart_may_fail(s, "--cluster", "yes", "--cluster-node-id", OTHER, "--shards", "2", NULL);
    cr_assert_neq(rc, 0, "a different --cluster-node-id is refused");
    char *log = spoold_log(s);
    cr_assert(strstr(log, "differs from the id " ME), "%s", log);
    free(log);
    spoold_destroy(s);
}

Test(cluster, replies_in_redis_formats)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    set_map(c, s->port, 2, NULL);
    resp_val *v = CMD(c, "CLUSTER", "SLOTS");
    cr_assert_eq(v->n, 2, "%s", resp_describe(v));
    const resp_val *e = v->elem[1];
    cr_assert_eq(e->n, 3);
    cr_assert_eq(e->elem[0]->integer, 8192);
    cr_assert_eq(e->elem[1]->integer, 16383);
    cr_assert_eq(e->elem[2]->n, 4);
    cr_assert_str_eq(e->elem[2]->elem[0]->str, "127.0.0.1");
    cr_assert_eq(e->elem[2]->elem[1]->integer, 1);
    cr_assert_str_eq(e->elem[2]->elem[2]->str, OTHER);
    resp_val_free(v);
    v = CMD(c, "CLUSTER", "SHARDS");
    cr_assert_eq(v->n, 2);
    e = v->elem[0]; /* RESP2: slots, [0, 8191], nodes, [[id, …, health, online]] */
    cr_assert_str_eq(e->elem[0]->str, "slots");
    cr_assert_eq(e->elem[1]->n, 2);
    cr_assert_str_eq(e->elem[2]->str, "nodes");
    cr_assert_eq(e->elem[3]->elem[0]->n, 14);
    cr_assert_str_eq(e->elem[3]->elem[0]->elem[1]->str, ME);
    cr_assert_str_eq(e->elem[3]->elem[0]->elem[9]->str, "master");
    resp_val_free(v);
    v = CMD(c, "CLUSTER", "NODES");
    char line[256];
    snprintf(line, sizeof line, ME " 127.0.0.1:%d@0 myself,master - 0 0 2 connected 0-8191\n", s->port);
    cr_assert(strstr(v->str, line), "%s", v->str);
    cr_assert(strstr(v->str, OTHER " 127.0.0.1:1@0 master - 0 0 2 connected 8192-16383\n"), "%s", v->str);
    resp_val_free(v);
    v = CMD(c, "CLUSTER", "INFO");
    cr_assert(strstr(v->str, "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n"), "%s",
              v->str);
    cr_assert(strstr(v->str, "cluster_known_nodes:2\r\ncluster_size:2\r\n"), "%s", v->str);
    resp_val_free(v);
    cr_assert_eq(info_field(c, "cluster", "cluster_enabled"), 1);
    expect_bulks(CMD(c, "COMMAND", "GETKEYS", "JOB.RESERVE", "TIMEOUT", "5", "FROM", "a", "b"), "a", "b");
    expect_bulks(CMD(c, "COMMAND", "GETKEYS", "JOB.ACK", "r1", "RESULT", "x"), "r1");
    expect_bulks(CMD(c, "COMMAND", "GETKEYS", "EVAL", "return 1", "2", "k1", "k2", "arg"), "k1", "k2");
    expect_error(CMD(c, "COMMAND", "GETKEYS", "PING", "x"), "ERR The command has no key arguments");
    expect_error(CMD(c, "COMMAND", "GETKEYS", "NOSUCH", "x"), "ERR Invalid command specified");
    v = CMD(c, "COMMAND", "INFO", "job.get");
    cr_assert_eq(v->elem[0]->elem[3]->integer, 1, "JOB.GET declares its id as a key");
    resp_val_free(v);
    expect_error(CMD(c, "CLUSTER", "NOPE"), "ERR unknown subcommand 'NOPE'. Try CLUSTER HELP.");
    expect_error(CMD(c, "CLUSTER", "COUNTKEYSINSLOT", "16384"), "ERR Invalid slot");
    cli_close(c);
    spoold_stop(s);
}

Test(cluster, counts_keys_and_queues_of_a_slot)
{
    spoold *s = start_node();
    cli *c = cli_connect(s->port);
    set_map(c, s->port, 1, NULL);
    expect_int(CMD(c, "CLUSTER", "COUNTKEYSINSLOT", "5061"), 0);
    expect_ok(CMD(c, "SET", "{bar}k", "v"));
    resp_val *id = CMD(c, "JOB.PUSH", "{bar}q", "{}");
    cr_assert_eq(id->type, RESP_T_BULK, "%s", resp_describe(id));
    resp_val_free(id);
    expect_int(CMD(c, "CLUSTER", "COUNTKEYSINSLOT", "5061"), 2);
    resp_val *v = CMD(c, "CLUSTER", "GETKEYSINSLOT", "5061", "1");
    cr_assert_eq(v->n, 1);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

Test(cluster, standalone_has_no_cluster)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    expect_error(CMD(c, "CLUSTER", "INFO"), "ERR This instance has cluster support disabled");
    expect_error(CMD(c, "ASKING"), "ERR This instance has cluster support disabled");
    jid id = PUSH(c, "q", "{}");
    cr_assert_eq(strlen(id.s), 16, "standalone ids stay 16 hex digits: %s", id.s);
    expect_ok(CMD(c, "MSET", "{x}a", "1", "{x}b", "2")); /* no slot checks */
    cr_assert_eq(info_field(c, "cluster", "cluster_enabled"), 0);
    cli_close(c);
    spoold_stop(s);
}

/* The map of two real nodes: a serves 0..split, b the rest. */
static void set_pair_map(spoold *a, spoold *b, int b_port, int epoch, int split, bool on_b)
{
    char map[1024];
    snprintf(map, sizeof map,
             "{\"epoch\":%d,\"groups\":[{\"name\":\"a\",\"nodes\":[{\"id\":\"" ME "\",\"host\":\"127.0.0.1\",\"port\":%d}]},"
             "{\"name\":\"b\",\"nodes\":[{\"id\":\"" OTHER "\",\"host\":\"127.0.0.1\",\"port\":%d}]}],"
             "\"slots\":[[0,%d,0],[%d,16383,1]]}", epoch, a->port, b_port, split, split + 1);
    spoold *to[2] = { a, b };
    for (int i = 0; i < (on_b ? 2 : 1); i++) {
        cli *c = cli_connect(to[i]->port);
        expect_int(CMD(c, "CLUSTER", "SETMAP", map), 1);
        cli_close(c);
    }
}

static bool has_epoch(int port, const char *want)
{
    cli *c = cli_connect(port);
    resp_val *v = CMD(c, "CLUSTER", "INFO");
    bool ok = v->type == RESP_T_BULK && strstr(v->str, want);
    resp_val_free(v);
    cli_close(c);
    return ok;
}

Test(cluster, a_node_that_was_down_takes_the_newer_map_from_its_peers)
{
    spoold *a = start_node();
    spoold *b = spoold_start("--cluster", "yes", "--cluster-node-id", OTHER, "--shards", "2", NULL);
    set_pair_map(a, b, b->port, 1, 8191, true);
    spoold_term(b);
    set_pair_map(a, b, 1, 2, 99, false); /* while b is down: slots 100-8191 go to b */
    spoold_restart(b, "--cluster", "yes", "--shards", "2", NULL);
    long long deadline = now_ms() + 10000;
    while (!has_epoch(b->port, "cluster_current_epoch:2\r\n"))
        cr_assert(now_ms() < deadline, "b still has its old map after 10 s");
    cli *c = cli_connect(b->port);
    char moved[64];
    snprintf(moved, sizeof moved, "MOVED 58 127.0.0.1:%d", a->port);
    expect_error_text(CMD(c, "GET", "k126"), moved); /* slot 58 stays a's */
    expect_null(CMD(c, "GET", "{bar}k")); /* slot 5061 is b's since epoch 2 */
    cli_close(c);
    char *log = spoold_log(b);
    cr_assert(strstr(log, "took map epoch 2 from node " ME), "log: %s", log);
    free(log);
    spoold_stop(a);
    spoold_stop(b);
}

/* ------------------------------------------------------ moving slot data */

/* a serves 0..8191, b the rest, but slot 5061 is b's when b_owns, and in
 * state ("frozen", "moving") toward b when state is given. Sent to both
 * nodes. */
static void set_move_map(spoold *a, spoold *b, int epoch, const char *state, bool b_owns)
{
    char moves[128] = "[]", map[1400];
    if (state)
        snprintf(moves, sizeof moves, "[{\"slot\":%d,\"to\":1,\"state\":\"%s\"}]", MINE_SLOT, state);
    snprintf(map, sizeof map,
             "{\"epoch\":%d,\"groups\":[{\"name\":\"a\",\"nodes\":[{\"id\":\"" ME "\",\"host\":\"127.0.0.1\",\"port\":%d}]},"
             "{\"name\":\"b\",\"nodes\":[{\"id\":\"" OTHER "\",\"host\":\"127.0.0.1\",\"port\":%d}]}],"
             "\"slots\":[[0,%d,0],[%d,%d,%d],[%d,8191,0],[8192,16383,1]],\"moves\":%s}", epoch, a->port, b->port,
             MINE_SLOT - 1, MINE_SLOT, MINE_SLOT, b_owns ? 1 : 0, MINE_SLOT + 1, moves);
    spoold *to[2] = { a, b };
    for (int i = 0; i < 2; i++) {
        cli *c = cli_connect(to[i]->port);
        expect_int(CMD(c, "CLUSTER", "SETMAP", map), 1);
        cli_close(c);
    }
}

static spoold *start_other(const char *shards)
{
    return spoold_start("--cluster", "yes", "--cluster-node-id", OTHER, "--shards", shards, NULL);
}

/* SLOTMOVE EXPORT on a, every part imported on b. */
static void export_import(cli *ca, cli *cb, bool twice)
{
    char slot[16];
    snprintf(slot, sizeof slot, "%d", MINE_SLOT);
    resp_val *parts = CMD(ca, "SLOTMOVE", "EXPORT", slot);
    cr_assert(parts->type == RESP_T_ARRAY && parts->n >= 1, "EXPORT: %s", resp_describe(parts));
    for (int round = 0; round < (twice ? 2 : 1); round++)
        for (size_t i = 0; i < parts->n; i++) {
            const char *argv[] = { "SLOTMOVE", "IMPORT", slot, parts->elem[i]->str, "APPEND" };
            size_t len[] = { 8, 6, strlen(slot), parts->elem[i]->len, 6 };
            expect_ok(cli_cmdv(cb, i ? 5 : 4, argv, len));
        }
    resp_val_free(parts);
}

/* A job's field from JOB.GET (static buffer; "" when nil). */
static const char *job_field(cli *c, const char *id, const char *field)
{
    static char out[256];
    resp_val *v = CMD(c, "JOB.GET", id);
    out[0] = '\0';
    for (size_t i = 0; v->type == RESP_T_ARRAY && i + 1 < v->n; i += 2)
        if (!strcmp(v->elem[i]->str, field)) {
            if (v->elem[i + 1]->type == RESP_T_INT)
                snprintf(out, sizeof out, "%lld", v->elem[i + 1]->integer);
            else if (v->elem[i + 1]->str)
                snprintf(out, sizeof out, "%s", v->elem[i + 1]->str);
        }
    resp_val_free(v);
    return out;
}

static void push_id(cli *c, char *out, size_t n, const char *payload, const char *opt, const char *val)
{
    resp_val *v = opt ? CMD(c, "JOB.PUSH", "{bar}q", payload, opt, val) : CMD(c, "JOB.PUSH", "{bar}q", payload);
    cr_assert(v->type == RESP_T_BULK, "%s", resp_describe(v));
    snprintf(out, n, "%s", v->str);
    resp_val_free(v);
}

Test(cluster, a_slot_moves_with_its_jobs_keys_and_receipts)
{
    spoold *a = start_node(), *b = start_other("2");
    cli *ca = cli_connect(a->port), *cb = cli_connect(b->port);
    set_move_map(a, b, 1, NULL, false);
    char ready[64], delayed[64], reserved[64], receipt[96];
    push_id(ca, reserved, sizeof reserved, "{\"r\":1}", NULL, NULL);
    resp_val *r = CMD(ca, "JOB.RESERVE", "NOWAIT", "FROM", "{bar}q");
    snprintf(receipt, sizeof receipt, "%s", r->elem[0]->elem[3]->str);
    resp_val_free(r);
    push_id(ca, ready, sizeof ready, "{\"r\":2}", "UNIQUE", "u1");
    push_id(ca, delayed, sizeof delayed, "{\"r\":3}", "DELAY", "3600000");
    expect_ok(CMD(ca, "SET", "{bar}k", "v", "PX", "3600000"));
    expect_int(CMD(ca, "HSET", "{bar}h", "f", "1"), 1);
    cli *waiter = cli_connect(a->port), *jobwait = cli_connect(a->port);
    SEND(waiter, "JOB.RESERVE", "TIMEOUT", "60000", "FROM", "{bar}empty", "{bar}empty2");
    SEND(jobwait, "JOB.WAIT", delayed, "TIMEOUT", "60000");
    wait_blocked_clients(ca, 2, 5000);
    set_move_map(a, b, 2, "frozen", false);
    export_import(ca, cb, true); /* importing again replaces: the same state */
    resp_val *w = cli_read(waiter);
    expect_error(w, "TRYAGAIN"); /* woken, not left hanging */
    cli_close(waiter);
    expect_error(cli_read(jobwait), "TRYAGAIN"); /* JOB.WAIT is told to wait where the job went */
    cli_close(jobwait);
    expect_int(CMD(ca, "CLUSTER", "COUNTKEYSINSLOT", "5061"), 0);
    set_move_map(a, b, 3, "moving", false);
    expect_int(CMD(ca, "SLOTMOVE", "DROP", "5061"), 1);
    expect_int(CMD(ca, "SLOTMOVE", "DROP", "5061"), 0);
    set_move_map(a, b, 4, NULL, true);
    cr_assert_str_eq(job_field(cb, reserved, "state"), "reserved");
    cr_assert_str_eq(job_field(cb, delayed, "state"), "delayed");
    expect_int(CMD(cb, "JOB.ACK", receipt), 1); /* a receipt from before the move */
    expect_bulk(CMD(cb, "JOB.PUSH", "{bar}q", "{}", "UNIQUE", "u1"), ready);
    r = CMD(cb, "JOB.RESERVE", "NOWAIT", "FROM", "{bar}q");
    cr_assert(r->type == RESP_T_ARRAY && r->n == 1 && !strcmp(r->elem[0]->elem[1]->str, ready), "%s", resp_describe(r));
    resp_val_free(r);
    expect_bulk(CMD(cb, "GET", "{bar}k"), "v");
    resp_val *ttl = CMD(cb, "PTTL", "{bar}k");
    cr_assert(ttl->integer > 0 && ttl->integer <= 3600000, "PTTL %lld", ttl->integer);
    resp_val_free(ttl);
    expect_bulk(CMD(cb, "HGET", "{bar}h", "f"), "1");
    /* b is group 1: its new ids carry it */
    char mine[64];
    push_id(cb, mine, sizeof mine, "{}", NULL, NULL);
    unsigned long long id = strtoull(strchr(mine, '}') + 1, NULL, 16);
    cr_assert_eq((id >> 16) & 0x3f, 1, "id %s does not carry group 1", mine);
    cli_close(ca);
    cli_close(cb);
    spoold_stop(a);
    spoold_stop(b);
}

/* A queue's rate limit and concurrency settings, its QUEUE.STATS totals and
 * its rate limiter's state move with the slot: the target neither counts
 * from zero nor lets a delivery through the limit the source used up. */
Test(cluster, a_slot_moves_with_its_limits_and_totals)
{
    spoold *a = start_node(), *b = start_other("2");
    cli *ca = cli_connect(a->port), *cb = cli_connect(b->port);
    set_move_map(a, b, 1, NULL, false);
    expect_ok(CMD(ca, "QUEUE.CONFIG", "{bar}lim", "SET", "rate", "1/1h", "concurrency", "5"));
    for (int i = 0; i < 3; i++)
        resp_val_free(CMD(ca, "JOB.PUSH", "{bar}lim", "{}"));
    resp_val *r = CMD(ca, "JOB.RESERVE", "NOWAIT", "COUNT", "10", "FROM", "{bar}lim");
    cr_assert(r->type == RESP_T_ARRAY && r->n == 1, "the limit lets one through: %s", resp_describe(r));
    expect_int(CMD(ca, "JOB.ACK", r->elem[0]->elem[3]->str), 1);
    resp_val_free(r);
    set_move_map(a, b, 2, "frozen", false);
    export_import(ca, cb, false);
    set_move_map(a, b, 3, "moving", false);
    expect_int(CMD(ca, "SLOTMOVE", "DROP", "5061"), 1);
    set_move_map(a, b, 4, NULL, true);
    cr_assert_eq(stat_of(cb, "{bar}lim", "pushed"), 3);
    cr_assert_eq(stat_of(cb, "{bar}lim", "acked"), 1);
    cr_assert_eq(stat_of(cb, "{bar}lim", "ready"), 2);
    cr_assert_eq(stat_of(cb, "{bar}lim", "rate_limit"), 1);
    cr_assert_eq(stat_of(cb, "{bar}lim", "concurrency_limit"), 5);
    r = CMD(cb, "JOB.RESERVE", "NOWAIT", "FROM", "{bar}lim");
    cr_assert(r->type == RESP_T_NULL || (r->type == RESP_T_ARRAY && r->n == 0),
              "the target let a delivery through the rate limit its source had used up: %s", resp_describe(r));
    resp_val_free(r);
    cli_close(ca);
    cli_close(cb);
    spoold_stop(a);
    spoold_stop(b);
}

Test(cluster, a_parked_slot_survives_a_restart_and_can_be_restored)
{
    spoold *a = start_node(), *b = start_other("2");
    cli *ca = cli_connect(a->port);
    set_move_map(a, b, 1, NULL, false);
    char id[64];
    push_id(ca, id, sizeof id, "{\"p\":1}", NULL, NULL);
    set_move_map(a, b, 2, "frozen", false);
    resp_val *first = CMD(ca, "SLOTMOVE", "EXPORT", "5061");
    cli_close(ca);
    spoold_term(a);
    spoold_restart(a, "--cluster", "yes", "--shards", "2", NULL);
    ca = cli_connect(a->port);
    expect_int(CMD(ca, "CLUSTER", "COUNTKEYSINSLOT", "5061"), 0);
    resp_val *again = CMD(ca, "SLOTMOVE", "EXPORT", "5061");
    cr_assert(again->type == RESP_T_ARRAY && again->n == first->n && again->elem[0]->len == first->elem[0]->len &&
              !memcmp(again->elem[0]->str, first->elem[0]->str, first->elem[0]->len),
              "a second export gives the parked blob again");
    resp_val_free(first);
    resp_val_free(again);
    expect_int(CMD(ca, "SLOTMOVE", "RESTORE", "5061"), 1);
    set_move_map(a, b, 3, NULL, false);
    cr_assert_str_eq(state_of(ca, id), "ready");
    expect_int(CMD(ca, "SLOTMOVE", "DROP", "5061"), 0);
    cli_close(ca);
    spoold_stop(a);
    spoold_stop(b);
}

Test(cluster, slotmove_refuses_what_is_not_a_move)
{
    spoold *a = start_node(), *b = start_other("3");
    cli *ca = cli_connect(a->port), *cb = cli_connect(b->port);
    set_move_map(a, b, 1, NULL, false);
    expect_error(CMD(ca, "SLOTMOVE", "EXPORT", "5061"), "ERR SLOTMOVE EXPORT: slot 5061 is not being moved away");
    expect_error(CMD(cb, "SLOTMOVE", "IMPORT", "5061", "x"), "ERR SLOTMOVE IMPORT: slot 5061 is not being moved to");
    expect_error(CMD(ca, "SLOTMOVE", "EXPORT", "99999"), "ERR Invalid slot");
    expect_error(CMD(ca, "SLOTMOVE", "MIGRATE", "1"), "ERR unknown subcommand");
    set_move_map(a, b, 2, "frozen", false);
    expect_error(CMD(cb, "SLOTMOVE", "IMPORT", "5061", "junk"), "ERR the blob is not a slot export");
    resp_val *parts = CMD(ca, "SLOTMOVE", "EXPORT", "5061");
    const char *argv[] = { "SLOTMOVE", "IMPORT", "5061", parts->elem[0]->str };
    size_t len[] = { 8, 6, 4, parts->elem[0]->len };
    expect_error(cli_cmdv(cb, 4, argv, len), "ERR slot 5061 comes from a node with 2 shards and this node has 3");
    char broken[64];
    memcpy(broken, parts->elem[0]->str, 16);
    broken[16] = 'J';
    len[3] = 17;
    argv[3] = broken;
    resp_val_free(parts);
    cli_close(cb);
    spoold_stop(b);
    b = start_other("2");
    cb = cli_connect(b->port);
    set_move_map(a, b, 3, "frozen", false);
    expect_error(cli_cmdv(cb, 4, argv, len), "ERR the blob of slot 5061 is damaged");
    expect_ok(CMD(cb, "ACL", "SETUSER", "worker", "on", ">pw", "~*", "+@all", "-@admin"));
    expect_ok(CMD(cb, "AUTH", "worker", "pw"));
    expect_error(CMD(cb, "SLOTMOVE", "DROP", "5061"), "NOPERM");
    cli_close(ca);
    cli_close(cb);
    spoold_stop(a);
    spoold_stop(b);
}

/* A 4000-byte JSON string payload naming i: with --payload-file-min 1kb it
 * lives in the payload file, not in the journal's row. */
static char *big_payload(int i)
{
    char *p = malloc(4001);
    int n = snprintf(p, 4001, "\"big %d ", i);
    memset(p + n, 'p', (size_t)(4000 - n - 1));
    p[3999] = '"';
    p[4000] = '\0';
    return p;
}

#define PF "--payload-file-min", "1kb", "--payload-file-segment", "16kb"

/* Jobs whose payloads live in the payload file (broker/paylog.h) move with
 * their slot: the export reads them from the source's segments, the import
 * writes them to the target's; they read back there (after a restart too)
 * and the source's rows, dropped, no longer count as live. */
Test(cluster, a_slot_moves_jobs_whose_payloads_are_in_the_payload_file)
{
    spoold *a = spoold_start("--cluster", "yes", "--cluster-node-id", ME, "--shards", "2", PF, NULL);
    spoold *b = spoold_start("--cluster", "yes", "--cluster-node-id", OTHER, "--shards", "2", PF, NULL);
    cli *ca = cli_connect(a->port), *cb = cli_connect(b->port);
    set_move_map(a, b, 1, NULL, false);
    char ids[6][64];
    for (int i = 0; i < 6; i++) {
        char *p = big_payload(i);
        push_id(ca, ids[i], sizeof ids[i], p, NULL, NULL);
        free(p);
    }
    resp_val *r = CMD(ca, "JOB.RESERVE", "NOWAIT", "FROM", "{bar}q"); /* one reserved: it moves as such */
    cr_assert(r->type == RESP_T_ARRAY && r->n == 1, "%s", resp_describe(r));
    resp_val_free(r);
    cr_assert(wait_until(info_field(ca, "persistence", "payload_file_live_bytes") >= 6 * 4000, 5000),
              "the payloads are not in the payload file of the source"); /* INFO's figure: once a second */
    set_move_map(a, b, 2, "frozen", false);
    export_import(ca, cb, false);
    set_move_map(a, b, 3, "moving", false);
    expect_int(CMD(ca, "SLOTMOVE", "DROP", "5061"), 1);
    set_move_map(a, b, 4, NULL, true);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 6; i++) {
            char *want = big_payload(i);
            cr_assert_str_eq(job_field(cb, ids[i], "state"), i ? "ready" : "reserved");
            resp_val *v = CMD(cb, "JOB.GET", ids[i]);
            const char *got = field_str(v, "payload");
            cr_assert(got && !strcmp(got, want), "job %s (round %d): its payload did not move whole", ids[i], round);
            resp_val_free(v);
            free(want);
        }
        cr_assert(wait_until(info_field(cb, "persistence", "payload_file_live_bytes") >= 6 * 4000, 5000),
                  "the target keeps the moved payloads in its journal rows");
        cli_close(cb);
        spoold_term(b);
        spoold_restart(b, "--cluster", "yes", "--cluster-node-id", OTHER, "--shards", "2", PF, NULL);
        cb = cli_connect(b->port);
    }
    r = CMD(cb, "JOB.RESERVE", "NOWAIT", "COUNT", "10", "FROM", "{bar}q");
    cr_assert(r->type == RESP_T_ARRAY && r->n == 5, "%s", resp_describe(r));
    resp_val_free(r);
    cr_assert(wait_until(info_field(ca, "persistence", "payload_file_live_bytes") == 0, 5000),
              "the source still counts the dropped jobs' payloads as live");
    cli_close(ca);
    cli_close(cb);
    spoold_stop(a);
    spoold_stop(b);
}
#undef PF
