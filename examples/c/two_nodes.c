/*
 * Two bhsync nodes in one process: a write on the first becomes visible on the second.
 *
 *   make install PREFIX=/usr/local        (once, at the repository root)
 *   cc -std=c11 two_nodes.c $(pkg-config --cflags --libs bhsync) -o two_nodes
 *   ./two_nodes
 *
 * or, inside the repository without installing:
 *   cargo build --lib
 *   cc -std=c11 -Iinclude examples/c/two_nodes.c target/debug/libbhsync.a -lpthread -ldl -lm -o two_nodes
 *
 * Every call returns a bhs_status; on failure bhs_last_error() says why.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bhsync.h"

/* Exits with the library's message when a call fails. */
static void check(bhs_status status, const char *what) {
    if (status != BHS_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, bhs_status_str(status), bhs_last_error());
        exit(1);
    }
}

static bhs_node *open_node(void) {
    bhs_config *config = NULL;
    check(bhs_config_new(&config), "bhs_config_new");
    check(bhs_config_set(config, "listen", "127.0.0.1:0"), "listen"); /* any free port */
    check(bhs_config_add_category(config, "notes", "mode=eventual,merge=lww,priority=high"), "category");
    bhs_node *node = NULL;
    check(bhs_node_open(config, &node), "bhs_node_open");
    bhs_config_free(config); /* the node took a copy */
    return node;
}

int main(void) {
    if (bhs_abi_version() != BHS_ABI_VERSION) {
        fprintf(stderr, "libbhsync speaks ABI %u, this program was built for %u\n", bhs_abi_version(), BHS_ABI_VERSION);
        return 1;
    }
    bhs_node *a = open_node();
    bhs_node *b = open_node();

    /* b dials a. */
    bhs_buf addr = {0};
    check(bhs_node_local_addr(a, &addr), "bhs_node_local_addr");
    char a_addr[64] = {0};
    memcpy(a_addr, addr.data, addr.len < sizeof a_addr - 1 ? addr.len : sizeof a_addr - 1);
    bhs_buf_free(&addr);
    check(bhs_node_connect(b, a_addr), "bhs_node_connect");

    /* Write on a. */
    const char *key = "greeting", *value = "hello from node a";
    check(bhs_put(a, "notes", (const uint8_t *)key, strlen(key), (const uint8_t *)value, strlen(value)), "bhs_put");

    /* Wait until b has it: the write is pushed once the link is up, and a sync (here
     * explicit, otherwise periodic) brings b in step in any case. */
    bhs_buf got = {0};
    for (int attempt = 0; attempt < 100; attempt++) {
        bhs_status status = bhs_get(b, "notes", (const uint8_t *)key, strlen(key), &got);
        if (status == BHS_OK) break;
        if (status != BHS_NOT_FOUND) check(status, "bhs_get");
        bhs_sync(b, NULL, 1000, NULL);
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (got.data == NULL) {
        fprintf(stderr, "node b never received the write\n");
        return 1;
    }
    printf("node b reads %s = \"%.*s\"\n", key, (int)got.len, (const char *)got.data);
    bhs_buf_free(&got);

    /* Events: what b heard about. Each event owns its bytes until bhs_event_free. */
    bhs_event event;
    while (bhs_poll_event(b, &event, 0) == BHS_OK) {
        if (event.kind == BHS_EVENT_UPDATED)
            printf("event on b: updated %.*s/%.*s\n", (int)event.category.len, (const char *)event.category.data,
                   (int)event.key.len, (const char *)event.key.data);
        bhs_event_free(&event);
    }

    uint8_t hash_a[32], hash_b[32];
    check(bhs_state_hash(a, NULL, hash_a), "bhs_state_hash");
    check(bhs_state_hash(b, NULL, hash_b), "bhs_state_hash");
    printf("state hashes %s\n", memcmp(hash_a, hash_b, 32) == 0 ? "equal" : "differ");

    check(bhs_node_close(b), "bhs_node_close");
    check(bhs_node_close(a), "bhs_node_close");
    return 0;
}
