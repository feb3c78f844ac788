/*
 * C tests of the node C ABI (src/ffi/{config,node,event,resolver,metrics}.rs):
 *  - three nodes over loopback: connected, a write on each, counters, a conflict
 *    resolved by a resolver written in C, sync, equal state hashes, every value read
 *    back on every node, events received;
 *  - bad input: every function with NULL handles and pointers, zero and huge lengths,
 *    unknown keys and enum values, a node whose engine has stopped, and calls from
 *    several threads at once: every call returns a status, none crashes.
 * Built and run by `make test` under valgrind (no leak, no invalid access), so the
 * cluster is small: 3 nodes, a few hundred writes. A failure prints the line and
 * bhs_last_error(); rerun with `make c-test`.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bhsync.h"

_Static_assert(sizeof(bhs_event) == 192, "bhs_event layout changed");
_Static_assert(sizeof(bhs_sync_report) == 104, "bhs_sync_report layout changed");
_Static_assert(sizeof(bhs_node_metrics) == 320, "bhs_node_metrics layout changed");
_Static_assert(sizeof(bhs_conflict) == 232, "bhs_conflict layout changed");
_Static_assert(sizeof(bhs_versioned) == 88, "bhs_versioned layout changed");
_Static_assert(sizeof(bhs_resolution) == 64, "bhs_resolution layout changed");
_Static_assert(BHS_TIMEOUT == 64 && BHS_CLOSED == 65 && BHS_BUSY == 66 && BHS_IO == 67 &&
                   BHS_WRONG_MERGE_RULE == 68,
               "node status codes are stable");
_Static_assert(BHS_EVENT_PEER_UP == 1 && BHS_EVENT_CONFLICT == 7, "event kinds are stable");

static int passed, failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__,     \
                    __LINE__, #cond, bhs_last_error());                                \
        }                                                                              \
    } while (0)

#define NODES 3
#define KEYS_PER_NODE 100

/* ---- the conflict resolver, in C ---- */

typedef struct {
    atomic_int calls;
} resolver_state;

/* The larger value wins (equal values: keep the local one), so every node reaches
 * the same answer whatever order versions arrive in. Runs on an engine thread. */
static int32_t larger_value_wins(void *user_data, const bhs_conflict *c, bhs_resolution *out) {
    resolver_state *state = user_data;
    atomic_fetch_add(&state->calls, 1);
    if (c->size < sizeof(bhs_conflict) || out->size < sizeof(bhs_resolution)) return -1;
    size_t n = c->local.value_len < c->remote.value_len ? c->local.value_len : c->remote.value_len;
    int order = n ? memcmp(c->local.value, c->remote.value, n) : 0;
    if (order == 0) order = (c->local.value_len > c->remote.value_len) - (c->local.value_len < c->remote.value_len);
    out->choice = order < 0 ? BHS_RESOLVE_REMOTE : BHS_RESOLVE_LOCAL;
    return 0;
}

/* A resolver that answers nonsense: an unknown choice, and a merged buffer that the
 * library must release anyway. The node falls back to last-writer-wins. */
static int32_t unknown_choice(void *user_data, const bhs_conflict *c, bhs_resolution *out) {
    resolver_state *state = user_data;
    atomic_fetch_add(&state->calls, 1);
    (void)c;
    bhs_buf_copy((const uint8_t *)"junk", 4, &out->merged);
    out->choice = 99;
    return 0;
}

/* ---- helpers ---- */

