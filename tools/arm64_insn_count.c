/*
 * A QEMU TCG plugin that counts the guest instructions a program executes (user mode).
 *
 * Built by tools/build_arm64_insn_counter.sh against qemu 7.2's include/qemu/qemu-plugin.h:
 * each translated block gets an inline add of its instruction count, run every time the block
 * executes; at exit the total is written to the file named by the `outfile=` argument
 * (qemu-aarch64 -plugin ./arm64_insn_count.so,outfile=count.txt ...), or to qemu's log.
 * One counter for all guest threads: exact with a single-threaded guest, approximate otherwise.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t instructions;
static char outfile[4096];

static void tb_trans_cb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &instructions,
                                             qemu_plugin_tb_n_insns(tb));
}

static void at_exit(qemu_plugin_id_t id, void *data)
{
    char line[64];
    snprintf(line, sizeof(line), "%" PRIu64 "\n", instructions);
    if (outfile[0]) {
        FILE *stream = fopen(outfile, "w");
        if (stream) {
            fputs(line, stream);
            fclose(stream);
            return;
        }
    }
    qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "outfile=", 8) == 0 && strlen(argv[i] + 8) < sizeof(outfile)) {
            strcpy(outfile, argv[i] + 8);
        } else {
            fprintf(stderr, "arm64_insn_count: unknown or too long argument '%s' "
                            "(expected outfile=PATH)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans_cb);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
