/*
 * test_sdk_unit.c - libspool against a scripted fake server: the exact
 * bytes of every request the SDK builds, replies split across reads, the
 * RESP2 and RESP3 shapes, error replies mapped to codes with the server's
 * words kept, broken connections, timeouts and the handshake fallbacks.
 *
 * No spoold here (see test_sdk_integration.c for that); each test plays a
 * script with fake_server.h and checks the client's results.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_server.h"
#include "internal.h"
#include "spool.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A client with push_retry_ms (0: the default, keys and resends on; < 0:
 * off, so pushes go on the wire exactly as their options say). */
static spool_client *connect_retrying(fake_server *f, int push_retry_ms)
{
    spool_options o = { .url = fake_url(f), .push_retry_ms = push_retry_ms };
    spool_client *c = NULL;
    int rc = spool_connect(&c, &o);
    cr_assert_eq(rc, 0, "connect: %s", spool_errmsg(c));
    return c;
}

static spool_client *connect_to(fake_server *f)
{
    return connect_retrying(f, -1);
}

/* ================================================================== URL */

Test(sdk_url, parses_the_forms_the_docs_promise)
{
    spool_url u;
    char err[300];
    cr_assert_eq(sdk_url_parse("spool://127.0.0.1:7000", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_eq(u.port, 7000);
    cr_assert(!u.has_pass);

    cr_assert_eq(sdk_url_parse("spool://localhost", &u, err, sizeof err), 0);
    cr_assert_eq(u.port, 7379);

    cr_assert_eq(sdk_url_parse("spool://bob:s%40cret@h:1/", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.user, "bob");
    cr_assert_str_eq(u.pass, "s@cret");
    cr_assert(u.has_pass);

    cr_assert_eq(sdk_url_parse("redis://:pw@[::1]:6380/0", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 6380);
    cr_assert_str_eq(u.user, "default");
    cr_assert_str_eq(u.pass, "pw");
}

Test(sdk_url, refuses_malformed_urls_with_a_reason)
{
    const char *bad[] = { "127.0.0.1:7379", "http://h:1", "spool://", "spool://h:0",
                          "spool://h:65536", "spool://h:12x", "spool://h:1/db", "spool://u:%zz@h",
                          "spool://[::1", "spool://:7379" };
    for (size_t i = 0; i < N(bad); i++) {
        spool_url u;
        char err[300] = "";
        cr_assert_eq(sdk_url_parse(bad[i], &u, err, sizeof err), SPOOL_EINVAL, "%s", bad[i]);
        cr_assert(strstr(err, "bad URL"), "%s: %s", bad[i], err);
    }
}

Test(sdk_url, connect_reports_a_bad_url)
{
    spool_client *c = NULL;
    cr_assert_eq(spool_connect_url(&c, "nope"), SPOOL_EINVAL);
    cr_assert(strstr(spool_errmsg(c), "bad URL 'nope'"), "%s", spool_errmsg(c));
    spool_close(c);
}

Test(sdk_url, default_comes_from_SPOOL_URL)
{
    static const fake_step s[] = { FAKE_HANDSHAKE };
    fake_server *f = fake_start(s, N(s));
    setenv("SPOOL_URL", fake_url(f), 1);
    spool_client *c = NULL;
    cr_assert_eq(spool_connect(&c, NULL), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_protocol(c), 3);
    spool_close(c);
    unsetenv("SPOOL_URL");
    fake_finish(f);
}

/* ============================================================ handshake */

Test(sdk_handshake, hello_3_switches_to_resp3)
{
    static const fake_step s[] = { FAKE_HANDSHAKE };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_protocol(c), 3);
    cr_assert(spool_connected(c));
    spool_close(c);
    fake_finish(f);
}

Test(sdk_handshake, falls_back_to_resp2_without_hello)
{
    static const fake_step s[] = {
        { FAKE_REPLY, FAKE_HELLO3, "-ERR unknown command 'HELLO', with args beginning with: '3'\r\n", 0 },
        { FAKE_REPLY, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_protocol(c), 2);
    cr_assert_eq(spool_ping(c), 0);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_handshake, sends_auth_and_name_in_hello)
{
    static const fake_step s[] = {
        { FAKE_REPLY,
          "*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$2\r\npw\r\n"
          "$7\r\nSETNAME\r\n$6\r\nmailer\r\n",
          FAKE_HELLO3_REPLY, 0 },
    };
    fake_server *f = fake_start(s, N(s));
    char url[100];
    snprintf(url, sizeof url, "spool://bob:pw@127.0.0.1:%d", fake_port(f));
    spool_options o = { .url = url, .name = "mailer" };
    spool_client *c = NULL;
    cr_assert_eq(spool_connect(&c, &o), 0, "%s", spool_errmsg(c));
    spool_close(c);
    fake_finish(f);
}

Test(sdk_handshake, resp2_fallback_sends_auth_separately)
{
    static const fake_step s[] = {
        { FAKE_REPLY,
          "*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n",
          "-NOPROTO unsupported protocol version\r\n", 0 },
        { FAKE_REPLY, "*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n", "+OK\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    char url[100];
    snprintf(url, sizeof url, "spool://:pw@127.0.0.1:%d", fake_port(f));
    spool_client *c = NULL;
    cr_assert_eq(spool_connect_url(&c, url), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_protocol(c), 2);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_handshake, wrong_password_is_EAUTH_with_the_server_words)
{
    static const fake_step s[] = {
        { FAKE_CLOSE,
          "*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$1\r\nx\r\n",
          "-WRONGPASS invalid username-password pair or user is disabled.\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    char url[100];
    snprintf(url, sizeof url, "spool://:x@127.0.0.1:%d", fake_port(f));
    spool_client *c = NULL;
    cr_assert_eq(spool_connect_url(&c, url), SPOOL_EAUTH);
    cr_assert(strstr(spool_errmsg(c), "WRONGPASS invalid username-password pair"), "%s",
              spool_errmsg(c));
    cr_assert(!spool_connected(c));
    spool_close(c);
    fake_finish(f);
}

Test(sdk_handshake, forced_resp2_sends_no_hello)
{
    static const fake_step s[] = { { FAKE_REPLY, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n", 0 } };
    fake_server *f = fake_start(s, N(s));
    spool_options o = { .url = fake_url(f), .protocol = 2 };
    spool_client *c = NULL;
    cr_assert_eq(spool_connect(&c, &o), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_ping(c), 0);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_handshake, connection_refused_is_ECONN)
{
    /* a port that was just free: bind, read the port, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "spool://127.0.0.1:%d", ntohs(sa.sin_port));
    spool_client *c = NULL;
    cr_assert_eq(spool_connect_url(&c, url), SPOOL_ECONN);
    cr_assert(strstr(spool_errmsg(c), "cannot connect to 127.0.0.1"), "%s", spool_errmsg(c));
    cr_assert(!spool_connected(c));
    spool_close(c);
}

/* ============================================================= producer */

Test(sdk_push, plain_push_bytes_and_id)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*3\r\n$8\r\nJOB.PUSH\r\n$6\r\nemails\r\n$10\r\n{\"to\":\"a\"}\r\n",
          "$16\r\n0194f2a3b4c5d007\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "emails", "{\"to\":\"a\"}", NULL, id), 0, "%s", spool_errmsg(c));
    cr_assert_str_eq(id, "0194f2a3b4c5d007");
    spool_close(c);
    fake_finish(f);
}

Test(sdk_push, every_option_in_order)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY,
          "*15\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$2\r\n{}\r\n"
          "$5\r\nDELAY\r\n$4\r\n1500\r\n$2\r\nAT\r\n$13\r\n1764201108123\r\n"
          "$3\r\nPRI\r\n$2\r\n-5\r\n$7\r\nRETRIES\r\n$1\r\n3\r\n$5\r\nLEASE\r\n$5\r\n60000\r\n"
          "$6\r\nUNIQUE\r\n$9\r\nwelcome-a\r\n",
          "$3\r\nabc\r\n", 0 },
        { FAKE_REPLY,
          "*5\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$2\r\n{}\r\n$7\r\nRETRIES\r\n$1\r\n0\r\n",
          "+def\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    spool_push_opts o = { .delay_ms = 1500, .at_ms = 1764201108123LL, .priority = -5,
                          .retries = 3, .lease_ms = 60000, .unique = "welcome-a" };
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push(c, "q", "{}", 2, &o, id), 0, "%s", spool_errmsg(c));
    cr_assert_str_eq(id, "abc");
    spool_push_opts none = { .retries = SPOOL_NO_RETRIES };
    cr_assert_eq(spool_push(c, "q", "{}", 2, &none, id), 0, "%s", spool_errmsg(c));
    cr_assert_str_eq(id, "def");
    spool_close(c);
    fake_finish(f);
}

Test(sdk_push, payload_with_nul_and_crlf_is_sent_as_is)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*3\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$4\r\na\r\nb\r\n", "$1\r\n1\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_push(c, "q", "a\r\nb", 4, NULL, NULL), 0, "%s", spool_errmsg(c));
    spool_close(c);
    fake_finish(f);
}

Test(sdk_push, error_replies_map_to_codes_keeping_the_text)
{
    static const struct { const char *reply; int code; } cases[] = {
        { "-BADJSON payload is not valid JSON at byte 0; nothing was pushed\r\n", SPOOL_EBADJSON },
        { "-TOOBIG payload is 2097152 bytes; the limit is 1048576 bytes (max-payload)\r\n", SPOOL_ETOOBIG },
        { "-FULL queue q has 10 unfinished jobs (maxlen)\r\n", SPOOL_EFULL },
        { "-ERR wrong number of arguments for 'job.push' command\r\n", SPOOL_ESERVER },
        { "-WRONGTYPE whatever\r\n", SPOOL_ESERVER },
        { "-NOAUTH Authentication required.\r\n", SPOOL_EAUTH },
    };
    static fake_step s[1 + N(cases)];
    s[0] = (fake_step)FAKE_HANDSHAKE;
    for (size_t i = 0; i < N(cases); i++)
        s[i + 1] = (fake_step){ FAKE_REPLY, "*3\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$1\r\nx\r\n",
                                cases[i].reply, 0 };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    for (size_t i = 0; i < N(cases); i++) {
        int rc = spool_push_str(c, "q", "x", NULL, NULL);
        cr_assert_eq(rc, cases[i].code, "case %zu: %d (%s)", i, rc, spool_errmsg(c));
        size_t n = strlen(cases[i].reply) - 3; /* without '-' and CRLF */
        cr_assert(strncmp(spool_errmsg(c), cases[i].reply + 1, n) == 0, "case %zu: %s", i,
                  spool_errmsg(c));
        cr_assert_eq(spool_last_error(c), cases[i].code);
        cr_assert(spool_connected(c), "an error reply must not drop the connection");
    }
    spool_close(c);
    fake_finish(f);
}

Test(sdk_push, many_are_pipelined_in_one_round_trip)
{
    /* All three requests must arrive before the first reply is sent. */
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY,
          "*3\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$3\r\n[1]\r\n"
          "*5\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$3\r\nbad\r\n$3\r\nPRI\r\n$1\r\n9\r\n"
          "*3\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$3\r\n[3]\r\n",
          "$2\r\nid\r\n-BADJSON payload is not valid JSON at byte 0\r\n$3\r\nid3\r\n", 3 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    spool_push_opts pri = { .priority = 9 };
    spool_push_item items[3] = {
        { .payload = "[1]", .len = 3 },
        { .payload = "bad", .len = 3, .opts = &pri },
        { .payload = "[3]", .len = 3 },
    };
    int rc = spool_push_many(c, "q", items, 3);
    cr_assert_eq(rc, SPOOL_EBADJSON);
    cr_assert(strstr(spool_errmsg(c), "job 1: BADJSON payload is not valid JSON"), "%s", spool_errmsg(c));
    cr_assert_eq(items[0].status, 0);
    cr_assert_str_eq(items[0].id, "id");
    cr_assert_eq(items[1].status, SPOOL_EBADJSON);
    cr_assert_eq(items[2].status, 0);
    cr_assert_str_eq(items[2].id, "id3");
    spool_close(c);
    fake_finish(f);
}

Test(sdk_push, many_survive_a_large_batch)
{
    /* 2000 pipelined pushes (about 100 KB): the fake answers as it reads. */
    enum { NJ = 2000 };
    
    static fake_step s[1 + NJ];
    static char reqs[NJ][64], reps[NJ][32];
    s[0] = (fake_step)FAKE_HANDSHAKE;
    for (int i = 0; i < NJ; i++) {
        char p[16];
        int pl = snprintf(p, sizeof p, "%d", i);
        snprintf(reqs[i], sizeof reqs[i], "*3\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$%d\r\n%s\r\n", pl, p);
        snprintf(reps[i], sizeof reps[i], "$%d\r\n%s\r\n", pl, p);
        s[i + 1] = (fake_step){ FAKE_REPLY, reqs[i], reps[i], 0 };
    }
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    static spool_push_item items[NJ];
    static char payloads[NJ][16];
    for (int i = 0; i < NJ; i++) {
        snprintf(payloads[i], sizeof payloads[i], "%d", i);
        items[i] = (spool_push_item){ .payload = payloads[i], .len = strlen(payloads[i]) };
    }
    cr_assert_eq(spool_push_many(c, "q", items, NJ), 0, "%s", spool_errmsg(c));
    for (int i = 0; i < NJ; i++)
        cr_assert_str_eq(items[i].id, payloads[i]);
    spool_close(c);
    fake_finish(f);
}

/* ------------------------------------------- idempotency keys, resends */

#define PUSH_Q_KEYED "*5\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$2\r\n{}\r\n$6\r\nUNIQUE\r\n" FAKE_KEY32

/* wild holds n keys of 32 hex digits, all the same. */
static void assert_same_keys(const char *wild, int n)
{
    cr_assert_geq(strlen(wild), (size_t)(32 * n), "keys seen: '%s'", wild);
    for (int i = 1; i < n; i++)
        cr_assert(!strncmp(wild, wild + 32 * i, 32), "resend %d changed the key: '%s'", i, wild);
}

/* Plays the script s (handshake first) while one push of "{}" to q runs
 * through a client with push_retry_ms; checks its code and id; wild gets
 * what the script's FAKE_HEX places matched. */
static void push_scripted(const fake_step *s, size_t n, int push_retry_ms, const spool_push_opts *o, int want,
                          const char *want_id, char *wild, size_t wsize)
{
    fake_server *f = fake_start(s, n);
    spool_client *c = connect_retrying(f, push_retry_ms);
    char id[SPOOL_ID_MAX] = "";
    cr_assert_eq(spool_push_str(c, "q", "{}", o, id), want, "%s", spool_errmsg(c));
    if (want_id)
        cr_assert_str_eq(id, want_id);
    spool_close(c);
    fake_finish_wild(f, wild, wsize);
}

Test(sdk_push, a_push_carries_a_random_key_by_default)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, PUSH_Q_KEYED, "$1\r\n1\r\n", 0 },
    };
    char k1[64], k2[64];
    push_scripted(s, N(s), 0, NULL, 0, "1", k1, sizeof k1);
    push_scripted(s, N(s), 0, NULL, 0, "1", k2, sizeof k2);
    cr_assert_eq(strlen(k1), 32);
    cr_assert(strcmp(k1, k2), "two pushes got the same key %s", k1);
}

Test(sdk_push, a_push_whose_connection_broke_is_resent_with_its_key)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_CLOSE, PUSH_Q_KEYED, NULL, 0 },        /* read, then hang up: outcome unknown */
        { FAKE_ACCEPT, NULL, NULL, 0 },
        FAKE_HANDSHAKE,
        { FAKE_REPLY, PUSH_Q_KEYED, "-CLUSTERDOWN outcome unknown: leadership was lost\r\n", 0 },
        { FAKE_REPLY, PUSH_Q_KEYED, "-TRYAGAIN slot 5 is being moved\r\n", 0 },
        { FAKE_REPLY, PUSH_Q_KEYED, "$1\r\n7\r\n", 0 },
        { FAKE_REPLY, PUSH_Q_KEYED, "-FULL queue q has 10 unfinished jobs (maxlen)\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_retrying(f, 0);
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, id), 0, "%s", spool_errmsg(c));
    cr_assert_str_eq(id, "7");
    /* A refusal is an outcome: not resent (the script would see a request more). */
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, id), SPOOL_EFULL);
    spool_close(c);
    char wild[300];
    fake_finish_wild(f, wild, sizeof wild);
    cr_assert_eq(strlen(wild), 32 * 5);
    assert_same_keys(wild, 4);
    cr_assert(strncmp(wild, wild + 32 * 4, 32), "the next push must get a new key");
}

