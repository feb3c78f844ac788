/*
 * Per-call cost of bhs_get from C: one node in memory (mio), 1000 keys of 16 bytes with
 * 100-byte values, reads round-robin; median of 5 runs of N calls (argv[1], default
 * 100000). Prints ns/call, and the ratio to Rust's Node::get when `make bench-ffi` has
 * written it to build/ffi_get_rust_ns (benches/ffi_get.rs).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bhsync.h"

#define KEYS 1000
#define RUNS 5

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double rust_ns(void) {
    FILE *f = fopen("build/ffi_get_rust_ns", "r");
    double ns = 0;
    if (f) {
        if (fscanf(f, "%lf", &ns) != 1) ns = 0;
        fclose(f);
    }
    return ns;
}

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 100000;
    if (calls <= 0) calls = 100000;
    bhs_config *config = NULL;
    bhs_node *node = NULL;
    if (bhs_config_new(&config) || bhs_config_set(config, "io_backend", "mio") || bhs_node_open(config, &node)) {
        fprintf(stderr, "cannot open a node: %s\n", bhs_last_error());
        return 1;
    }
    bhs_config_free(config);
    static char keys[KEYS][17];
    uint8_t value[100];
    memset(value, 7, sizeof value);
    for (int i = 0; i < KEYS; i++) {
        snprintf(keys[i], sizeof keys[i], "key-%012d", i);
        if (bhs_put(node, "default", (const uint8_t *)keys[i], 16, value, sizeof value) != BHS_OK) return 1;
    }
    double runs[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double start = now_ns();
        for (long i = 0; i < calls; i++) {
            bhs_buf buf = {0};
            if (bhs_get(node, "default", (const uint8_t *)keys[i % KEYS], 16, &buf) != BHS_OK) return 1;
            bhs_buf_free(&buf);
        }
        runs[r] = (now_ns() - start) / calls;
    }
    qsort(runs, RUNS, sizeof runs[0], compare);
    double rust = rust_ns();
    printf("  C    -> bhs_get         %10.0f ns/call", runs[RUNS / 2]);
    if (rust > 0) printf("  %.2fx", runs[RUNS / 2] / rust);
    printf("\n");
    bhs_node_close(node);
    return 0;
}
