/*
 * The benchmark's sanity row: a loop of exactly 2 instructions per turn (subtract-and-set-flags,
 * branch), run N times between two stage marks, so the plugin must report 2*N for it. A broken
 * or miscounting plugin shows here before any figure of glance is trusted.
 *   known-loop N
 */
#include <stdlib.h>
#include <unistd.h>

#define MARK(id) ((void)!write(-1, NULL, 0x61a9ce00u | (id)))

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    if (n == 0) {
        return 2;
    }
    MARK(1);
#if defined(__aarch64__)
    __asm__ volatile("1: subs %0, %0, #1\n\tb.ne 1b" : "+r"(n) : : "cc");
#elif defined(__arm__)
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
#else
#error "aarch64 or arm only"
#endif
    MARK(2);
    return 0;
}
