/* A QEMU TCG plugin for bench/run-benchmarks: counts the instructions executed in one address range
 * (the kernel's text) and, each time the instruction at `marker` runs (an L2 loop's first
 * instruction), writes the count since the last time to `out`, one line each: the kernel's
 * instructions per round trip of the loop. Under -icount it changes nothing the guests see.
 * usage: -plugin FILE.so,lo=HEX,hi=HEX,marker=HEX,out=PATH   (the range is [lo, hi))
 *
 * Debian ships no qemu-plugin.h, so the part of QEMU 7.2's plugin API (version 1) used here is
 * declared below as that header declares it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void* userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn* insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void* userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn* insn, enum qemu_plugin_op op, void* ptr,
                                                uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);

#define EXPORTED __attribute__((visibility("default")))

EXPORTED int qemu_plugin_version = 1;

static uint64_t range_start, range_end, marker;
static uint64_t counted, counted_at_last_marker;  // one vCPU: no two callbacks at once
static FILE* out;

static void at_marker(unsigned int vcpu_index, void* userdata) {
    (void)vcpu_index;
    (void)userdata;
    uint64_t value = counted - counted_at_last_marker;
    char digits[22];
    size_t at = sizeof(digits) - 1;
    digits[at] = '\0';
    digits[--at] = '\n';
    do {
        digits[--at] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    fputs(digits + at, out);
    counted_at_last_marker = counted;
}

static void on_translation(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
    (void)id;
    size_t count = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < count; ++i) {
        struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t address = qemu_plugin_insn_vaddr(insn);
        if (address >= range_start && address < range_end)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counted, 1);
        else if (address == marker)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, at_marker, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

static void at_exit(qemu_plugin_id_t id, void* userdata) {
    (void)id;
    (void)userdata;
    fclose(out);
}

// `NAME=HEX` in `arg`: 1 with its value in `value`, else 0.
static int hex_argument(const char* arg, const char* name, uint64_t* value) {
    size_t length = strlen(name);
    if (strncmp(arg, name, length) != 0 || arg[length] != '=' || arg[length + 1] == '\0') return 0;
    char* end = NULL;
    *value = strtoull(arg + length + 1, &end, 16);
    return *end == '\0';
}

EXPORTED int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv) {
    (void)info;
    const char* path = NULL;
    int numbers = 0;
    for (int i = 0; i < argc; ++i) {
        if (hex_argument(argv[i], "lo", &range_start))
            numbers |= 1;
        else if (hex_argument(argv[i], "hi", &range_end))
            numbers |= 2;
        else if (hex_argument(argv[i], "marker", &marker))
            numbers |= 4;
        else if (strncmp(argv[i], "out=", 4) == 0)
            path = argv[i] + 4;
    }
    if (numbers == 7 && path) out = fopen(path, "w");
    if (!out) {
        fputs("kernel_instructions_plugin: give lo=, hi=, marker= and a writable out=\n", stderr);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translation);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
