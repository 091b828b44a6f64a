/*
 * test_tls.c - TLS on --tls-port with certificates the test makes with
 * the openssl command (a CA, a server certificate for 127.0.0.1, a client
 * certificate), against real spoold processes and real clients:
 *
 *   redis_cli        redis-cli --tls (PING, LPUSH, LRANGE) on the TLS port;
 *                    the plain port keeps working; plaintext on the TLS
 *                    port gets no answer
 *   redis_py         redis-py with ssl=True (PING, JOB.PUSH, LLEN)
 *   client_certs     --tls-auth-clients yes: a client without a
 *                    certificate is refused, one with a CA-signed
 *                    certificate is served
 *   bad_files        a missing key file refuses the start naming it
 *   https_admin      admin-tls: the HTTP admin over HTTPS with the same
 *                    files (Python's ssl trusting the test's CA): /healthz,
 *                    /metrics, the dashboard's 401; plain HTTP on that port
 *                    gets a plain 400 naming https://; admin-tls no keeps
 *                    plain HTTP; admin-tls yes without a certificate
 *                    refuses the start
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define REDIS_CLI "/usr/bin/redis-cli"
#define PY "/usr/bin/python3"

TestSuite(tls, .timeout = 120);

static char dir[256];

static void sh(const char *cmd)
{
    char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
    char *out = NULL;
    int rc = run_capture(argv, &out, 60000);
    cr_assert_eq(rc, 0, "%s failed:\n%s", cmd, out);
    free(out);
}

/* ca.crt, srv.crt/srv.key (127.0.0.1), cli.crt/cli.key in a fresh dir. */
static void make_certs(void)
{
    if (access("/usr/bin/openssl", X_OK) != 0)
        cr_skip_test("the openssl command is not installed (scripts/deps installs it)");
    snprintf(dir, sizeof dir, "/tmp/spool-tls-XXXXXX");
    cr_assert(mkdtemp(dir));
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 "
             "-subj /CN=spool-test-ca && "
             "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext && "
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 "
             "-extfile ext && "
             "openssl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj /CN=client && "
             "openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out cli.crt -days 2",
             dir);
    sh(cmd);
}

static void remove_certs(void)
{
    if (!dir[0])
        return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    dir[0] = '\0';
}

static spoold *start_tls(const char *auth)
{
    char cert[300], key[300], ca[300];
    snprintf(cert, sizeof cert, "%s/srv.crt", dir);
    snprintf(key, sizeof key, "%s/srv.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    return spoold_start("--tls-port", "-1", "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca,
                        "--tls-auth-clients", auth, NULL);
}

static int tls_port(spoold *s)
{
    cli *c = cli_connect(s->port);
    long long p = info_field(c, "server", "tls_port");
    cli_close(c);
    cr_assert_gt(p, 0, "INFO server tls_port");
    return (int)p;
}

/* redis-cli --tls ... ; its output (caller frees), *rc its status. */
static char *redis_cli_tls(int port, bool with_cert, const char *a1, const char *a2, const char *a3, int *rc)
{
    char p[16], ca[300], cert[300], key[300];
    snprintf(p, sizeof p, "%d", port);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(cert, sizeof cert, "%s/cli.crt", dir);
    snprintf(key, sizeof key, "%s/cli.key", dir);
    char *argv[16];
    int n = 0;
    argv[n++] = REDIS_CLI;
    argv[n++] = "--tls";
    argv[n++] = "--cacert";
    argv[n++] = ca;
    if (with_cert) {
        argv[n++] = "--cert";
        argv[n++] = cert;
        argv[n++] = "--key";
        argv[n++] = key;
    }
    argv[n++] = "-p";
    argv[n++] = p;
    argv[n++] = (char *)a1;
    if (a2)
        argv[n++] = (char *)a2;
    if (a3)
        argv[n++] = (char *)a3;
    argv[n] = NULL;
    char *out = NULL;
    *rc = run_capture(argv, &out, 15000);
    return out;
}

Test(tls, redis_cli, .init = make_certs, .fini = remove_certs)
{
    if (access(REDIS_CLI, X_OK) != 0)
        cr_skip_test("redis-cli is not installed");
    spoold *s = start_tls("no");
    int port = tls_port(s);
    int rc;
    char *out = redis_cli_tls(port, false, "PING", NULL, NULL, &rc);
    cr_expect(rc == 0 && strstr(out, "PONG"), "redis-cli --tls PING: %s", out);
    free(out);
    out = redis_cli_tls(port, false, "LPUSH", "q", "1", &rc);
    cr_expect(rc == 0 && strstr(out, "1"), "redis-cli --tls LPUSH: %s", out);
    free(out);
    cli *c = cli_connect(s->port); /* the plain port is unchanged */
    expect_int(cli_cmd(c, "LLEN", "q", NULL), 1);
    cli_close(c);
    /* Plaintext on the TLS port: the handshake fails, no RESP answer. */
    cli *p = cli_connect(port);
    cli_send(p, "PING", NULL);
    resp_val *v = NULL;
    int got = cli_poll_reply(p, 2000, &v);
    cr_expect(got != 0 || v == NULL || v->type != RESP_T_SIMPLE, "plaintext PING on the TLS port was answered");
    resp_val_free(v);
    cli_close(p);
    spoold_stop(s);
}

