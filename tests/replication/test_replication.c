/* Replication (docs/replication.md): runs tests/replication/failover.py,
 * a group of three spoold driven by redis-py while its leader is SIGKILLed
 * (plus a SIGSTOPped follower, a wiped node, a follower's redirect, a
 * minority, bad flags), against $SPOOLD ($SPOOL_CLI in cluster mode);
 * members.py (log compaction, membership) and transfer.py (leadership
 * transfer, a leader stopped with SIGTERM hands over). Its
 * own checks print as "ok" / "not ok" lines; a test fails when any failed. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FAILOVER_PY
#define FAILOVER_PY "failover.py"
#endif
#ifndef MEMBERS_PY
#define MEMBERS_PY "members.py"
#endif
#ifndef TRANSFER_PY
#define TRANSFER_PY "transfer.py"
#endif
#ifndef SLOTMAP_PY
#define SLOTMAP_PY "slotmap.py"
#endif
#ifndef SPOOLD_PATH
#define SPOOLD_PATH "spoold"
#endif
#ifndef SPOOL_CLI_PATH
#define SPOOL_CLI_PATH "spool"
#endif

/* Sanitizer builds run slower: the pause bound widens, the figures print all the same. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MAX_PAUSE "6"
#define MAX_PLANNED_PAUSE "3"
#define MAX_PLANNED_PAUSE_CLUSTER "4"
#else
#define MAX_PAUSE "3"
#define MAX_PLANNED_PAUSE "1"
#define MAX_PLANNED_PAUSE_CLUSTER "1.5"
#endif

static const char *cli_path(void)
{
    const char *cli = getenv("SPOOL_CLI");
    return cli && cli[0] ? cli : SPOOL_CLI_PATH;
}

static const char *spoold_path(void)
{
    const char *spoold = getenv("SPOOLD");
    return spoold && spoold[0] ? spoold : SPOOLD_PATH;
}

/* Runs a script of this directory with extra arguments; every "not ok"
 * line fails the test. */
static void run_py(const char *script, const char *extra)
{
    const char *spoold = spoold_path();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "timeout 360 /usr/bin/python3 '%s' --spoold '%s' %s 2>&1", script, spoold, extra);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    char line[4096], failed[2048] = "";
    int not_ok = 0, summary = 0;
    while (fgets(line, sizeof line, p)) {
        fputs(line, stderr);
        if (!strncmp(line, "not ok", 6)) {
            not_ok++; /* the failing checks go into the message too: a CI log may keep only that */
            size_t used = strlen(failed);
            snprintf(failed + used, sizeof failed - used, "  %.400s", line);
        }
        summary += strstr(line, " passed, ") != NULL;
    }
    int st = pclose(p);
    cr_expect_eq(not_ok, 0, "%d check(s) of %s failed (its output is above):\n%s", not_ok, script, failed);
    cr_assert(summary == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "%s did not finish cleanly (status %d); its output is above", script, st);
}

static void run_failover(const char *extra)
{
    char args[2100];
    snprintf(args, sizeof args, "--max-pause " MAX_PAUSE " %s", extra);
    run_py(FAILOVER_PY, args);
}

/* A group of three, plain redis-py clients that follow -MOVED themselves. */
Test(replication, leader_kills_lose_nothing, .timeout = 400)
{
    run_failover("--kills 4 --rounds 1");
}

/* The same group in cluster mode (spoold --cluster yes, one group holding
 * every slot, made by spool cluster create), driven by redis-py RedisCluster. */
Test(replication, cluster_mode_redis_py_cluster, .timeout = 400)
{
    char extra[2048];
    snprintf(extra, sizeof extra, "--kills 3 --rounds 1 --spool '%s'", cli_path());
    run_failover(extra);
}

/* Log compaction and membership (members.py): the log stays bounded, a
 * wiped follower and new members catch up through snapshots, a dead node
 * is replaced by one with a new id and address, the group grows. */
