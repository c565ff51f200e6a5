/* A small HTTP/1.1 client: one GET per connection ("Connection: close"), directly
 * or through an HTTP proxy (absolute-form request), with a timeout on connecting
 * and on every wait for data. Bodies with Content-Length, chunked, or up to EOF are
 * handed to a sink as they arrive. No TLS: the repository's integrity comes from
 * its signed manifest and content hashes, as with CernVM-FS. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cvmfs2.h"

int url_parse(const char *text, struct url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (strncasecmp(text, "http://", 7) != 0) {
        snprintf(err, errlen, "'%s' is not an http:// URL", text);
        return -1;
    }
    const char *p = text + 7, *host_end, *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    char hp[300];
    if (hostport == 0 || hostport >= sizeof hp) {
        snprintf(err, errlen, "'%s' has no host", text);
        return -1;
    }
    memcpy(hp, p, hostport);
    hp[hostport] = 0;
    const char *port = NULL;
    if (hp[0] == '[') {  /* [IPv6]:port */
        host_end = strchr(hp, ']');
        if (!host_end) {
            snprintf(err, errlen, "'%s': unclosed '['", text);
            return -1;
        }
        snprintf(u->host, sizeof u->host, "%.*s", (int)(host_end - hp - 1), hp + 1);
        if (host_end[1] == ':')
            port = host_end + 2;
    } else {
        char *colon = strchr(hp, ':');
        if (colon) {
            *colon = 0;
            port = colon + 1;
        }
        if (strlen(hp) >= sizeof u->host) {
            snprintf(err, errlen, "'%s': the host name is too long", text);
            return -1;
        }
        memcpy(u->host, hp, strlen(hp) + 1);
    }
    if (port && (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)) {
        snprintf(err, errlen, "'%s' has a bad port", text);
        return -1;
    }
    snprintf(u->port, sizeof u->port, "%s", port ? port : "80");
    snprintf(u->path, sizeof u->path, "%s", slash ? slash : "");
    size_t n = strlen(u->path);
    while (n > 0 && u->path[n - 1] == '/')
        u->path[--n] = 0;
    return 0;
}

static int wait_fd(int fd, short events, int timeout_s)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do
        r = poll(&p, 1, timeout_s * 1000);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        errno = ETIMEDOUT;
    return r > 0 ? 0 : -1;
}

static int connect_to(const struct url *u, int timeout_s, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(u->host, u->port, &hints, &res), fd = -1;
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(rc));
        return -1;
    }
    int saved = ECONNREFUSED;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_s) == 0) {
            int soerr = 0;
            socklen_t len = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
            if (soerr == 0)
                break;
            errno = soerr;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to %s:%s: %s", u->host, u->port, strerror(saved));
    return fd;
}

static int send_all(int fd, const char *buf, size_t len, int timeout_s)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN && wait_fd(fd, POLLOUT, timeout_s) == 0)
                continue;
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= n;
    }
    return 0;
}

/* bytes read (0 at EOF), -1 on error or timeout */
static ssize_t recv_some(int fd, unsigned char *buf, size_t len, int timeout_s)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || wait_fd(fd, POLLIN, timeout_s) < 0)
            return -1;
    }
}

struct body {
    int chunked;
    long long remaining;  /* Content-Length left, or -1 for "until EOF" */
    /* chunked state */
    long long chunk_left;
    int state;  /* 0: size line, 1: data, 2: CRLF after data, 3: trailer, 4: done */
    char line[64];
    size_t line_len;
    body_sink sink;
    void *ctx;
    int sink_status;
};

/* 0 to go on, 1 when the body is complete, -1 on a protocol error, -2 when the sink refused */
static int feed(struct body *b, const unsigned char *data, size_t len)
{
    if (!b->chunked) {
        if (b->remaining >= 0 && (long long)len > b->remaining)
            len = b->remaining;
        if (len && (b->sink_status = b->sink(b->ctx, data, len)) != 0)
            return -2;
        if (b->remaining >= 0) {
            b->remaining -= len;
            return b->remaining == 0;
        }
        return 0;
    }
    while (len > 0) {
        if (b->state == 1) {
            size_t n = len < (size_t)b->chunk_left ? len : (size_t)b->chunk_left;
            if ((b->sink_status = b->sink(b->ctx, data, n)) != 0)
                return -2;
            data += n;
            len -= n;
            b->chunk_left -= n;
            if (b->chunk_left == 0)
                b->state = 2;
            continue;
        }
        /* the line-oriented states */
        unsigned char c = *data++;
        len--;
        if (c != '\n') {
            if (c != '\r' && b->line_len < sizeof b->line - 1)
                b->line[b->line_len++] = c;
            continue;
        }
        b->line[b->line_len] = 0;
        b->line_len = 0;
        if (b->state == 0) {
            char *end;
            b->chunk_left = strtoll(b->line, &end, 16);
            if (end == b->line || b->chunk_left < 0)
                return -1;
            b->state = b->chunk_left ? 1 : 3;
        } else if (b->state == 2) {
            if (b->line[0])
                return -1;
            b->state = 0;
        } else if (b->state == 3) {
            if (!b->line[0]) {
                b->state = 4;
                return 1;
            }
        }
    }
    return 0;
}