Test(tls, redis_py, .init = make_certs, .fini = remove_certs)
{
    char *check[] = { PY, "-c", "import redis", NULL };
    char *out = NULL;
    if (run_capture(check, &out, 15000) != 0) {
        free(out);
        cr_skip_test("python3-redis is not installed (scripts/deps installs it)");
    }
    free(out);
    spoold *s = start_tls("no");
    char code[1024];
    snprintf(code, sizeof code,
             "import redis\n"
             "r = redis.Redis(host='127.0.0.1', port=%d, ssl=True, ssl_ca_certs='%s/ca.crt', socket_timeout=10)\n"
             "assert r.ping()\n"
             "jid = r.execute_command('JOB.PUSH', 'mail', '{\"to\":\"a@example.com\"}')\n"
             "print('pushed', jid)\n"
             "print('llen', r.llen('mail'))\n",
             tls_port(s), dir);
    char *argv[] = { PY, "-c", code, NULL };
    int rc = run_capture(argv, &out, 30000);
    cr_expect_eq(rc, 0, "redis-py over TLS:\n%s", out);
    cr_expect(strstr(out, "llen 1"), "redis-py over TLS:\n%s", out);
    free(out);
    spoold_stop(s);
}

Test(tls, client_certs, .init = make_certs, .fini = remove_certs)
{
    if (access(REDIS_CLI, X_OK) != 0)
        cr_skip_test("redis-cli is not installed");
    spoold *s = start_tls("yes");
    int port = tls_port(s), rc;
    char *out = redis_cli_tls(port, false, "PING", NULL, NULL, &rc);
    cr_expect(!strstr(out, "PONG"), "a client without a certificate was served: %s", out);
    free(out);
    out = redis_cli_tls(port, true, "PING", NULL, NULL, &rc);
    cr_expect(rc == 0 && strstr(out, "PONG"), "a client with a CA-signed certificate: %s", out);
    free(out);
    spoold_stop(s);
}

Test(tls, bad_files, .init = make_certs, .fini = remove_certs)
{
    spoold *s = spoold_start(NULL);
    spoold_term(s);
    char cert[300];
    snprintf(cert, sizeof cert, "%s/srv.crt", dir);
    cr_assert_neq(spoold_restart_may_fail(s, "--tls-port", "-1", "--tls-cert-file", cert, "--tls-key-file",
                                          "/nonexistent/key.pem", NULL),
                  0, "a missing key file must refuse the start");
    char *log = spoold_log(s);
    cr_expect(strstr(log, "--tls-key-file") && strstr(log, "/nonexistent/key.pem"), "the log:\n%s", log);
    free(log);
    spoold_destroy(s);
}

/* ========================================================= HTTPS admin */

/* GET url with Python's ssl module trusting the test's CA: "status body"
 * (caller frees); a plain http:// URL is fetched without TLS. */
static char *fetch(const char *url)
{
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    static const char code[] =
        "import ssl, sys, urllib.request, urllib.error\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[2], context=ctx, timeout=10)\n"
        "    print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode())\n"
        "except Exception as e:\n"
        "    print('failed', type(e).__name__, e)\n";
    char *argv[] = { PY, "-c", (char *)code, ca, (char *)url, NULL };
    char *out = NULL;
    run_capture(argv, &out, 30000);
    return out;
}

static spoold *start_admin(const char *admin_tls, int *http_port)
{
    char cert[300], key[300], hp[300];
    snprintf(cert, sizeof cert, "%s/srv.crt", dir);
    snprintf(key, sizeof key, "%s/srv.key", dir);
    snprintf(hp, sizeof hp, "%s/http.port", dir);
    spoold *s = spoold_start("--tls-cert-file", cert, "--tls-key-file", key, "--http-port", "-1",
                             "--http-port-file", hp, "--requirepass", "adminpw", admin_tls ? "--admin-tls" : NULL,
                             admin_tls, NULL);
    *http_port = http_port_from_file(hp);
    return s;
}

Test(tls, https_admin, .init = make_certs, .fini = remove_certs)
{
    int port;
    spoold *s = start_admin(NULL, &port); /* admin-tls auto: a certificate is set, so HTTPS */
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", port);
    char *out = fetch(url);
    cr_expect(!strncmp(out, "200 ok", 6), "GET %s: %s", url, out);
    free(out);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/metrics", port);
    out = fetch(url);
    cr_expect(!strncmp(out, "200 ", 4) && strstr(out, "spool_up 1"), "GET %s: %s", url, out);
    free(out);
    snprintf(url, sizeof url, "https://localhost:%d/api/overview", port);
    out = fetch(url);
    cr_expect(!strncmp(out, "401 ", 4), "the dashboard still asks for the password over HTTPS: %s", out);
    free(out);
    /* plain HTTP on the HTTPS port: a plain 400 that says to use https:// */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    out = fetch(url);
    cr_expect(!strncmp(out, "400 ", 4) && strstr(out, "https://"), "GET %s: %s", url, out);
    free(out);
    spoold_stop(s);
    s = start_admin("no", &port); /* admin-tls no: plain HTTP, as before */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    out = fetch(url);
    cr_expect(!strncmp(out, "200 ok", 6), "admin-tls no, GET %s: %s", url, out);
    free(out);
    spoold_stop(s);
}

Test(tls, https_admin_needs_a_certificate, .init = make_certs, .fini = remove_certs)
{
    spoold *s = spoold_start(NULL);
    spoold_term(s);
    cr_assert_neq(spoold_restart_may_fail(s, "--http-port", "-1", "--admin-tls", "yes", NULL), 0,
                  "admin-tls yes without a certificate must refuse the start");
    char *log = spoold_log(s);
    cr_expect(strstr(log, "admin-tls yes needs --tls-cert-file"), "the log:\n%s", log);
    free(log);
    spoold_destroy(s);
}
