/*
 * test_sdk_install.c - libspool as a user gets it: `meson install` into a
 * temporary DESTDIR, then a small program (install/hello.c) built with
 * nothing but `pkg-config --cflags --libs libspool` (and --static), run
 * against a real spoold. The steps are in install/install_check.sh; this
 * test starts the broker and runs the script.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#ifndef INSTALL_CHECK
#define INSTALL_CHECK "install_check.sh"
#endif
#ifndef BUILD_DIR
#define BUILD_DIR "."
#endif
#ifndef SANITIZE
#define SANITIZE "none"
#endif

Test(sdk_install, a_program_builds_and_runs_against_the_installed_library, .timeout = 300)
{
    spoold *s = spoold_start(NULL);
    char url[64];
    snprintf(url, sizeof url, "spool://127.0.0.1:%d", s->port);
    char *argv[] = { "/bin/sh", INSTALL_CHECK, BUILD_DIR, SANITIZE, url, NULL };
    char *out = NULL;
    int rc = run_capture(argv, &out, 240000);
    cr_assert_eq(rc, 0, "install_check.sh exited with %d:\n%s", rc, out);
    cr_assert(strstr(out, "hello: 3 done") && strstr(out, "install check: ok"), "%s", out);
    free(out);
    spoold_stop(s);
}
