/*
 * A qemu-user TCG plugin that counts guest instructions, for scripts/bench/arm.sh.
 *
 * Instruction counts under qemu are a proxy for time on a board, not time: they compare engines
 * and settings on one emulated core model, and say nothing about caches, memory or clocks.
 *
 * Counting: one add per executed translation block of its instruction count (a TB is counted
 * whole when it starts; a block that faults or makes a system call part-way is over-counted by
 * its remaining instructions, which is the same for every run of the same binary).
 *   mode=inline  (default) an inline add into one counter: about as fast as plain emulation, but
 *                not atomic, so only exact while one guest thread runs at a time;
 *   mode=atomic  a callback per block with an atomic add: slower, exact with many threads;
 *   mode=profile an inline add per translated block into its own counter (same speed as inline),
 *                and at exit one line per block address: `tb VADDR INSNS`, plus `entry ADDR` (the
 *                program's entry point as loaded), from which scripts/bench/arm/profile.py
 *                attributes instructions to the functions of an unstripped binary;
 *                with reset=ID:K the block counters restart at the K-th mark ID (reset=3:2: from
 *                the second frame on, leaving out the load and the first frame).
 *
 * Stage marks: the guest calls write(-1, NULL, 0x61a9ce00 | ID) (glance does at each stage of a
 * frame when GLANCE_INSN_MARKS=1; the call fails with EBADF/EFAULT and has no other effect), and
 * the plugin notes the count at that moment.
 *
 * Output (out=PATH, else stderr), one line each: `mark ID COUNT` in order, then `total COUNT`.
 *
 * Built against qemu-plugin.h of the qemu the harness runs (Debian 12: qemu 7.2, plugin API 1):
 *   gcc -shared -fPIC -O2 -I QEMU_SRC/include/qemu -o insn-count.so insn-count.c
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARK_MAGIC 0x61a9ce00u
#define MAX_MARKS (1u << 20)

struct block {
    uint64_t vaddr;
    uint64_t executed; /* instructions, added inline */
};

static uint64_t count;
static int atomic_mode;
static int profile_mode;
static struct block **blocks; /* one per translation, never freed: TBs may be re-translated */
static size_t n_blocks, cap_blocks;
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t reset_id, reset_nth, reset_seen;
static const char *out_path;
static uint64_t *marks; /* pairs: id, count */
static size_t n_marks;

static void tb_exec(unsigned int vcpu_index, void *udata)
{
    (void)vcpu_index;
    __atomic_fetch_add(&count, (uint64_t)(uintptr_t)udata, __ATOMIC_RELAXED);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (profile_mode) {
        struct block *b = calloc(1, sizeof(*b));
        if (!b) {
            return;
        }
        b->vaddr = qemu_plugin_tb_vaddr(tb);
        pthread_mutex_lock(&blocks_lock);
        if (n_blocks == cap_blocks) {
            size_t cap = cap_blocks ? 2 * cap_blocks : 65536;
            struct block **grown = realloc(blocks, cap * sizeof(*blocks));
            if (!grown) {
                pthread_mutex_unlock(&blocks_lock);
                free(b);
                return;
            }
            blocks = grown;
            cap_blocks = cap;
        }
        blocks[n_blocks++] = b;
        pthread_mutex_unlock(&blocks_lock);
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->executed, n);
    }
    if (atomic_mode) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                             (void *)(uintptr_t)n);
    } else {
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &count, n);
    }
}

/* write() is syscall 64 on aarch64 and 4 on 32-bit arm; fd -1 arrives sign-extended or not. */
static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu_index; (void)a2; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
    if ((num != 64 && num != 4) || (a1 & 0xffffffffu) != 0xffffffffu ||
        (a3 & 0xffffff00u) != MARK_MAGIC || n_marks >= MAX_MARKS) {
        return;
    }
    uint64_t now = __atomic_load_n(&count, __ATOMIC_RELAXED);
    if (profile_mode && reset_nth && (a3 & 0xff) == reset_id && ++reset_seen == reset_nth) {
        pthread_mutex_lock(&blocks_lock);
        for (size_t i = 0; i < n_blocks; i++) {
            blocks[i]->executed = 0;
        }
        pthread_mutex_unlock(&blocks_lock);
    }
    marks[2 * n_marks] = a3 & 0xff;
    marks[2 * n_marks + 1] = now;
    n_marks++;
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    (void)id; (void)p;
    FILE *f = out_path ? fopen(out_path, "w") : stderr;
    if (!f) {
        fprintf(stderr, "insn-count: cannot write %s\n", out_path);
        f = stderr;
    }
    for (size_t i = 0; i < n_marks; i++) {
        fprintf(f, "mark %" PRIu64 " %" PRIu64 "\n", marks[2 * i], marks[2 * i + 1]);
    }
    fprintf(f, "total %" PRIu64 "\n", __atomic_load_n(&count, __ATOMIC_RELAXED));
    if (profile_mode) {
        fprintf(f, "entry %" PRIu64 "\n", qemu_plugin_entry_code());
        for (size_t i = 0; i < n_blocks; i++) {
            if (blocks[i]->executed) {
                fprintf(f, "tb %" PRIu64 " %" PRIu64 "\n", blocks[i]->vaddr, blocks[i]->executed);
            }
        }
    }
    if (f != stderr) {
        fclose(f);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = argv[i] + 4;
        } else if (strcmp(argv[i], "mode=atomic") == 0) {
            atomic_mode = 1;
        } else if (strncmp(argv[i], "reset=", 6) == 0) {
            if (sscanf(argv[i] + 6, "%" SCNu64 ":%" SCNu64, &reset_id, &reset_nth) != 2) {
                fprintf(stderr, "insn-count: reset=ID:K, e.g. reset=3:2\n");
                return -1;
            }
        } else if (strcmp(argv[i], "mode=profile") == 0) {
            profile_mode = 1;
        } else if (strcmp(argv[i], "mode=inline") != 0) {
            fprintf(stderr, "insn-count: unknown argument %s (out=PATH, mode=inline|atomic|profile)\n",
                    argv[i]);
            return -1;
        }
    }
    marks = calloc(2 * MAX_MARKS, sizeof(uint64_t));
    if (!marks) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
