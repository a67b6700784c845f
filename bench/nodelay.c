/* A diagnostic for BENCHMARKS.md, not part of the product: LD_PRELOAD this into a process
 * and every TCP socket it connects gets TCP_NODELAY. `bench/load.py --nodelay-shim` uses it
 * to show what disabling Nagle's algorithm on the SMTP connections is worth: lettre writes
 * the body and the final "\r\n.\r\n" separately, and without TCP_NODELAY the dot waits for
 * the server's delayed ACK (40 ms on Linux) before it leaves. Once paper-digest sets
 * TCP_NODELAY itself, the row with the shim and the row without it agree.
 *
 *   cc -shared -fPIC -O2 -o nodelay.so bench/nodelay.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real_connect)(int, const struct sockaddr *, socklen_t);
    if (!real_connect) {
        real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    }
    if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return real_connect(fd, addr, len);
}
