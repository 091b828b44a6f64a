/*
 * protect.c - protected mode (see protect.h). Pure functions over the
 * configuration and a peer address.
 */
#include "protect.h"

#include "acl.h"
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

bool protect_is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return sa->sa_family == AF_UNIX;
}

bool protect_auth_required(const struct config *cfg)
{
    return cfg->requirepass[0] || acl_default_off();
}

static bool protecting(const struct config *cfg)
{
    return cfg->protected_mode && !protect_auth_required(cfg);
}

bool protect_refuses(const struct config *cfg, const struct sockaddr *sa)
{
    return protecting(cfg) && !protect_is_loopback(sa);
}

bool protect_active_beyond_loopback(const struct config *cfg)
{
    struct sockaddr_in a4 = { .sin_family = AF_INET };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    if (!protecting(cfg))
        return false;
    if (inet_pton(AF_INET, cfg->bind, &a4.sin_addr) == 1)
        return !protect_is_loopback((struct sockaddr *)&a4);
    if (inet_pton(AF_INET6, cfg->bind, &a6.sin6_addr) == 1)
        return !protect_is_loopback((struct sockaddr *)&a6);
    return true;
}

const char *protect_denied_reply(void)
{
    return "-DENIED spoold is running in protected mode: no password is set, so it serves only clients "
           "on its own machine (loopback), and this connection comes from another address. To serve "
           "other machines, do one of these and restart spoold: 1) keep it on loopback (--bind "
           "127.0.0.1) and reach it through an SSH tunnel or a proxy on its host; 2) set a password "
           "(--requirepass, or requirepass in spoold.conf) and have clients AUTH with it; 3) only if "
           "a firewall keeps strangers out, turn protected mode off with --protected-mode no.\r\n";
}