static int put_str(bhs_node *n, const char *category, const char *key, const char *value) {
    return bhs_put(n, category, (const uint8_t *)key, strlen(key), (const uint8_t *)value, strlen(value));
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int event_counts[NODES][8];

static void drain_events(bhs_node **nodes) {
    for (int i = 0; i < NODES; i++) {
        bhs_event ev;
        while (bhs_poll_event(nodes[i], &ev, 0) == BHS_OK) {
            CHECK(ev.size == sizeof(bhs_event));
            if (ev.kind < 8) event_counts[i][ev.kind]++;
            if (ev.kind == BHS_EVENT_UPDATED) CHECK(ev.category.len > 0 && ev.category.data != NULL);
            bhs_event_free(&ev);
            CHECK(ev.category.data == NULL && ev.key.data == NULL && ev.message.data == NULL);
        }
    }
}

static bhs_node *open_node(int index) {
    bhs_config *cfg = NULL;
    CHECK(bhs_config_new(&cfg) == BHS_OK);
    char secret[65];
    for (int i = 0; i < 64; i++) secret[i] = "0123456789abcdef"[(i == 2) ? index + 1 : (i * 7) % 16];
    secret[64] = '\0';
    CHECK(bhs_config_set(cfg, "identity_secret", secret) == BHS_OK);
    CHECK(bhs_config_set(cfg, "io_backend", "mio") == BHS_OK);
    CHECK(bhs_config_set(cfg, "anti_entropy_ms", "5000") == BHS_OK); /* the test syncs itself */
    CHECK(bhs_config_add_category(cfg, "counters", "merge=crdt,priority=high") == BHS_OK);
    CHECK(bhs_config_add_category(cfg, "custom", "mode=eventual,merge=custom") == BHS_OK);
    CHECK(bhs_config_add_category(cfg, "custom_bad", "merge=custom,priority=low") == BHS_OK);
    bhs_node *node = NULL;
    CHECK(bhs_node_open(cfg, &node) == BHS_OK && node != NULL);
    bhs_config_free(cfg);
    return node;
}

static int hashes_equal(bhs_node **nodes) {
    uint8_t first[32], other[32];
    if (bhs_state_hash(nodes[0], NULL, first) != BHS_OK) return 0;
    for (int i = 1; i < NODES; i++) {
        if (bhs_state_hash(nodes[i], NULL, other) != BHS_OK || memcmp(first, other, 32) != 0) return 0;
    }
    return 1;
}

/* ---- the cluster ---- */

static void write_before_connecting(bhs_node **nodes) {
    for (int i = 0; i < NODES; i++) {
        char value[32];
        snprintf(value, sizeof value, "value-from-node-%d", i);
        CHECK(put_str(nodes[i], "custom", "shared", value) == BHS_OK);
        CHECK(put_str(nodes[i], "custom_bad", "shared", value) == BHS_OK);
    }
}

static void connect_all(bhs_node **nodes) {
    for (int i = 0; i < NODES; i++) {
        for (int j = i + 1; j < NODES; j++) {
            bhs_buf addr = {0};
            CHECK(bhs_node_local_addr(nodes[j], &addr) == BHS_OK && addr.len > 0);
            char text[64] = {0};
            memcpy(text, addr.data, addr.len < 63 ? addr.len : 63);
            bhs_buf_free(&addr);
            CHECK(bhs_node_connect(nodes[i], text) == BHS_OK);
        }
    }
    for (int tries = 0; tries < 200; tries++) {
        bhs_node_metrics m[NODES];
        int up = 0;
        for (int i = 0; i < NODES; i++) up += bhs_metrics(nodes[i], &m[i]) == BHS_OK && m[i].peers_connected == NODES - 1;
        if (up == NODES) break;
        sleep_ms(50);
    }
    drain_events(nodes);
    for (int i = 0; i < NODES; i++) CHECK(event_counts[i][BHS_EVENT_PEER_UP] >= NODES - 1);
}

static void write_on_each(bhs_node **nodes) {
    char key[32], value[48];
    for (int i = 0; i < NODES; i++) {
        for (int k = 0; k < KEYS_PER_NODE; k++) {
            snprintf(key, sizeof key, "key-%d-%03d", i, k);
            snprintf(value, sizeof value, "value %d/%d", i, k);
            CHECK(put_str(nodes[i], "default", key, value) == BHS_OK);
        }
        int64_t now = 0;
        CHECK(bhs_counter_add(nodes[i], "counters", (const uint8_t *)"hits", 4, 10 + i, &now) == BHS_OK);
        CHECK(now >= 10 + i);
        /* Node 0's write may already have reached the others (pushed on the broadcast
         * tree as it happened), so there a delete finds it or not; either way the key
         * ends deleted everywhere (read_everything_back). */
        bhs_status deleted = bhs_delete(nodes[i], "default", (const uint8_t *)"key-0-000", 9);
        CHECK(i == 0 ? deleted == BHS_OK : (deleted == BHS_OK || deleted == BHS_NOT_FOUND));
    }
}

static void sync_until_equal(bhs_node **nodes) {
    int equal = 0;
    for (int round = 0; round < 40 && !equal; round++) {
        for (int i = 0; i < NODES; i++) {
            double t0 = seconds();
            bhs_sync_report report;
            memset(&report, 0xff, sizeof report);
            /* Under valgrind a round can outlast its timeout; the syncs go on in the
             * background and the state hashes below decide. */
            bhs_status status = bhs_sync(nodes[i], NULL, 20000, &report);
            CHECK(status == BHS_OK || status == BHS_TIMEOUT);
            if (getenv("BHS_TEST_VERBOSE"))
                fprintf(stderr, "round %d node %d: %s in %.2f s (peers %u, failed %u, categories failed %u, applied %llu)\n",
                        round, i, bhs_status_str(status), seconds() - t0, report.peers, report.peers_failed,
                        report.categories_failed, (unsigned long long)report.items_applied);
            if (status == BHS_OK) CHECK(report.size == sizeof report && report.peers <= NODES - 1 && report.reserved[0] == 0);
        }
        drain_events(nodes);
        equal = hashes_equal(nodes);
        if (!equal) sleep_ms(100);
    }
    CHECK(equal);
}

static void read_everything_back(bhs_node **nodes) {
    char key[32], value[48];
    for (int n = 0; n < NODES; n++) {
        for (int i = 0; i < NODES; i++) {
            for (int k = 0; k < KEYS_PER_NODE; k++) {
                snprintf(key, sizeof key, "key-%d-%03d", i, k);
                snprintf(value, sizeof value, "value %d/%d", i, k);
                bhs_buf got = {0};
                bhs_status status = bhs_get(nodes[n], "default", (const uint8_t *)key, strlen(key), &got);
                if (i == 0 && k == 0) {
                    CHECK(status == BHS_NOT_FOUND && got.data == NULL);
                    continue;
                }
                CHECK(status == BHS_OK && got.len == strlen(value) && memcmp(got.data, value, got.len) == 0);
                bhs_buf_free(&got);
            }
        }
        int64_t hits = 0;
        CHECK(bhs_counter_get(nodes[n], "counters", (const uint8_t *)"hits", 4, &hits) == BHS_OK && hits == 33);
        bhs_buf shared = {0};
        CHECK(bhs_get(nodes[n], "custom", (const uint8_t *)"shared", 6, &shared) == BHS_OK);
        CHECK(shared.len == 17 && memcmp(shared.data, "value-from-node-2", 17) == 0);
        bhs_buf_free(&shared);
    }
}

/* Network time: one machine, one clock, so close to the system clock; never back. */
static void check_network_time(bhs_node *node) {
    uint64_t first = 0, second = 0;
    int64_t offset = 0;
    CHECK(bhs_network_time(node, &first, &offset) == BHS_OK && offset > -1000 && offset < 1000);
    CHECK(bhs_network_time(node, &second, NULL) == BHS_OK && second >= first);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t system_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    CHECK(second + 2000 > system_ms && second < system_ms + 2000);
    CHECK(bhs_network_time(node, NULL, NULL) == BHS_INVALID_ARGUMENT);
}

static void check_metrics_and_health(bhs_node *node) {
    bhs_node_metrics m;
    CHECK(bhs_metrics(node, &m) == BHS_OK);
    CHECK(m.size == sizeof m && m.io_backend == BHS_IO_BACKEND_MIO && m.peers_connected == NODES - 1);
    CHECK(m.items_in > 0 && m.handshakes_completed > 0 && m.reserved[15] == 0);
    bhs_buf json = {0};
    CHECK(bhs_health_json(node, &json) == BHS_OK && json.len > 2 && json.data[0] == '{');
    bhs_buf_free(&json);
}

static void test_three_nodes(void) {
    resolver_state good = {0}, bad = {0};
    bhs_node *nodes[NODES];
    for (int i = 0; i < NODES; i++) {
        nodes[i] = open_node(i);
        if (!nodes[i]) return;
        CHECK(bhs_set_conflict_resolver(nodes[i], "custom", larger_value_wins, &good) == BHS_OK);
        CHECK(bhs_set_conflict_resolver(nodes[i], "custom_bad", unknown_choice, &bad) == BHS_OK);
    }
    uint8_t id0[32], id1[32];
    CHECK(bhs_node_id(nodes[0], id0) == BHS_OK && bhs_node_id(nodes[1], id1) == BHS_OK);
    CHECK(memcmp(id0, id1, 32) != 0);
    double start = seconds();
    write_before_connecting(nodes);
    connect_all(nodes);
    double connected = seconds();
    write_on_each(nodes);
    double written = seconds();
    sync_until_equal(nodes);
    double synced = seconds();
    read_everything_back(nodes);
    fprintf(stderr, "test_node: 3 nodes connected in %.2f s, %d writes in %.2f s, in step after %.2f s\n",
            connected - start, NODES * KEYS_PER_NODE, written - connected, synced - written);
    check_metrics_and_health(nodes[0]);
    check_network_time(nodes[1]);

    bhs_sync_report report;
    CHECK(bhs_sync(nodes[0], id1, 10000, &report) == BHS_OK && report.peers == 1 && report.peers_succeeded == 1);
    drain_events(nodes);
    int updated = 0, conflicts = 0, finished = 0;
    for (int i = 0; i < NODES; i++) {
        updated += event_counts[i][BHS_EVENT_UPDATED] + event_counts[i][BHS_EVENT_STREAMED];
        conflicts += event_counts[i][BHS_EVENT_CONFLICT];
        finished += event_counts[i][BHS_EVENT_SYNC_FINISHED];
    }
    CHECK(updated > 0 && conflicts > 0 && finished > 0);
    CHECK(atomic_load(&good.calls) > 0 && atomic_load(&bad.calls) > 0);
    for (int i = 0; i < NODES; i++) CHECK(bhs_node_close(nodes[i]) == BHS_OK);
}

/* ---- a seed that leaves (issue 16) ---- */

/* B and C are given only A's address; they learn each other's through A, link, and
 * keep syncing once A has closed. */
static void test_seed_leaves(void) {
    bhs_node *a = open_node(3), *b = open_node(4), *c = open_node(5);
    if (!a || !b || !c) return;
    bhs_buf addr = {0};
    CHECK(bhs_node_local_addr(a, &addr) == BHS_OK && addr.len > 0);
    char text[64] = {0};
    memcpy(text, addr.data, addr.len < 63 ? addr.len : 63);
    bhs_buf_free(&addr);
    CHECK(bhs_node_connect(b, text) == BHS_OK && bhs_node_connect(c, text) == BHS_OK);
    int linked = 0;
    for (int tries = 0; tries < 600 && !linked; tries++) {
        bhs_node_metrics mb = {.size = sizeof mb}, mc = {.size = sizeof mc};
        linked = bhs_metrics(b, &mb) == BHS_OK && bhs_metrics(c, &mc) == BHS_OK && mb.peers_connected == 2 &&
                 mc.peers_connected == 2;
        if (!linked) sleep_ms(50);
    }
    CHECK(linked);
    CHECK(bhs_node_close(a) == BHS_OK);
    CHECK(put_str(b, "default", "after-the-seed", "left") == BHS_OK);
    int seen = 0;
    for (int tries = 0; tries < 600 && !seen; tries++) {
        bhs_buf got = {0};
        seen = bhs_get(c, "default", (const uint8_t *)"after-the-seed", 14, &got) == BHS_OK && got.len == 4;
        bhs_buf_free(&got);
        if (!seen) sleep_ms(50);
    }
    CHECK(seen);
    bhs_event ev;
    for (int n = 0; n < 2; n++) {
        bhs_node *node = n ? c : b;
        while (bhs_poll_event(node, &ev, 0) == BHS_OK) bhs_event_free(&ev);
    }
    CHECK(bhs_node_close(b) == BHS_OK && bhs_node_close(c) == BHS_OK);
}

/* ---- a chain category (issue 16) ---- */

static bhs_node *open_chain_node(int index, const char *dir) {
    bhs_config *cfg = NULL;
    CHECK(bhs_config_new(&cfg) == BHS_OK);
    char secret[65];
    for (int i = 0; i < 64; i++) secret[i] = '6';
    secret[64] = 0;
    secret[3] = (char)('a' + index); /* byte 1 differs: X25519 clamps byte 0 */
    CHECK(bhs_config_set(cfg, "identity_secret", secret) == BHS_OK);
    CHECK(bhs_config_set(cfg, "io_backend", "mio") == BHS_OK);
    CHECK(bhs_config_set(cfg, "data_dir", dir) == BHS_OK);
    CHECK(bhs_config_add_category(cfg, "ledger", "mode=chain") == BHS_OK);
    bhs_node *node = NULL;
    CHECK(bhs_node_open(cfg, &node) == BHS_OK && node != NULL);
    bhs_config_free(cfg);
    return node;
}

/* Blocks appended on A reach B through the chain's sync; both agree on the head and
 * B reads the block back; bad arguments are refused with a status. */
static void test_chain(void) {
    char dir_a[] = "/tmp/bhsync-c-chain-XXXXXX", dir_b[] = "/tmp/bhsync-c-chain-XXXXXX";
    CHECK(mkdtemp(dir_a) != NULL && mkdtemp(dir_b) != NULL);
    bhs_node *a = open_chain_node(0, dir_a), *b = open_chain_node(1, dir_b);
    if (!a || !b) return;
    bhs_buf addr = {0};
    CHECK(bhs_node_local_addr(a, &addr) == BHS_OK && addr.len > 0);
    char text[64] = {0};
    memcpy(text, addr.data, addr.len < 63 ? addr.len : 63);
    bhs_buf_free(&addr);
    CHECK(bhs_node_connect(b, text) == BHS_OK);

    const uint8_t *txs[2] = {(const uint8_t *)"pay 5", (const uint8_t *)"pay 7"};
    size_t lens[2] = {5, 5};
    uint64_t height = 0;
    uint8_t id[32] = {0};
    CHECK(bhs_chain_append(a, "ledger", txs, lens, 2, &height, id) == BHS_OK && height == 1);
    CHECK(bhs_chain_append(a, "ledger", txs, lens, 1, &height, NULL) == BHS_OK && height == 2);
    uint8_t head_a[32], head_b[32];
    uint64_t height_a = 0, height_b = 0;
    int agreed = 0;
    for (int tries = 0; tries < 600 && !agreed; tries++) {
        agreed = bhs_chain_head(a, "ledger", &height_a, head_a) == BHS_OK &&
                 bhs_chain_head(b, "ledger", &height_b, head_b) == BHS_OK && height_b == 2 &&
                 memcmp(head_a, head_b, 32) == 0;
        if (!agreed) sleep_ms(50);
    }
    CHECK(agreed);
    bhs_buf block = {0};
    CHECK(bhs_chain_block(b, "ledger", 1, &block) == BHS_OK && block.len == 176 + 4 + 2 * (4 + 5));
    bhs_buf_free(&block);
    CHECK(bhs_chain_block(b, "ledger", 3, &block) == BHS_NOT_FOUND);

    CHECK(bhs_chain_append(a, NULL, txs, lens, 1, NULL, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_chain_append(a, "ledger", NULL, lens, 1, NULL, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_chain_append(a, "ledger", txs, lens, BHS_MAX_BLOCK_TRANSACTIONS + 1, NULL, NULL) == BHS_INVALID_ARGUMENT);
    size_t huge[1] = {BHS_MAX_TRANSACTION_LEN + 1};
    CHECK(bhs_chain_append(a, "ledger", txs, huge, 1, NULL, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_chain_append(a, "default", txs, lens, 1, NULL, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_chain_head(a, "ledger", NULL, NULL) == BHS_OK);
    CHECK(bhs_chain_block(a, "ledger", 0, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(put_str(a, "ledger", "k", "v") == BHS_WRONG_MODE);
    bhs_event ev;
    for (int n = 0; n < 2; n++) {
        while (bhs_poll_event(n ? b : a, &ev, 0) == BHS_OK) bhs_event_free(&ev);
    }
    CHECK(bhs_node_close(a) == BHS_OK && bhs_node_close(b) == BHS_OK);
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s %s", dir_a, dir_b);
    CHECK(system(command) == 0);
}

/* ---- bad input ---- */

static void test_config_bad_input(void) {
    bhs_config *cfg = NULL;
    CHECK(bhs_config_new(NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_new(&cfg) == BHS_OK);
    CHECK(bhs_config_set(NULL, "listen", "127.0.0.1:0") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, NULL, "x") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, "listen", NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, "colour", "red") == BHS_INVALID_ARGUMENT);
    CHECK(strstr(bhs_last_error(), "colour") != NULL && strstr(bhs_last_error(), "io_backend") != NULL);
    CHECK(bhs_config_set(cfg, "io_backend", "epoll") == BHS_INVALID_ARGUMENT);
    CHECK(strstr(bhs_last_error(), "io_uring") != NULL);
    CHECK(bhs_config_set(cfg, "shards", "0") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, "shards", "99999999999999999999999") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, "encryption", "maybe") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, "peers", "not an address") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, "allowlist", "abc") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, "listen", "") == BHS_INVALID_ARGUMENT);
    char *huge = malloc(1 << 16);
    memset(huge, 'a', (1 << 16) - 1);
    huge[(1 << 16) - 1] = '\0';
    CHECK(bhs_config_set(cfg, huge, huge) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_set(cfg, "peers", huge) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_add_category(cfg, huge, "") == BHS_INVALID_ARGUMENT);
    free(huge);
    CHECK(bhs_config_set(cfg, "\xff\xfe", "1") == BHS_INVALID_ARGUMENT); /* not UTF-8 */
    CHECK(bhs_config_add_category(NULL, "c", NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_add_category(cfg, NULL, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_add_category(cfg, "", NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_add_category(cfg, "has space", NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_add_category(cfg, "c", "merge=fancy") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_add_category(cfg, "c", "colour=red") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_config_add_category(cfg, "c", NULL) == BHS_OK);
    CHECK(bhs_config_add_category(cfg, "c", "merge=crdt") == BHS_OK); /* replaces */
    CHECK(bhs_config_set(cfg, "identity_file", "/proc/nonexistent/dir/id.key") == BHS_OK);
    bhs_node *node = (bhs_node *)0x1;
    CHECK(bhs_node_open(cfg, &node) == BHS_IO && node == (bhs_node *)0x1); /* untouched on failure */
    CHECK(bhs_node_open(NULL, &node) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_node_open(cfg, NULL) == BHS_INVALID_ARGUMENT);
    bhs_config_free(cfg);
    bhs_config_free(NULL);
}

static bhs_node *open_plain_node(void) {
    bhs_config *cfg = NULL;
    bhs_node *node = NULL;
    CHECK(bhs_config_new(&cfg) == BHS_OK);
    CHECK(bhs_config_set(cfg, "io_backend", "mio") == BHS_OK);
    CHECK(bhs_config_add_category(cfg, "counters", "merge=crdt") == BHS_OK);
    CHECK(bhs_node_open(cfg, &node) == BHS_OK);
    bhs_config_free(cfg);
    return node;
}

static void test_node_null_arguments(bhs_node *n) {
    const uint8_t *k = (const uint8_t *)"k";
    uint8_t out32[32];
    bhs_buf buf = {0};
    bhs_event ev;
    bhs_sync_report report;
    bhs_node_metrics m;
    CHECK(bhs_node_id(NULL, out32) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_node_id(n, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_node_local_addr(NULL, &buf) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_node_local_addr(n, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_node_connect(NULL, "127.0.0.1:1") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_node_connect(n, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_node_connect(n, "nowhere") == BHS_INVALID_ARGUMENT);
    CHECK(bhs_put(NULL, "default", k, 1, k, 1) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_put(n, NULL, k, 1, k, 1) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_put(n, "default", NULL, 1, k, 1) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_put(n, "default", k, 1, NULL, 1) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_get(NULL, "default", k, 1, &buf) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_get(n, "default", k, 1, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_get(n, NULL, k, 1, &buf) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_delete(NULL, "default", k, 1) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_delete(n, "default", NULL, 5) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_counter_add(NULL, "counters", k, 1, 1, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_counter_get(n, "counters", k, 1, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_state_hash(NULL, NULL, out32) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_state_hash(n, NULL, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_sync(NULL, NULL, 10, &report) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_poll_event(NULL, &ev, 0) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_poll_event(n, NULL, 0) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_set_conflict_resolver(NULL, "default", larger_value_wins, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_set_conflict_resolver(n, NULL, larger_value_wins, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_set_conflict_resolver(n, "default", NULL, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_metrics(NULL, &m) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_metrics(n, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_health_json(NULL, &buf) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_health_json(n, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_buf_copy(NULL, 3, &buf) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_buf_copy(k, 1, NULL) == BHS_INVALID_ARGUMENT);
    bhs_event_free(NULL);
    bhs_buf_free(NULL);
    CHECK(bhs_node_close(NULL) == BHS_OK);
    CHECK(bhs_node_shutdown(NULL) == BHS_INVALID_ARGUMENT);
}

static void test_node_lengths_and_unknowns(bhs_node *n) {
    const uint8_t *k = (const uint8_t *)"k";
    uint8_t *big = calloc(BHS_MAX_VALUE_LEN + 1, 1);
    bhs_buf buf = {0};
    int64_t v = 0;
    uint8_t out32[32];
    /* Zero lengths: an empty key and an empty value are fine, NULL allowed with 0. */
    CHECK(bhs_put(n, "default", NULL, 0, NULL, 0) == BHS_OK);
    CHECK(bhs_get(n, "default", NULL, 0, &buf) == BHS_OK && buf.len == 0 && buf.data == NULL);
    /* Over the bounds, and huge lengths: refused before any byte is read. */
    CHECK(bhs_put(n, "default", big, BHS_MAX_KEY_LEN + 1, k, 1) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_put(n, "default", k, 1, big, BHS_MAX_VALUE_LEN + 1) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_put(n, "default", k, 1, big, BHS_MAX_VALUE_LEN) == BHS_OK);
    CHECK(bhs_put(n, "default", k, SIZE_MAX, k, 1) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_put(n, "default", k, 1, k, SIZE_MAX) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_get(n, "default", k, SIZE_MAX, &buf) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_delete(n, "default", k, (size_t)1 << 62) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_counter_add(n, "counters", k, SIZE_MAX / 2, 1, &v) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_buf_copy(k, SIZE_MAX, &buf) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_get(n, "default", k, 1, &buf) == BHS_OK && buf.len == BHS_MAX_VALUE_LEN);
    bhs_buf_free(&buf);
    bhs_buf_free(&buf); /* a second free is harmless */
    free(big);
    /* Unknown categories, wrong merge rules, bad names. */
    /* An unconfigured category is a bad argument; BHS_NOT_FOUND means an absent key. */
    CHECK(put_str(n, "nosuch", "k", "v") == BHS_INVALID_ARGUMENT);
    CHECK(strstr(bhs_last_error(), "nosuch") != NULL);
    CHECK(bhs_get(n, "nosuch", k, 1, &buf) == BHS_NOT_FOUND); /* a read finds nothing there */
    CHECK(bhs_state_hash(n, "nosuch", out32) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_set_conflict_resolver(n, "nosuch", larger_value_wins, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(put_str(n, "bad name", "k", "v") != BHS_OK);
    CHECK(bhs_counter_add(n, "default", k, 1, 1, &v) == BHS_WRONG_MERGE_RULE);
    CHECK(bhs_counter_get(n, "default", k, 1, &v) == BHS_WRONG_MERGE_RULE);
    CHECK(bhs_counter_add(n, "counters", k, 1, -5, NULL) == BHS_OK);
    CHECK(bhs_counter_get(n, "counters", k, 1, &v) == BHS_OK && v == -5);
    CHECK(bhs_get(n, "default", (const uint8_t *)"absent", 6, &buf) == BHS_NOT_FOUND);
    CHECK(bhs_delete(n, "default", (const uint8_t *)"absent", 6) == BHS_NOT_FOUND);
    /* A peer id nobody knows: the sync finishes, failed. A zero timeout: no wait. */
    bhs_sync_report report;
    uint8_t stranger[32] = {9};
    CHECK(bhs_sync(n, stranger, 2000, &report) == BHS_OK && report.peers_failed == 1);
    CHECK(bhs_sync(n, NULL, 0, NULL) == BHS_OK); /* no peers: nothing to wait for */
    bhs_event ev;
    while (bhs_poll_event(n, &ev, 0) == BHS_OK) bhs_event_free(&ev);
    CHECK(bhs_poll_event(n, &ev, 10) == BHS_TIMEOUT);
    /* Unknown status codes. */
    CHECK(strcmp(bhs_status_str(BHS_CLOSED), "closed") == 0);
    CHECK(strcmp(bhs_status_str(0xffffffffu), "unknown status") == 0);
}

/* ---- several threads at once ---- */

typedef struct {
    bhs_node *node;
    int id;
    int failures;
} worker_args;

static void *worker(void *arg) {
    worker_args *w = arg;
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "t%d-%d", w->id, i);
        if (put_str(w->node, "default", key, "v") != BHS_OK) w->failures++;
        bhs_buf buf = {0};
        if (bhs_get(w->node, "default", (const uint8_t *)key, strlen(key), &buf) != BHS_OK) w->failures++;
        bhs_buf_free(&buf);
        if (bhs_put(w->node, NULL, NULL, 1, NULL, 0) != BHS_INVALID_ARGUMENT) w->failures++;
        if (strstr(bhs_last_error(), "category") == NULL) w->failures++; /* this thread's message */
        uint8_t hash[32];
        if (bhs_state_hash(w->node, NULL, hash) != BHS_OK) w->failures++;
        int64_t v;
        if (bhs_counter_add(w->node, "counters", (const uint8_t *)"c", 1, 1, &v) != BHS_OK) w->failures++;
        bhs_event ev;
        if (bhs_poll_event(w->node, &ev, 0) == BHS_OK) bhs_event_free(&ev);
    }
    return NULL;
}

static void test_threads(bhs_node *n) {
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    worker_args args[THREADS];
    int64_t before = 0, after = 0;
    CHECK(bhs_counter_get(n, "counters", (const uint8_t *)"c", 1, &before) == BHS_OK);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_args){n, i, 0};
        CHECK(pthread_create(&threads[i], NULL, worker, &args[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].failures == 0);
    }
    CHECK(bhs_counter_get(n, "counters", (const uint8_t *)"c", 1, &after) == BHS_OK && after == before + THREADS * 40);
}

/* A node whose engine stopped returns BHS_CLOSED from every call; close frees it. */
static void test_stopped_engine(bhs_node *n) {
    const uint8_t *k = (const uint8_t *)"k";
    bhs_buf buf = {0};
    uint8_t out32[32];
    int64_t v;
    bhs_node_metrics m;
    bhs_event ev;
    CHECK(bhs_node_shutdown(n) == BHS_OK);
    CHECK(bhs_node_shutdown(n) == BHS_OK); /* idempotent */
    CHECK(bhs_put(n, "default", k, 1, k, 1) == BHS_CLOSED);
    CHECK(strstr(bhs_last_error(), "stopped") != NULL);
    CHECK(bhs_get(n, "default", k, 1, &buf) == BHS_CLOSED);
    CHECK(bhs_delete(n, "default", k, 1) == BHS_CLOSED);
    CHECK(bhs_counter_add(n, "counters", k, 1, 1, &v) == BHS_CLOSED);
    CHECK(bhs_counter_get(n, "counters", k, 1, &v) == BHS_CLOSED);
    CHECK(bhs_state_hash(n, NULL, out32) == BHS_CLOSED);
    CHECK(bhs_sync(n, NULL, 100, NULL) == BHS_CLOSED);
    CHECK(bhs_node_connect(n, "127.0.0.1:1") == BHS_CLOSED);
    CHECK(bhs_set_conflict_resolver(n, "default", larger_value_wins, NULL) == BHS_CLOSED);
    CHECK(bhs_metrics(n, &m) == BHS_CLOSED);
    CHECK(bhs_health_json(n, &buf) == BHS_CLOSED);
    CHECK(bhs_node_id(n, out32) == BHS_OK); /* what needs no engine still works */
    CHECK(bhs_node_local_addr(n, &buf) == BHS_OK);
    bhs_buf_free(&buf);
    while (bhs_poll_event(n, &ev, 0) == BHS_OK) bhs_event_free(&ev);
    CHECK(bhs_poll_event(n, &ev, 0) == BHS_TIMEOUT);
    CHECK(bhs_node_close(n) == BHS_OK);
}

static void *run_all(void *unused) {
    (void)unused;
    CHECK(bhs_abi_version() == BHS_ABI_VERSION);
    double start = seconds();
    test_config_bad_input();
    bhs_node *n = open_plain_node();
    if (n) {
        test_node_null_arguments(n);
        test_node_lengths_and_unknowns(n);
        double bad_input = seconds();
        test_threads(n);
        double threads = seconds();
        test_stopped_engine(n);
        fprintf(stderr, "test_node: bad input %.2f s, threads %.2f s, stopped engine %.2f s\n", bad_input - start,
                threads - bad_input, seconds() - threads);
    }
    test_three_nodes();
    test_seed_leaves();
    test_chain();
    return NULL;
}

/* The tests run on a thread of their own: the Rust standard library keeps a per-thread
 * handle that is released when a thread exits, which the main thread never does before
 * the process ends (valgrind would call it "possibly lost"). */
int main(void) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, run_all, NULL) != 0 || pthread_join(thread, NULL) != 0) return 2;
    printf("test_node: %d checks passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