Test(sdk_push, the_callers_unique_key_is_kept_on_resends)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_CLOSE, "*5\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$2\r\n{}\r\n$6\r\nUNIQUE\r\n$4\r\nmine\r\n", NULL, 0 },
        { FAKE_ACCEPT, NULL, NULL, 0 },
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*5\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$2\r\n{}\r\n$6\r\nUNIQUE\r\n$4\r\nmine\r\n", "$1\r\n3\r\n", 0 },
    };
    spool_push_opts o = { .unique = "mine" };
    char wild[8];
    push_scripted(s, N(s), 0, &o, 0, "3", wild, sizeof wild);
}

/* A cluster: node A (the URL) redirects the push to B, B dies with it in
 * flight; the resend goes to the next node the client knows, A. */
Test(sdk_push, a_resend_tries_the_next_known_node_when_one_is_gone)
{
    static const fake_step sb[] = {
        FAKE_HANDSHAKE,
        { FAKE_DOWN, PUSH_Q_KEYED, NULL, 0 },
    };
    fake_server *b = fake_start(sb, N(sb));
    static char moved[64];
    snprintf(moved, sizeof moved, "-MOVED 5 127.0.0.1:%d\r\n", fake_port(b));
    fake_step sa[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, PUSH_Q_KEYED, moved, 0 },
        { FAKE_ACCEPT, NULL, NULL, 0 },
        FAKE_HANDSHAKE,
        { FAKE_REPLY, PUSH_Q_KEYED, "$1\r\n9\r\n", 0 },
    };
    char wa[200], wb[64];
    push_scripted(sa, N(sa), 0, NULL, 0, "9", wa, sizeof wa);
    fake_finish_wild(b, wb, sizeof wb);
    cr_assert_eq(strlen(wa), 64);
    cr_assert(!strncmp(wa, wa + 32, 32) && !strncmp(wa, wb, 32), "one key on both nodes: %s %s", wa, wb);
}

