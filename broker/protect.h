/*
 * protect.h - protected mode: which clients spoold serves at all.
 *
 * As in Redis: while protected mode is on (the default) and no password is
 * set, spoold serves only clients that connect from a loopback address
 * (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). A client from anywhere else
 * gets one -DENIED error that names the three ways out (bind to loopback,
 * set a password, or --protected-mode no) and is closed. The check runs on
 * the main thread, for each accepted socket, before the connection reaches
 * an I/O thread; it reads only the configuration (read-only after start).
 *
 * "No password" means, as in Redis, that the default user needs none: no
 * requirepass, and the default user is on. With requirepass set, or the
 * default user off (ACL SETUSER default off: then the named ACL users,
 * with their passwords, are the only way in), every client must
 * authenticate, and protected mode lets every address through.
 */
#ifndef SPOOL_PROTECT_H
#define SPOOL_PROTECT_H

#include <stdbool.h>
#include <sys/socket.h>

struct config;

/* True for a loopback peer address (IPv4, IPv6 or IPv4-mapped IPv6). */
bool protect_is_loopback(const struct sockaddr *sa);
/* Clients must authenticate: requirepass is set or the default user is
 * off. New connections start unauthenticated, under the pre-auth limits
 * (16 small arguments, AUTH/HELLO/QUIT/RESET only, closed after 10 s). */
bool protect_auth_required(const struct config *cfg);
/* True when a client from sa must be refused. */
bool protect_refuses(const struct config *cfg, const struct sockaddr *sa);
/* True when the listening address reaches beyond loopback and protected
 * mode will refuse clients (worth a warning at start). */
bool protect_active_beyond_loopback(const struct config *cfg);
/* The whole -DENIED reply line, CRLF included. */
const char *protect_denied_reply(void);

#endif
