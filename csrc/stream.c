/* TCP and TLS streams with deadlines (stream.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "core.h"
#include "stream.h"

static int fail(stream_err *e, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(stream_err *e, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_errno(stream_err *e, int err)
{
    return fail(e, msal_errno_name(err), "%s", strerror(err));
}

/* OpenSSL's oldest queued reason (the root cause), and an empty queue: it
 * is per thread and shared with whatever else runs in the process. */
static const char *ossl_reason_now(void)
{
    unsigned long code = ERR_get_error(), more;
    const char *r = NULL;
    if (code && ERR_SYSTEM_ERROR(code))
        r = strerror(ERR_GET_REASON(code)); /* a file it could not open */
    else if (code)
        r = ERR_reason_error_string(code);
    while ((more = ERR_get_error()) != 0)
        ;
    return r ? r : "no reason given";
}

/* OpenSSL writes with write(2): a server that went away would kill the
 * process with SIGPIPE. Block it around TLS writes and swallow one we
 * caused (libpq's technique), leaving any SIGPIPE that was pending already.
 * Plain TCP uses send(MSG_NOSIGNAL) instead. */
typedef struct pipe_guard {
    sigset_t old;
    int was_pending;
} pipe_guard;

static void pipe_block(pipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    (void)pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void pipe_restore(pipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    (void)pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Waits until fd is ready for events or the deadline passes. 0, or -1
 * with e filled (ETIMEDOUT). Errors on the socket count as ready: the next
 * step reports them. */
static int wait_for(int fd, short events, int64_t deadline_ms, stream_err *e)
{
    for (;;) {
        struct pollfd p;
        int64_t left = deadline_ms - msal_now_ms();
        int r;
        if (left <= 0)
            return fail(e, "ETIMEDOUT", "timed out");
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0)
            return 0;
        if (r == 0)
            return fail(e, "ETIMEDOUT", "timed out");
        if (errno != EINTR)
            return fail_errno(e, errno);
    }
}

void stream_init(stream *s)
{
    s->fd = -1;
    s->ssl = NULL;
    s->ctx = NULL;
}

void stream_close(stream *s)
{
    if (s->ssl) {
        pipe_guard g;
        pipe_block(&g);
        (void)SSL_shutdown(s->ssl); /* one try: a close_notify if the socket takes it */
        pipe_restore(&g);
        SSL_free(s->ssl);
        s->ssl = NULL;
        ERR_clear_error();
    }
    if (s->ctx) {
        SSL_CTX_free(s->ctx);
        s->ctx = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

/* One address: a nonblocking socket connected by the deadline. The socket,
 * or -1 with e filled. */
static int connect_one(const struct addrinfo *ai, int64_t deadline_ms, stream_err *e)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1, err = 0;
    socklen_t len = sizeof err;
    if (fd < 0)
        return fail_errno(e, errno);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            fail_errno(e, errno);
            close(fd);
            return -1;
        }
        if (wait_for(fd, POLLOUT, deadline_ms, e) != 0) {
            close(fd);
            return -1;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            fail_errno(e, err);
            close(fd);
            return -1;
        }
    }
    /* commands are small writes answered at once: no Nagle delay */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* Words for a certificate check that failed. */
static int fail_verify(stream_err *e, long vr, const char *name)
{
    switch (vr) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return fail(e, "CERT", "certificate check failed: the server's certificate is not for host name '%s'", name);
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return fail(e, "CERT", "certificate check failed: the server's certificate is not for IP address %s", name);
    default:
        return fail(e, "CERT", "certificate check failed: %s", X509_verify_cert_error_string(vr));
    }
}

static int tls_context(stream *s, const stream_tls *t, stream_err *e)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return fail(e, "CRYPTO", "cannot make a TLS context: %s", ossl_reason_now());
    s->ctx = ctx;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return fail(e, "CRYPTO", "cannot require TLS 1.2: %s", ossl_reason_now());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (t->ca_file || t->ca_path) {
        if (SSL_CTX_load_verify_locations(ctx, t->ca_file, t->ca_path) != 1)
            return fail(e, "CRYPTO", "cannot load the CA %s %s: %s", t->ca_file ? "file" : "directory",
                        t->ca_file ? t->ca_file : t->ca_path, ossl_reason_now());
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return fail(e, "CRYPTO", "cannot load the system's CAs: %s", ossl_reason_now());
    }
    if (t->cert_file) {
        const char *key = t->key_file ? t->key_file : t->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1)
            return fail(e, "CRYPTO", "cannot load the client certificate %s: %s", t->cert_file, ossl_reason_now());
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
            return fail(e, "CRYPTO", "cannot load the client key %s: %s", key, ossl_reason_now());
        if (SSL_CTX_check_private_key(ctx) != 1)
            return fail(e, "CRYPTO", "the client key %s does not fit the certificate: %s", key, ossl_reason_now());
    }
    return 0;
}