int http_get(const struct url *server, const char *path, const struct url *proxy, int timeout_s, int no_cache,
             body_sink sink, void *ctx, char *err, size_t errlen)
{
    const struct url *peer = proxy ? proxy : server;
    const int conn_fail = proxy ? FETCH_PROXY_ERR : FETCH_HOST_ERR;
    const char *via = proxy ? " (through the proxy)" : "";
    char request[4096], hostport[300];
    int fd, status = conn_fail;

    err[0] = 0;
    fd = connect_to(peer, timeout_s, err, errlen);
    if (fd < 0)
        return conn_fail;
    if (strcmp(server->port, "80") == 0)
        snprintf(hostport, sizeof hostport, "%s", server->host);
    else
        snprintf(hostport, sizeof hostport, "%s:%s", server->host, server->port);
    snprintf(request, sizeof request,
             "GET %s%s%s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cvmfs2-appbuild/" CVMFS_VERSION "\r\n"
             "Connection: close\r\n%s\r\n",
             proxy ? "http://" : "", proxy ? hostport : "", server->path, path, hostport,
             no_cache ? "Cache-Control: no-cache\r\nPragma: no-cache\r\n" : "");
    if (send_all(fd, request, strlen(request), timeout_s) < 0) {
        snprintf(err, errlen, "sending the request to %s:%s: %s", peer->host, peer->port, strerror(errno));
        goto out;
    }

    static unsigned char buf[256 * 1024];  /* one request at a time: the client is single-threaded */
    size_t have = 0;
    char *head_end = NULL;
    while (!head_end) {
        if (have == sizeof buf - 1) {
            snprintf(err, errlen, "%s:%s sent a header larger than %zu bytes", peer->host, peer->port, have);
            goto out;
        }
        ssize_t n = recv_some(fd, buf + have, sizeof buf - 1 - have, timeout_s);
        if (n <= 0) {
            snprintf(err, errlen, "%s:%s %s before answering%s", peer->host, peer->port,
                     n == 0 ? "closed the connection" : strerror(errno), via);
            goto out;
        }
        have += n;
        buf[have] = 0;
        head_end = strstr((char *)buf, "\r\n\r\n");
    }
    *head_end = 0;
    int code = 0;
    if (sscanf((char *)buf, "HTTP/1.%*d %d", &code) != 1) {
        snprintf(err, errlen, "%s:%s did not answer HTTP", peer->host, peer->port);
        goto out;
    }
    if (code != 200) {
        /* 502/503/504 are the proxy's own errors; the rest come from the server */
        status = (proxy && (code == 502 || code == 503 || code == 504)) ? FETCH_PROXY_ERR : FETCH_HOST_ERR;
        snprintf(err, errlen, "HTTP %d for http://%s%s%s%s", code, hostport, server->path, path, via);
        goto out;
    }
    struct body b = {.remaining = -1, .sink = sink, .ctx = ctx};
    for (char *line = strstr((char *)buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        char *h = line + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            b.remaining = strtoll(h + 15, NULL, 10);
        else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0 && strcasestr(h, "chunked"))
            b.chunked = 1;
    }
    if (b.chunked)
        b.remaining = -1;
    size_t body_start = (unsigned char *)head_end + 4 - buf;
    int done = (!b.chunked && b.remaining == 0) ? 1 : feed(&b, buf + body_start, have - body_start);
    while (done == 0) {
        ssize_t n = recv_some(fd, buf, sizeof buf, timeout_s);
        if (n < 0) {
            snprintf(err, errlen, "reading from %s:%s: %s%s", peer->host, peer->port, strerror(errno), via);
            goto out;
        }
        if (n == 0) {
            if (!b.chunked && b.remaining < 0)
                done = 1;  /* the body ends with the connection */
            else {
                snprintf(err, errlen, "%s:%s closed the connection in the middle of the body%s", peer->host,
                         peer->port, via);
                goto out;
            }
            break;
        }
        done = feed(&b, buf, n);
    }
    if (done == -1) {
        snprintf(err, errlen, "%s:%s sent a malformed chunked body", peer->host, peer->port);
        goto out;
    }
    if (done == -2) {
        status = b.sink_status;
        if (!*err)
            snprintf(err, errlen, "the data was refused");
        goto out;
    }
    status = FETCH_OK;
out:
    close(fd);
    return status;
}
