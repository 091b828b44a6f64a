/*
 * main.c - spoold's entry point: load settings, run, exit with a status
 * that says whether start-up worked.
 */
#include "server.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
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
