/* Replication (docs/replication.md): runs tests/replication/failover.py,
 * a group of three spoold driven by redis-py while its leader is SIGKILLed
 * (plus a SIGSTOPped follower, a wiped node, a follower's redirect, a
 * minority, bad flags), against $SPOOLD. Its own checks print as "ok" /
 * "not ok" lines; this test fails when any failed. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#ifndef FAILOVER_PY
#define FAILOVER_PY "failover.py"
#endif
#ifndef SPOOLD_PATH
#define SPOOLD_PATH "spoold"
#endif

/* Sanitizer builds run slower: the pause bound widens, the figures print all the same. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MAX_PAUSE "6"
#else
#define MAX_PAUSE "3"
#endif

Test(replication, leader_kills_lose_nothing, .timeout = 400)
{
    const char *spoold = getenv("SPOOLD");
    if (!spoold || !spoold[0])
        spoold = SPOOLD_PATH;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "timeout 360 /usr/bin/python3 '%s' --spoold '%s' --kills 4 --rounds 1 --max-pause " MAX_PAUSE " 2>&1",
             FAILOVER_PY, spoold);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    char line[4096];
    int not_ok = 0, summary = 0;
    while (fgets(line, sizeof line, p)) {
        fputs(line, stderr);
        not_ok += !strncmp(line, "not ok", 6);
        summary += strstr(line, " passed, ") != NULL;
    }
    int st = pclose(p);
    cr_expect_eq(not_ok, 0, "%d check(s) of failover.py failed (its output is above)", not_ok);
    cr_assert(summary == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "failover.py did not finish cleanly (status %d); its output is above", st);
}