Test(sdk_push, resends_stop_at_push_retry_ms_naming_the_key)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, PUSH_Q_KEYED, "-CLUSTERDOWN no leader in this replication group (election running); retry\r\n", 0 },
        { FAKE_REPLY, PUSH_Q_KEYED, "-CLUSTERDOWN no leader in this replication group (election running); retry\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_retrying(f, 50); /* 50 ms: the first try, a resend after 50 ms, then the end */
    long long t0 = sdk_mono_ms();
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, NULL), SPOOL_ESERVER);
    cr_assert_geq(sdk_mono_ms() - t0, 49);
    const char *m = spool_errmsg(c);
    cr_assert(strstr(m, "CLUSTERDOWN no leader") && strstr(m, "sent 2 times") && strstr(m, "UNIQUE key ") &&
              strstr(m, "push_retry_ms"), "%s", m);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_push, many_whose_connection_broke_are_resent_one_by_one_with_their_keys)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_CLOSE, PUSH_Q_KEYED PUSH_Q_KEYED, "$1\r\na\r\n", 0 }, /* the first reply, then a hang-up */
        { FAKE_ACCEPT, NULL, NULL, 0 },
        FAKE_HANDSHAKE,
        { FAKE_REPLY, PUSH_Q_KEYED, "$1\r\nb\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_retrying(f, 0);
    spool_push_item items[2] = { { .payload = "{}", .len = 2 }, { .payload = "{}", .len = 2 } };
    cr_assert_eq(spool_push_many(c, "q", items, 2), 0, "%s", spool_errmsg(c));
    cr_assert_str_eq(items[0].id, "a");
    cr_assert_str_eq(items[1].id, "b");
    spool_close(c);
    char wild[200];
    fake_finish_wild(f, wild, sizeof wild);
    cr_assert_eq(strlen(wild), 96);
    cr_assert(strncmp(wild, wild + 32, 32), "two items got one key");
    cr_assert(!strncmp(wild + 32, wild + 64, 32), "the resend of item 1 changed its key: %s", wild);
}

