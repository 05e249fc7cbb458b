/* A byte stream to a server, over TCP or TLS (OpenSSL), where every step
 * ends by a deadline: the Redis client's connection (redis.c). Blocking from
 * the caller's view, nonblocking underneath (poll), so no step outlives its
 * deadline. (Except the name lookup: getaddrinfo has no timeout; an IP
 * address or a name in /etc/hosts costs nothing, DNS what the resolver's
 * own timeouts allow.)
 *
 * TLS checks the server's certificate against the given CA file or
 * directory (else the system's), and that it is for the server's name (or
 * IP address); the name also goes out as SNI. A client certificate (mTLS)
 * is optional. There is no way to skip the checks. */
#ifndef MSAL_STREAM_H
#define MSAL_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ssl_st;
struct ssl_ctx_st;

typedef struct stream_tls {
    const char *ca_file;     /* PEM bundle of trusted CAs; NULL: see ca_path */
    const char *ca_path;     /* hashed directory of CAs; both NULL: the system's */
    const char *server_name; /* the name checked and sent as SNI; NULL: the host */
    const char *cert_file;   /* client certificate chain (PEM), for mTLS */
    const char *key_file;    /* its private key (PEM); NULL: in cert_file */
} stream_tls;

typedef struct stream {
    int fd; /* -1 when closed */
    struct ssl_st *ssl; /* OpenSSL's SSL; NULL on plain TCP */
    struct ssl_ctx_st *ctx;
} stream;

/* Why a step failed: code is core.h's (an errno name, EOF, TLS, CERT or
 * CRYPTO); msg says it for people, without the host (the caller adds it). */
typedef struct stream_err {
    const char *code;
    char msg[256];
} stream_err;

void stream_init(stream *s);
/* Connects to host:port (each address getaddrinfo gives, in turn) and,
 * with tls, does the handshake. 0, or -1 with e filled and s closed. */
int stream_connect(stream *s, const char *host, int port, const stream_tls *tls, int64_t deadline_ms,
                   stream_err *e);
/* Writes all of p[0..n). 0, or -1 with e filled. */
int stream_write(stream *s, const char *p, size_t n, int64_t deadline_ms, stream_err *e);
/* Reads what is there (at least 1 byte, at most cap). The count, or -1
 * with e filled (EOF when the server closed the connection). */
ssize_t stream_read(stream *s, char *p, size_t cap, int64_t deadline_ms, stream_err *e);
/* Closes it; again does nothing. */
void stream_close(stream *s);

#endif
