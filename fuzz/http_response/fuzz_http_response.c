/*
 * Fuzzes the asynchronous client with whatever an upstream server could answer. A fake
 * upstream thread accepts each connection, reads the request head and writes the input back as
 * the response before closing; the client (a fresh one per input, plain HTTP, a small response
 * cap) runs on this thread's event loop until its callback reports.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "trellis/http_client.h"
#include "trellis/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int listen_fd = -1;
static uint16_t port;
static struct event_base *base;
static char url[64];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *answer;
static size_t answer_len;

static int head_complete(const char *buf, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return 1;
    }
    return 0;
}

/* Reads the request head (up to the blank line), bounded, then answers and closes. */
static void serve(int fd)
{
    char buf[8192];
    size_t got = 0;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (got < sizeof(buf)) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (head_complete(buf, got))
            break;
    }
    pthread_mutex_lock(&lock);
    size_t off = 0;
    while (off < answer_len) {
        ssize_t n = send(fd, answer + off, answer_len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    pthread_mutex_unlock(&lock);
    shutdown(fd, SHUT_WR);
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
    close(fd);
}

static void *upstream(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        serve(fd);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    pthread_t tid;
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    trellis_log_set_level(TRELLIS_LOG_OFF);
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(listen_fd, 64) != 0 || getsockname(listen_fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    port = ntohs(sa.sin_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/verify?x=1", (unsigned)port);
    base = event_base_new();
    if (base == NULL || pthread_create(&tid, NULL, upstream, NULL) != 0)
        abort();
    pthread_detach(tid);
    return 0;
}

static void on_done(const trellis_http_response_t *resp, void *arg)
{
    atomic_int *done = arg;
    /* Touch what the client hands over, so the sanitizers check it. */
    volatile size_t sum = 0;
    for (size_t i = 0; i < resp->body_len; i++)
        sum += resp->body[i];
    if (resp->content_type != NULL)
        sum += strlen(resp->content_type);
    sum += strlen(resp->detail);
    (void)sum;
    atomic_store(done, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trellis_http_client_t *client = NULL;
    trellis_http_client_config_t cfg = {
        .allow_plain_http = true, .timeout_ms = 3000, .max_response_body = 2048};
    static const char body[] = "{\"evidence\":\"AAAA\"}";
    trellis_http_client_request_t req = {.method = TRELLIS_HTTP_POST,
                                         .url = url,
                                         .content_type = "application/json",
                                         .body = body,
                                         .body_len = sizeof(body) - 1};
    atomic_int done;
    atomic_init(&done, 0);

    pthread_mutex_lock(&lock);
    free(answer);
    answer = malloc(size > 0 ? size : 1);
    if (answer == NULL)
        abort();
    memcpy(answer, data, size);
    answer_len = size;
    pthread_mutex_unlock(&lock);

    if (trellis_http_client_new(base, &cfg, &client, NULL) != TRELLIS_OK)
        abort();
    if (trellis_http_client_send(client, &req, on_done, &done, NULL) != TRELLIS_OK)
        abort();
    while (atomic_load(&done) == 0)
        event_base_loop(base, EVLOOP_ONCE);
    trellis_http_client_free(client);
    /* Let events the client left behind (none should) run against freed state now. */
    event_base_loop(base, EVLOOP_NONBLOCK);
    return 0;
}