Test(sdk_push, without_resends_a_push_carries_no_key_and_a_broken_one_fails)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_CLOSE, "*3\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$2\r\n{}\r\n", NULL, 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_retrying(f, -1);
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, NULL), SPOOL_ECONN);
    spool_close(c);
    fake_finish(f);
}

/* ============================================================= consumer */

#define JOB3 "%6\r\n$2\r\nid\r\n$16\r\n0194f2a3b4c5d007\r\n$7\r\nreceipt\r\n$18\r\n0194f2a3b4c5d007-1\r\n" \
             "$5\r\nqueue\r\n$6\r\nemails\r\n$7\r\npayload\r\n$10\r\n{\"to\":\"a\"}\r\n"              \
             "$7\r\nattempt\r\n:1\r\n$8\r\nlease_ms\r\n:30000\r\n"

Test(sdk_reserve, request_bytes_and_a_resp3_reply_read_byte_by_byte)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY,
          "*10\r\n$11\r\nJOB.RESERVE\r\n$7\r\nTIMEOUT\r\n$4\r\n5000\r\n$5\r\nCOUNT\r\n$1\r\n4\r\n"
          "$5\r\nLEASE\r\n$4\r\n9000\r\n$4\r\nFROM\r\n$6\r\nemails\r\n$10\r\nthumbnails\r\n",
          "*1\r\n" JOB3, 1 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    const char *qs[] = { "emails", "thumbnails" };
    spool_reserve_opts o = { .timeout_ms = 5000, .lease_ms = 9000 };
    spool_job *jobs[4] = { 0 };
    int n = spool_reserve(c, qs, 2, &o, jobs, 4);
    cr_assert_eq(n, 1, "%d %s", n, spool_errmsg(c));
    spool_job *j = jobs[0];
    cr_assert_str_eq(j->id, "0194f2a3b4c5d007");
    cr_assert_str_eq(j->receipt, "0194f2a3b4c5d007-1");
    cr_assert_str_eq(j->queue, "emails");
    cr_assert_str_eq(j->payload, "{\"to\":\"a\"}");
    cr_assert_eq(j->payload_len, 10);
    cr_assert_eq(j->attempt, 1);
    cr_assert_eq(j->lease_ms, 30000);
    cr_assert_str_eq(spool_job_json_str(j, "to"), "a");
    cr_assert_null(spool_job_json_str(j, "missing"));
    cr_assert(cJSON_IsObject(spool_job_json(j)));
    spool_job_free(j);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_reserve, resp2_flat_arrays_nowait_and_nil)
{
    static const fake_step s[] = {
        { FAKE_REPLY, FAKE_HELLO3, "-ERR unknown command 'HELLO'\r\n", 0 },
        { FAKE_REPLY, "*4\r\n$11\r\nJOB.RESERVE\r\n$6\r\nNOWAIT\r\n$4\r\nFROM\r\n$1\r\nq\r\n",
          "*1\r\n*12\r\n$2\r\nid\r\n$1\r\n7\r\n$7\r\nreceipt\r\n$3\r\n7-2\r\n$5\r\nqueue\r\n$1\r\nq\r\n"
          "$7\r\npayload\r\n$3\r\nnot\r\n$7\r\nattempt\r\n:2\r\n$8\r\nlease_ms\r\n:100\r\n", 7 },
        { FAKE_REPLY, "*3\r\n$11\r\nJOB.RESERVE\r\n$4\r\nFROM\r\n$1\r\nq\r\n", "*-1\r\n", 0 },
        { FAKE_REPLY, "*5\r\n$11\r\nJOB.RESERVE\r\n$7\r\nTIMEOUT\r\n$2\r\n10\r\n$4\r\nFROM\r\n$1\r\nq\r\n",
          "$-1\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_protocol(c), 2);
    spool_job *j = NULL;
    cr_assert_eq(spool_reserve_one(c, "q", SPOOL_NOWAIT, &j), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(j->receipt, "7-2");
    cr_assert_eq(j->attempt, 2);
    cr_assert_null(spool_job_json(j), "'not' is not JSON");
    spool_job_free(j);
    cr_assert_eq(spool_reserve_one(c, "q", 0, &j), 0, "%s", spool_errmsg(c));
    cr_assert_null(j);
    cr_assert_eq(spool_reserve_one(c, "q", 10, &j), 0, "%s", spool_errmsg(c));
    spool_close(c);
    fake_finish(f);
}

Test(sdk_reserve, a_malformed_job_is_EPROTO)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*3\r\n$11\r\nJOB.RESERVE\r\n$4\r\nFROM\r\n$1\r\nq\r\n",
          "*1\r\n%1\r\n$2\r\nid\r\n$1\r\n7\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    spool_job *j = NULL;
    cr_assert_eq(spool_reserve_one(c, "q", 0, &j), SPOOL_EPROTO);
    cr_assert_null(j);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_ack, ack_stale_nojob)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*2\r\n$7\r\nJOB.ACK\r\n$3\r\n7-1\r\n", ":1\r\n", 0 },
        { FAKE_REPLY, "*2\r\n$7\r\nJOB.ACK\r\n$3\r\n7-1\r\n",
          "-STALE receipt 7-1 is for delivery 1, but the job is now on delivery 2 (its lease "
          "expired and it was delivered again): do not ack it\r\n", 0 },
        { FAKE_REPLY, "*2\r\n$7\r\nJOB.ACK\r\n$3\r\n8-1\r\n", "-NOJOB no job 8 (done and gone)\r\n", 0 },
        { FAKE_REPLY, "*3\r\n$7\r\nJOB.ACK\r\n$3\r\n1-1\r\n$3\r\n2-1\r\n", ":1\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_ack(c, "7-1"), 0);
    cr_assert_eq(spool_ack(c, "7-1"), SPOOL_ESTALE);
    cr_assert(strstr(spool_errmsg(c), "STALE receipt 7-1 is for delivery 1"), "%s", spool_errmsg(c));
    cr_assert_eq(spool_ack(c, "8-1"), SPOOL_ENOJOB);
    cr_assert_str_eq(spool_errmsg(c), "NOJOB no job 8 (done and gone)");
    const char *rs[] = { "1-1", "2-1" };
    cr_assert_eq(spool_ack_many(c, rs, 2), 1);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_nack, options_and_both_outcomes)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*2\r\n$8\r\nJOB.NACK\r\n$3\r\n7-1\r\n", "+retry\r\n", 0 },
        { FAKE_REPLY,
          "*7\r\n$8\r\nJOB.NACK\r\n$3\r\n7-2\r\n$5\r\nDELAY\r\n$1\r\n0\r\n$5\r\nERROR\r\n"
          "$14\r\n550 no mailbox\r\n$4\r\nDEAD\r\n",
          "$4\r\ndead\r\n", 0 },
        { FAKE_REPLY, "*4\r\n$8\r\nJOB.NACK\r\n$3\r\n7-3\r\n$5\r\nDELAY\r\n$3\r\n250\r\n", "+ok?\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_nack(c, "7-1", SPOOL_NACK_DEFAULT_DELAY, NULL, 0), SPOOL_NACK_RETRIED);
    cr_assert_eq(spool_nack(c, "7-2", 0, "550 no mailbox", SPOOL_NACK_DEAD), SPOOL_NACK_WENT_DEAD);
    cr_assert_eq(spool_nack(c, "7-3", 250, NULL, 0), SPOOL_EPROTO);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_touch, touch_returns_the_new_deadline)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*4\r\n$9\r\nJOB.TOUCH\r\n$3\r\n7-1\r\n$5\r\nLEASE\r\n$4\r\n5000\r\n",
          ":1764201108123\r\n", 0 },
        { FAKE_REPLY, "*2\r\n$9\r\nJOB.TOUCH\r\n$3\r\n7-1\r\n", ":1764201109000\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    long long until = 0;
    cr_assert_eq(spool_touch(c, "7-1", 5000, &until), 0);
    cr_assert_eq(until, 1764201108123LL);
    cr_assert_eq(spool_touch(c, "7-1", 0, NULL), 0);
    spool_close(c);
    fake_finish(f);
}

/* ================================================================ admin */

Test(sdk_admin, stats_list_peek_get)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*2\r\n$11\r\nQUEUE.STATS\r\n$1\r\nq\r\n",
          "%4\r\n$5\r\nready\r\n:3\r\n$4\r\ndead\r\n:1\r\n$19\r\noldest_ready_age_ms\r\n:250\r\n"
          "$6\r\npaused\r\n:1\r\n", 5 },
        { FAKE_REPLY, "*1\r\n$10\r\nQUEUE.LIST\r\n", "*2\r\n$6\r\nemails\r\n$10\r\nthumbnails\r\n", 0 },
        { FAKE_REPLY,
          "*8\r\n$10\r\nQUEUE.PEEK\r\n$1\r\nq\r\n$5\r\nSTATE\r\n$4\r\ndead\r\n$5\r\nCOUNT\r\n$1\r\n5\r\n"
          "$5\r\nAFTER\r\n$1\r\n6\r\n",
          "*1\r\n%6\r\n$2\r\nid\r\n$1\r\n7\r\n$5\r\nstate\r\n$4\r\ndead\r\n$7\r\npayload\r\n$2\r\n{}\r\n"
          "$10\r\nlast_error\r\n$8\r\n550 nope\r\n$6\r\nunique\r\n_\r\n$10\r\ncreated_at\r\n:17\r\n", 0 },
        { FAKE_REPLY, "*2\r\n$7\r\nJOB.GET\r\n$1\r\n9\r\n", "_\r\n", 0 },
        { FAKE_REPLY, "*2\r\n$9\r\nJOB.RETRY\r\n$1\r\n7\r\n", "+OK\r\n", 0 },
        { FAKE_REPLY, "*3\r\n$7\r\nJOB.DEL\r\n$1\r\n7\r\n$1\r\n8\r\n", ":1\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    spool_queue_stats st;
    cr_assert_eq(spool_queue_stats_get(c, "q", &st), 0, "%s", spool_errmsg(c));
    cr_assert_eq(st.ready, 3);
    cr_assert_eq(st.dead, 1);
    cr_assert_eq(st.oldest_ready_age_ms, 250);
    cr_assert(st.paused);
    char **names = NULL;
    cr_assert_eq(spool_queue_list(c, &names), 2);
    cr_assert_str_eq(names[0], "emails");
    cr_assert_str_eq(names[1], "thumbnails");
    cr_assert_null(names[2]);
    spool_strv_free(names);
    spool_job **jobs = NULL;
    cr_assert_eq(spool_queue_peek(c, "q", "dead", 5, "6", &jobs), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(jobs[0]->state, "dead");
    cr_assert_str_eq(jobs[0]->last_error, "550 nope");
    cr_assert_null(jobs[0]->unique);
    cr_assert_eq(jobs[0]->created_at, 17);
    spool_jobs_free(jobs, 1);
    spool_job *j = NULL;
    cr_assert_eq(spool_job_get(c, "9", &j), SPOOL_ENOJOB);
    cr_assert_eq(spool_job_retry(c, "7"), 0);
    const char *ids[] = { "7", "8" };
    cr_assert_eq(spool_job_delete(c, ids, 2), 1);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_admin, pause_resume_purge_retry_config)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*2\r\n$11\r\nQUEUE.PAUSE\r\n$1\r\nq\r\n", "+OK\r\n", 0 },
        { FAKE_REPLY, "*2\r\n$12\r\nQUEUE.RESUME\r\n$1\r\nq\r\n", "+OK\r\n", 0 },
        { FAKE_REPLY, "*4\r\n$11\r\nQUEUE.PURGE\r\n$1\r\nq\r\n$5\r\nSTATE\r\n$4\r\ndead\r\n", ":4\r\n", 0 },
        { FAKE_REPLY, "*2\r\n$11\r\nQUEUE.PURGE\r\n$1\r\nq\r\n", ":2\r\n", 0 },
        { FAKE_REPLY, "*2\r\n$11\r\nQUEUE.RETRY\r\n$1\r\nq\r\n", ":5\r\n", 0 },
        { FAKE_REPLY, "*3\r\n$12\r\nQUEUE.CONFIG\r\n$1\r\nq\r\n$3\r\nGET\r\n",
          "%2\r\n$7\r\nretries\r\n:25\r\n$7\r\npayload\r\n$4\r\njson\r\n", 0 },
        { FAKE_REPLY, "*4\r\n$12\r\nQUEUE.CONFIG\r\n$1\r\nq\r\n$3\r\nGET\r\n$5\r\nlease\r\n", ":30000\r\n", 0 },
        { FAKE_REPLY,
          "*7\r\n$12\r\nQUEUE.CONFIG\r\n$1\r\nq\r\n$3\r\nSET\r\n$7\r\nretries\r\n$1\r\n3\r\n$5\r\nlease\r\n$3\r\n100\r\n",
          "+OK\r\n", 0 },
        { FAKE_REPLY, "*5\r\n$12\r\nQUEUE.CONFIG\r\n$1\r\nq\r\n$3\r\nSET\r\n$3\r\nbad\r\n$1\r\n1\r\n",
          "-ERR unknown setting 'bad'\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_queue_pause(c, "q"), 0);
    cr_assert_eq(spool_queue_resume(c, "q"), 0);
    cr_assert_eq(spool_queue_purge(c, "q", "dead"), 4);
    cr_assert_eq(spool_queue_purge(c, "q", NULL), 2);
    cr_assert_eq(spool_queue_retry(c, "q"), 5);
    char **kv = NULL;
    cr_assert_eq(spool_queue_config_get(c, "q", NULL, &kv), 2, "%s", spool_errmsg(c));
    cr_assert_str_eq(kv[0], "retries");
    cr_assert_str_eq(kv[1], "25");
    cr_assert_str_eq(kv[3], "json");
    spool_strv_free(kv);
    cr_assert_eq(spool_queue_config_get(c, "q", "lease", &kv), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(kv[0], "lease");
    cr_assert_str_eq(kv[1], "30000");
    spool_strv_free(kv);
    const char *set[] = { "retries", "3", "lease", "100" };
    cr_assert_eq(spool_queue_config_set(c, "q", set, 2), 0);
    const char *bad[] = { "bad", "1" };
    cr_assert_eq(spool_queue_config_set(c, "q", bad, 1), SPOOL_ESERVER);
    cr_assert_str_eq(spool_errmsg(c), "ERR unknown setting 'bad'");
    spool_close(c);
    fake_finish(f);
}

/* ================================================= broken connections */

Test(sdk_conn, garbage_is_EPROTO_and_drops_the_connection)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*1\r\n$4\r\nPING\r\n", "@what\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_ping(c), SPOOL_EPROTO);
    cr_assert(!spool_connected(c));
    spool_close(c);
    fake_finish(f);
}

