/* Load benchmark peer for bench/run_load.py: libcurl's SMTP client through its multi interface.
 *
 * CONNECTIONS easy handles run at once in one curl_multi; each sends one message, and when it
 * is done it is removed and added again for the next one, so libcurl takes the connection back
 * from the multi handle's connection cache (EHLO once per connection, then MAIL, RCPT, DATA and
 * the data for every message; libcurl does not pipeline SMTP commands). COUNT messages in all,
 * the same bytes each time (the file as it is, CRLF line ends expected), uploaded from memory.
 *
 * Prints one line:
 *     libcurl-multi load msgs=N failed=F seconds=S conns=C
 * where seconds is the wall time from the first transfer added to the last one done and conns
 * the number of connections libcurl opened. Exit status 0 only if every message was accepted.
 *
 * Build: gcc -O2 -o curl_multi bench/peers/curl_multi.c -lcurl   (libcurl4-openssl-dev)
 * Usage: curl_multi --port PORT --file FILE --count N --connections K [--host 127.0.0.1]
 *                   [--from ADDR] [--to ADDR]
 */
#include <curl/curl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sender {
    CURL* easy;
    size_t offset; /* how much of the message this transfer has handed to libcurl */
};

static const char* message;
static size_t message_size;

static size_t read_message(char* buffer, size_t size, size_t nitems, void* userdata)
{
    struct sender* s = userdata;
    size_t room = size * nitems;
    size_t left = message_size - s->offset;
    size_t n = left < room ? left : room;
    memcpy(buffer, message + s->offset, n);
    s->offset += n;
    return n;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(const char* argv0)
{
    fprintf(stderr,
            "usage: %s --port PORT --file FILE --count N --connections K [--host HOST]"
            " [--from ADDR] [--to ADDR]\n",
            argv0);
    exit(2);
}

static long positive(const char* flag, const char* text)
{
    char* end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < 1) {
        fprintf(stderr, "curl_multi: %s needs a positive number, not '%s'\n", flag, text);
        exit(2);
    }
    return v;
}

static char* slurp(const char* path, size_t* size)
{
    FILE* f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "curl_multi: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 1 << 16, n = 0;
    char* buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "curl_multi: reading %s failed\n", path);
        exit(2);
    }
    fclose(f);
    *size = n;
    return buf;
}

int main(int argc, char** argv)
{
    const char *host = "127.0.0.1", *port = NULL, *file = NULL;
    const char *from = "sender@example.com", *to = "rcpt@example.net";
    long count = 0, connections = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage(argv[0]);
        const char* flag = argv[i];
        const char* value = argv[++i];
        if (!strcmp(flag, "--host"))
            host = value;
        else if (!strcmp(flag, "--port"))
            port = value;
        else if (!strcmp(flag, "--file"))
            file = value;
        else if (!strcmp(flag, "--count"))
            count = positive(flag, value);
        else if (!strcmp(flag, "--connections"))
            connections = positive(flag, value);
        else if (!strcmp(flag, "--from"))
            from = value;
        else if (!strcmp(flag, "--to"))
            to = value;
        else
            usage(argv[0]);
    }
    if (!port || !file || !count || !connections)
        usage(argv[0]);
    if (connections > count)
        connections = count;
    message = slurp(file, &message_size);

    char url[300], mail_from[300], rcpt_to[300];
    snprintf(url, sizeof url, "smtp://%s:%s/client.example", host, port); /* path = EHLO name */
    snprintf(mail_from, sizeof mail_from, "<%s>", from);
    snprintf(rcpt_to, sizeof rcpt_to, "<%s>", to);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_multi: curl_global_init failed\n");
        return 1;
    }
    CURLM* multi = curl_multi_init();
    /* Keep every connection in the cache between messages. */
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, connections);
    struct curl_slist* rcpts = curl_slist_append(NULL, rcpt_to);
    struct sender* senders = calloc((size_t)connections, sizeof *senders);

    long started = 0, sent = 0, failed = 0, conns = 0;
    double t0 = monotonic_seconds();
    for (long i = 0; i < connections; i++) {
        CURL* e = curl_easy_init();
        senders[i].easy = e;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_MAIL_FROM, mail_from);
        curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpts);
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_message);
        curl_easy_setopt(e, CURLOPT_READDATA, &senders[i]);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)message_size);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &senders[i]);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
        curl_multi_add_handle(multi, e);
        started++;
    }

    while (sent + failed < count) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "curl_multi: curl_multi_perform: %s\n", curl_multi_strerror(mc));
            break;
        }
        CURLMsg* m;
        int queued;
        while ((m = curl_multi_info_read(multi, &queued))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL* e = m->easy_handle;
            struct sender* s = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char**)&s);
            long opened = 0;
            curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &opened);
            conns += opened;
            if (m->data.result == CURLE_OK) {
                sent++;
            } else if (++failed <= 5) {
                fprintf(stderr, "curl_multi: message failed: %s\n",
                        curl_easy_strerror(m->data.result));
            }
            curl_multi_remove_handle(multi, e);
            if (started < count) {
                s->offset = 0;
                curl_multi_add_handle(multi, e);
                started++;
            }
        }
        if (sent + failed < count)
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    double seconds = monotonic_seconds() - t0;
    printf("libcurl-multi load msgs=%ld failed=%ld seconds=%.3f conns=%ld\n", sent, failed, seconds,
           conns);

    for (long i = 0; i < connections; i++) {
        curl_multi_remove_handle(multi, senders[i].easy);
        curl_easy_cleanup(senders[i].easy);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(rcpts);
    curl_global_cleanup();
    free(senders);
    return (sent == count && failed == 0) ? 0 : 1;
}
