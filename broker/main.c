/*
 * main.c - spoold's entry point: load settings, run, exit with a status
 * that says whether start-up worked. spoold --check DATA_DIR verifies a
 * data directory offline instead (check.h).
 */
#include "check.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--check")) {
        if (argc != 3) {
            fprintf(stderr, "usage: spoold --check DATA_DIR (verifies a data directory offline)\n");
            return 2;
        }
        return check_data_dir(argv[2], stdout);
    }
    struct server srv;
    int rc = server_init(&srv, argc, argv);
    if (rc == 1) {
        server_free(&srv);
        return 0;
    }
    if (rc == 0)
        rc = server_run(&srv);
    server_free(&srv);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