Test(sdk_conn, a_close_mid_reply_is_ECONN_and_the_next_call_reconnects)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_CLOSE, "*3\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$2\r\n{}\r\n", "$16\r\n0194", 0 },
        { FAKE_ACCEPT, NULL, NULL, 0 },
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*3\r\n$8\r\nJOB.PUSH\r\n$1\r\nq\r\n$2\r\n{}\r\n", "$1\r\n5\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, id), SPOOL_ECONN);
    cr_assert(strstr(spool_errmsg(c), "the broker closed the connection"), "%s", spool_errmsg(c));
    cr_assert(!spool_connected(c));
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, id), 0, "%s", spool_errmsg(c));
    cr_assert_str_eq(id, "5");
    spool_close(c);
    fake_finish(f);
}

Test(sdk_conn, a_silent_server_is_ETIMEOUT)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_SILENT, "*1\r\n$4\r\nPING\r\n", NULL, 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_options o = { .url = fake_url(f), .io_timeout_ms = 200 };
    spool_client *c = NULL;
    cr_assert_eq(spool_connect(&c, &o), 0, "%s", spool_errmsg(c));
    long long t0 = sdk_mono_ms();
    cr_assert_eq(spool_ping(c), SPOOL_ETIMEOUT);
    long long took = sdk_mono_ms() - t0;
    cr_assert(took >= 190 && took < 3000, "took %lld ms", took);
    cr_assert(!spool_connected(c));
    spool_close(c);
    fake_finish(f);
}