static int tls_handshake(stream *s, const stream_tls *t, const char *host, int64_t deadline_ms, stream_err *e)
{
    const char *name = t->server_name ? t->server_name : host;
    SSL *ssl;
    if (tls_context(s, t, e) != 0)
        return -1;
    ssl = SSL_new(s->ctx);
    if (ssl == NULL)
        return fail(e, "CRYPTO", "cannot make a TLS connection: %s", ossl_reason_now());
    s->ssl = ssl;
    if (SSL_set_fd(ssl, s->fd) != 1)
        return fail(e, "CRYPTO", "cannot attach TLS to the socket: %s", ossl_reason_now());
    if (is_ip_literal(name)) {
        /* RFC 6066: no SNI for an address; the certificate must name it */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
            return fail(e, "CRYPTO", "cannot check the address %s: %s", name, ossl_reason_now());
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)
            return fail(e, "CRYPTO", "cannot check the host name %s: %s", name, ossl_reason_now());
    }
    for (;;) {
        pipe_guard g;
        int r, err;
        pipe_block(&g);
        r = SSL_connect(ssl);
        pipe_restore(&g);
        if (r == 1)
            return 0;
        err = SSL_get_error(ssl, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (wait_for(s->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms, e) != 0)
                return -1;
            continue;
        }
        if (SSL_get_verify_result(ssl) != X509_V_OK) {
            ERR_clear_error();
            return fail_verify(e, SSL_get_verify_result(ssl), name);
        }
        if (err == SSL_ERROR_SYSCALL) {
            int saved = errno;
            ERR_clear_error();
            if (saved == 0)
                return fail(e, "EOF", "the server closed the connection during the TLS handshake");
            return fail_errno(e, saved);
        }
        return fail(e, "TLS", "TLS handshake failed: %s", ossl_reason_now());
    }
}

int stream_connect(stream *s, const char *host, int port, const stream_tls *tls, int64_t deadline_ms,
                   stream_err *e)
{
    struct addrinfo hints, *res = NULL, *ai;
    char service[16];
    int r;
    stream_close(s);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", port);
    r = getaddrinfo(host, service, &hints, &res);
    if (r != 0)
        return fail(e, r == EAI_SYSTEM ? msal_errno_name(errno) : "ENOENT", "%s",
                    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
    fail(e, "ENOENT", "no address");
    for (ai = res; ai; ai = ai->ai_next) {
        s->fd = connect_one(ai, deadline_ms, e);
        if (s->fd >= 0 || strcmp(e->code, "ETIMEDOUT") == 0)
            break;
    }
    freeaddrinfo(res);
    if (s->fd < 0)
        return -1;
    if (tls && tls_handshake(s, tls, host, deadline_ms, e) != 0) {
        stream_close(s);
        return -1;
    }
    return 0;
}

/* What an SSL_read or SSL_write that returned r < 1 means: 1 to wait
 * (events set), else -1 with e filled. */
static int tls_step(stream *s, int r, short *events, stream_err *e)
{
    int err = SSL_get_error(s->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        *events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return 1;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return fail(e, "EOF", "the server closed the connection");
    }
    if (err == SSL_ERROR_SYSCALL) {
        int saved = errno;
        ERR_clear_error();
        if (saved == 0)
            return fail(e, "EOF", "the server closed the connection");
        return fail_errno(e, saved);
    }
    return fail(e, "TLS", "TLS failed: %s", ossl_reason_now());
}

int stream_write(stream *s, const char *p, size_t n, int64_t deadline_ms, stream_err *e)
{
    if (s->fd < 0)
        return fail(e, "ENOTCONN", "connection closed");
    while (n > 0) {
        size_t chunk = n > INT_MAX ? INT_MAX : n;
        short events = POLLOUT;
        if (s->ssl) {
            pipe_guard g;
            int r;
            pipe_block(&g);
            r = SSL_write(s->ssl, p, (int)chunk);
            pipe_restore(&g);
            if (r > 0) {
                p += r;
                n -= (size_t)r;
                continue;
            }
            if (tls_step(s, r, &events, e) < 0)
                return -1;
        } else {
            ssize_t w = send(s->fd, p, chunk, MSG_NOSIGNAL);
            if (w > 0) {
                p += w;
                n -= (size_t)w;
                continue;
            }
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                return fail_errno(e, errno);
        }
        if (wait_for(s->fd, events, deadline_ms, e) != 0)
            return -1;
    }
    return 0;
}

ssize_t stream_read(stream *s, char *p, size_t cap, int64_t deadline_ms, stream_err *e)
{
    size_t chunk = cap > INT_MAX ? INT_MAX : cap;
    if (s->fd < 0)
        return fail(e, "ENOTCONN", "connection closed");
    for (;;) {
        short events = POLLIN;
        if (s->ssl) {
            pipe_guard g;
            int r;
            pipe_block(&g); /* a read may write too (a TLS 1.3 KeyUpdate) */
            r = SSL_read(s->ssl, p, (int)chunk);
            pipe_restore(&g);
            if (r > 0)
                return r;
            if (tls_step(s, r, &events, e) < 0)
                return -1;
        } else {
            ssize_t r = recv(s->fd, p, chunk, 0);
            if (r > 0)
                return r;
            if (r == 0)
                return fail(e, "EOF", "the server closed the connection");
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return fail_errno(e, errno);
        }
        if (wait_for(s->fd, events, deadline_ms, e) != 0)
            return -1;
    }
}