Test(replication, compaction_and_membership, .timeout = 400)
{
    char extra[2048];
    snprintf(extra, sizeof extra, "--spool '%s'", cli_path());
    run_py(MEMBERS_PY, extra);
}

/* The same in cluster mode: the slot map's group follows the membership. */
Test(replication, membership_cluster_mode, .timeout = 400)
{
    char extra[2048];
    snprintf(extra, sizeof extra, "--spool '%s' --cluster", cli_path());
    run_py(MEMBERS_PY, extra);
}

/* Leadership transfer (transfer.py): REPLICA.TRANSFER under load loses
 * nothing, a named node takes over (spool cluster transfer-leader), a node
 * behind / a non-member / a group of one are refused with a clear error,
 * and a leader stopped with SIGTERM hands over first; the write pause of
 * those planned restarts is printed and bounded (a SIGKILL failover's is
 * bounded by MAX_PAUSE). */
Test(replication, leadership_transfer, .timeout = 400)
{
    char extra[2048];
    snprintf(extra, sizeof extra, "--spool '%s' --max-pause " MAX_PLANNED_PAUSE, cli_path());
    run_py(TRANSFER_PY, extra);
}

/* The same in cluster mode, driven by redis-py RedisCluster (which sleeps
 * 0.25 s after a -CLUSTERDOWN before it asks again: a wider bound). */
Test(replication, leadership_transfer_cluster_mode, .timeout = 400)
{
    char extra[2048];
    snprintf(extra, sizeof extra, "--spool '%s' --cluster --transfers 2 --restarts 3 --max-pause "
             MAX_PLANNED_PAUSE_CLUSTER, cli_path());
    run_py(TRANSFER_PY, extra);
}

/* The slot map kept by a replicated first group (slotmap.py): a change is
 * a compare-and-set committed through Raft; of changes made from one epoch
 * at once exactly one wins; it survives its leader killed right after; a
 * change waiting for its commit holds up no other client of its I/O
 * thread, and is answered "outcome unknown" when the leader is cut off. */
Test(replication, slot_map_through_raft, .timeout = 300)
{
    char extra[2048];
    snprintf(extra, sizeof extra, "--spool '%s'", cli_path());
    run_py(SLOTMAP_PY, extra);
}

/* A node whose Raft address another process holds cannot start Raft: it
 * exits at once with status 1, naming the address, and closes and frees
 * what it set up (under a sanitizer: no leak report; a node restarted
 * onto a port another suite took left its whole replica behind). */
Test(replication, raft_port_taken_refused_and_closed, .timeout = 60)
{
    const char *spoold = spoold_path();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 4) == 0 &&
              getsockname(fd, (struct sockaddr *)&sa, &len) == 0, "cannot hold a port");
    int port = ntohs(sa.sin_port);
    char dir[] = "/tmp/spool-raftport-XXXXXX";
    cr_assert(mkdtemp(dir), "mkdtemp");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' --port 0 --http-port 0 --data-dir '%s' --shards 2 --io-threads 1 --replica-id 1 "
             "--replica-peers 1=127.0.0.1:%d/127.0.0.1:1 2>&1; echo \"exit $?\"", spoold, dir, port);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    static char out[1 << 16];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    pclose(p);
    close(fd);
    char rm[4200];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    cr_expect_eq(system(rm), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "is its Raft address 127.0.0.1:%d taken by another process?", port);
    cr_expect(strstr(out, addr), "the error names the Raft address:\n%s", out);
    cr_expect(strstr(out, "exit 1\n"), "exits with status 1:\n%s", out);
    cr_expect(strstr(out, "replica 1: Raft closed") && strstr(out, "replica 1: stopped;"),
              "Raft is closed and the replica freed on the way out:\n%s", out);
    cr_expect(!strstr(out, "LeakSanitizer") && !strstr(out, "AddressSanitizer") && !strstr(out, "runtime error:"),
              "no sanitizer report:\n%s", out);
}