Test(sdk_conn, a_blocking_reserve_waits_beyond_the_io_timeout)
{
    /* TIMEOUT 300 with an I/O timeout of 100: the reply after 250 ms is fine. */
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_LATE, "*5\r\n$11\r\nJOB.RESERVE\r\n$7\r\nTIMEOUT\r\n$3\r\n300\r\n$4\r\nFROM\r\n$1\r\nq\r\n",
          "*-1\r\n", 0 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_options o = { .url = fake_url(f), .io_timeout_ms = 100 };
    spool_client *c = NULL;
    cr_assert_eq(spool_connect(&c, &o), 0, "%s", spool_errmsg(c));
    spool_job *j = NULL;
    long long t0 = sdk_mono_ms();
    cr_assert_eq(spool_reserve_one(c, "q", 300, &j), 0, "%s", spool_errmsg(c));
    long long took = sdk_mono_ms() - t0;
    cr_assert(j == NULL, "the fake server answered nil");
    cr_assert_geq(took, 240, "the reply was held 250 ms, yet reserve returned after %lld ms", took);
    spool_close(c);
    fake_finish(f);
}

Test(sdk_conn, resp3_push_frames_are_skipped)
{
    static const fake_step s[] = {
        FAKE_HANDSHAKE,
        { FAKE_REPLY, "*1\r\n$4\r\nPING\r\n",
          ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n+PONG\r\n", 2 },
    };
    fake_server *f = fake_start(s, N(s));
    spool_client *c = connect_to(f);
    cr_assert_eq(spool_ping(c), 0, "%s", spool_errmsg(c));
    spool_close(c);
    fake_finish(f);
}

Test(sdk_misc, strerror_names_every_code)
{
    for (int code = 0; code >= SPOOL_ESTOPPED; code--)
        cr_assert_str_neq(spool_strerror(code), "unknown error", "code %d", code);
    cr_assert_str_eq(spool_strerror(-999), "unknown error");
}
