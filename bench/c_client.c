/* The socket floor: GetVariable round trips from C, compiled by bench/run.py at bench time.
 *
 * usage: c_client PORT SECONDS
 * Connects to 127.0.0.1:PORT (bench/server.py), reads the first frame, then sends
 * [id, {"key": "bench_var", "type": "GetVariable"}] and reads each whole reply frame,
 * one at a time, for SECONDS after a 0.2 s warm-up. Replies are not decoded beyond
 * their length prefix and id. Prints one JSON line like the Python clients.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static unsigned char *buf;
static size_t cap = 1 << 20;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void read_exact(int fd, unsigned char *dst, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, dst + got, n - got, 0);
        if (r <= 0) {
            fprintf(stderr, "c_client: connection closed\n");
            exit(1);
        }
        got += (size_t)r;
    }
}

static uint32_t read_frame(int fd) {
    unsigned char head[4];
    read_exact(fd, head, 4);
    uint32_t size = ((uint32_t)head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3];
    if (size > cap) {
        cap = size;
        buf = realloc(buf, cap);
    }
    read_exact(fd, buf, size);
    return size;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: c_client PORT SECONDS\n");
        return 2;
    }
    buf = malloc(cap);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("connect");
        return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    read_frame(fd); /* StartupDetails */

    /* msgpack: fixarray(2), uint32 id, fixmap(2) {"key": "bench_var", "type": "GetVariable"} */
    static const unsigned char body[] = {
        0x82, 0xa3, 'k', 'e', 'y', 0xa9, 'b', 'e', 'n', 'c', 'h', '_', 'v', 'a', 'r',
        0xa4, 't', 'y', 'p', 'e', 0xab, 'G', 'e', 't', 'V', 'a', 'r', 'i', 'a', 'b', 'l', 'e'};
    unsigned char frame[4 + 1 + 5 + sizeof body];
    uint32_t payload = (uint32_t)(sizeof frame - 4);
    frame[0] = payload >> 24;
    frame[1] = payload >> 16;
    frame[2] = payload >> 8;
    frame[3] = payload;
    frame[4] = 0x92;
    frame[5] = 0xce;
    memcpy(frame + 10, body, sizeof body);

    double seconds = atof(argv[2]);
    uint32_t id = 0;
    long n = 0;
    double t0 = 0, end = now() + 0.2;
    int measuring = 0;
    for (;;) {
        id++;
        frame[6] = id >> 24;
        frame[7] = id >> 16;
        frame[8] = id >> 8;
        frame[9] = id;
        if (send(fd, frame, sizeof frame, 0) != (ssize_t)sizeof frame) {
            perror("send");
            return 1;
        }
        read_frame(fd);
        if (measuring)
            n++;
        if ((id & 63) == 0) {
            double t = now();
            if (t >= end) {
                if (measuring) {
                    printf("{\"kind\": \"c\", \"ops\": %ld, \"seconds\": %f, \"rate\": %f}\n", n,
                           t - t0, n / (t - t0));
                    return 0;
                }
                measuring = 1;
                t0 = t;
                end = t + seconds;
            }
        }
    }
}
