#!/usr/bin/env bash
# The machine's floor for open-loop send accuracy: how late a thread sleeping on a timerfd
# (as wafload's engine pacers do) is woken, with nothing else running. Send jitter below
# this is only possible by spinning instead of sleeping (see docs/performance.md).
#
#   benches/timer_floor.sh [INTERVALS_US]      (default: "50 100 200 1000"; 20 000 wake-ups each)
#
# Needs a C compiler (cc, present wherever Rust links).
set -euo pipefail
INTERVALS=${1:-"50 100 200 1000"}
WORK=$(mktemp -d /tmp/wafload-timer.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/floor.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
static uint64_t now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static int cmp(const void *a, const void *b) { long x = *(const long *)a, y = *(const long *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
    int interval_us = atoi(argv[1]), n = 20000;
    long *late = malloc(n * sizeof(long));
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    uint64_t due = now();
    for (int i = 0; i < n; i++) {
        due += interval_us * 1000ull;
        struct itimerspec its = {0};
        its.it_value.tv_sec = due / 1000000000; its.it_value.tv_nsec = due % 1000000000;
        timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, 0);
        struct epoll_event out; uint64_t expirations;
        epoll_wait(ep, &out, 1, -1);
        if (read(fd, &expirations, 8) < 0) return 1;
        late[i] = (long)(now() - due);
    }
    qsort(late, n, sizeof(long), cmp);
    printf("| %d | %ld | %ld | %ld | %ld |\n", interval_us, late[n / 2] / 1000, late[n * 9 / 10] / 1000,
           late[n * 99 / 100] / 1000, late[n * 999 / 1000] / 1000);
    return 0;
}
C
cc -O2 -o "$WORK/floor" "$WORK/floor.c"
echo "# $(date -Iseconds) · $(nproc) CPUs · timerfd + epoll wake-up lateness, 20 000 wake-ups per interval"
echo "| interval (µs) | late p50 (µs) | p90 | p99 | p99.9 |"
echo "|---|---|---|---|---|"
for I in $INTERVALS; do "$WORK/floor" "$I"; done
