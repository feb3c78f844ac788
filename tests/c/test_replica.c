/*
 * C tests of the first bhsync C surface: status codes, the last-error message, the
 * in-memory replica (put, get, delete, state hash, proofs, sync), bounds and NULL
 * handling, and concurrent use from several threads. Built and run by `make test`
 * under valgrind, which must report no leak and no invalid access.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bhsync.h"

_Static_assert(sizeof(bhs_buf) == 24, "bhs_buf layout changed");
_Static_assert(sizeof(bhs_status) == 4, "bhs_status is a uint32_t");
_Static_assert(BHS_OK == 0 && BHS_INVALID_ARGUMENT == 1 && BHS_NOT_FOUND == 2 &&
                   BHS_PROOF_INVALID == 3 && BHS_INTERNAL == 4,
               "status codes are stable");

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

static const uint8_t ORIGIN_A[32] = {1};
static const uint8_t ORIGIN_B[32] = {2};

static bhs_replica *new_replica(const uint8_t origin[32], uint32_t shards) {
    bhs_replica *replica = NULL;
    CHECK(bhs_replica_new(origin, shards, &replica) == BHS_OK);
    CHECK(replica != NULL);
    return replica;
}

static int put_str(bhs_replica *r, const char *category, const char *key, const char *value) {
    return bhs_replica_put(r, category, (const uint8_t *)key, strlen(key), (const uint8_t *)value,
                           strlen(value));
}

static void test_versions_and_statuses(void) {
    CHECK(bhs_abi_version() == BHS_ABI_VERSION);
    CHECK(strlen(bhs_version()) > 0);
    CHECK(strcmp(bhs_status_str(BHS_OK), "ok") == 0);
    CHECK(strcmp(bhs_status_str(BHS_NOT_FOUND), "not found") == 0);
    CHECK(strcmp(bhs_status_str(9999), "unknown status") == 0);
    CHECK(bhs_last_error() != NULL);
}

static void test_invalid_arguments(void) {
    bhs_replica *out = NULL;
    CHECK(bhs_replica_new(NULL, 1, &out) == BHS_INVALID_ARGUMENT && out == NULL);
    CHECK(strstr(bhs_last_error(), "origin") != NULL);
    CHECK(bhs_replica_new(ORIGIN_A, 0, &out) == BHS_INVALID_ARGUMENT && out == NULL);
    CHECK(bhs_replica_new(ORIGIN_A, BHS_MAX_SHARDS + 1, &out) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_new(ORIGIN_A, 1, NULL) == BHS_INVALID_ARGUMENT);

    bhs_replica *r = new_replica(ORIGIN_A, 2);
    uint8_t hash[32];
    bhs_buf buf = {0};
    CHECK(bhs_replica_put(NULL, "c", (const uint8_t *)"k", 1, NULL, 0) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_put(r, NULL, (const uint8_t *)"k", 1, NULL, 0) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_put(r, "c", NULL, 3, NULL, 0) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_put(r, "c", (const uint8_t *)"k", 1, NULL, 5) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_put(r, "", (const uint8_t *)"k", 1, NULL, 0) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_put(r, "bad name", (const uint8_t *)"k", 1, NULL, 0) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_get(r, "c", (const uint8_t *)"k", 1, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_get(NULL, "c", (const uint8_t *)"k", 1, &buf) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_state_hash(r, NULL, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_state_hash(NULL, NULL, hash) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_prove(r, "c", (const uint8_t *)"k", 1, NULL) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_proof_verify(NULL, "c", NULL, 0, NULL, 0, NULL, 0) == BHS_INVALID_ARGUMENT);
    CHECK(bhs_replica_sync(r, NULL, NULL) == BHS_INVALID_ARGUMENT);
    /* Nothing above stored anything. */
    uint8_t empty[32] = {0};
    CHECK(bhs_replica_state_hash(r, "c", hash) == BHS_OK && memcmp(hash, empty, 32) == 0);
    bhs_replica_free(r);
    bhs_replica_free(NULL);
}

static void test_put_get_delete(void) {
    bhs_replica *r = new_replica(ORIGIN_A, 4);
    bhs_buf value = {0};
    CHECK(put_str(r, "users", "alice", "admin") == BHS_OK);
    CHECK(bhs_replica_get(r, "users", (const uint8_t *)"alice", 5, &value) == BHS_OK);
    CHECK(value.len == 5 && memcmp(value.data, "admin", 5) == 0);
    bhs_buf_free(&value);
    CHECK(value.data == NULL && value.len == 0);
    bhs_buf_free(&value); /* a second free is harmless */
    bhs_buf_free(NULL);

    CHECK(put_str(r, "users", "alice", "guest") == BHS_OK);
    CHECK(bhs_replica_get(r, "users", (const uint8_t *)"alice", 5, &value) == BHS_OK);
    CHECK(value.len == 5 && memcmp(value.data, "guest", 5) == 0);
    bhs_buf_free(&value);

    bhs_buf untouched = {(uint8_t *)0x1, 7, 0};
    CHECK(bhs_replica_get(r, "users", (const uint8_t *)"bob", 3, &untouched) == BHS_NOT_FOUND);
    CHECK(untouched.data == (uint8_t *)0x1 && untouched.len == 7);
    CHECK(bhs_replica_get(r, "nobody", (const uint8_t *)"bob", 3, &value) == BHS_NOT_FOUND);

    CHECK(bhs_replica_delete(r, "users", (const uint8_t *)"alice", 5) == BHS_OK);
    CHECK(bhs_replica_get(r, "users", (const uint8_t *)"alice", 5, &value) == BHS_NOT_FOUND);
    CHECK(bhs_replica_delete(r, "users", (const uint8_t *)"alice", 5) == BHS_NOT_FOUND);
    bhs_replica_free(r);
}

static void test_bounds(void) {
    bhs_replica *r = new_replica(ORIGIN_A, 1);
    uint8_t *big = calloc(BHS_MAX_VALUE_LEN + 1, 1);
    bhs_buf value = {0};
    uint8_t before[32], after[32];

    /* Length 0: empty key and empty value are ordinary entries. */
    CHECK(bhs_replica_put(r, "b", NULL, 0, NULL, 0) == BHS_OK);
    CHECK(bhs_replica_get(r, "b", NULL, 0, &value) == BHS_OK && value.len == 0 && value.data == NULL);

    /* The maximum lengths are accepted. */
    CHECK(bhs_replica_put(r, "b", big, BHS_MAX_KEY_LEN, big, BHS_MAX_VALUE_LEN) == BHS_OK);
    CHECK(bhs_replica_get(r, "b", big, BHS_MAX_KEY_LEN, &value) == BHS_OK);
    CHECK(value.len == BHS_MAX_VALUE_LEN);
    bhs_buf_free(&value);

    /* One byte over either bound: a clear error and nothing stored. */
    CHECK(bhs_replica_state_hash(r, NULL, before) == BHS_OK);
    CHECK(bhs_replica_put(r, "b", big, BHS_MAX_KEY_LEN + 1, NULL, 0) == BHS_INVALID_ARGUMENT);
    CHECK(strstr(bhs_last_error(), "key is 1025 bytes") != NULL);
    CHECK(bhs_replica_put(r, "b", big, 1, big, BHS_MAX_VALUE_LEN + 1) == BHS_INVALID_ARGUMENT);
    CHECK(strstr(bhs_last_error(), "value is") != NULL);
    CHECK(bhs_replica_state_hash(r, NULL, after) == BHS_OK && memcmp(before, after, 32) == 0);
    free(big);
    bhs_replica_free(r);
}

static void test_proofs(void) {
    bhs_replica *r = new_replica(ORIGIN_A, 2);
    char key[16], val[16];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        CHECK(put_str(r, "docs", key, val) == BHS_OK);
    }
    uint8_t root[32];
    bhs_buf proof = {0};
    CHECK(bhs_replica_state_hash(r, "docs", root) == BHS_OK);
    CHECK(bhs_replica_prove(r, "docs", (const uint8_t *)"k42", 3, &proof) == BHS_OK);
    CHECK(bhs_proof_verify(root, "docs", (const uint8_t *)"k42", 3, (const uint8_t *)"v42", 3, proof.data,
                           proof.len) == BHS_OK);
    /* Another value, key or category: well-formed but wrong. */
    CHECK(bhs_proof_verify(root, "docs", (const uint8_t *)"k42", 3, (const uint8_t *)"v43", 3, proof.data,
                           proof.len) == BHS_PROOF_INVALID);
    CHECK(bhs_proof_verify(root, "docs", (const uint8_t *)"k43", 3, (const uint8_t *)"v42", 3, proof.data,
                           proof.len) == BHS_PROOF_INVALID);
    CHECK(bhs_proof_verify(root, "other", (const uint8_t *)"k42", 3, (const uint8_t *)"v42", 3, proof.data,
                           proof.len) == BHS_PROOF_INVALID);
    /* Truncated: does not decode. Forged (a flipped bit in a hash): does not verify. */
    CHECK(bhs_proof_verify(root, "docs", (const uint8_t *)"k42", 3, (const uint8_t *)"v42", 3, proof.data,
                           proof.len - 1) == BHS_INVALID_ARGUMENT);
    proof.data[proof.len - 1] ^= 1;
    CHECK(bhs_proof_verify(root, "docs", (const uint8_t *)"k42", 3, (const uint8_t *)"v42", 3, proof.data,
                           proof.len) == BHS_PROOF_INVALID);
    bhs_buf_free(&proof);
    CHECK(bhs_replica_prove(r, "docs", (const uint8_t *)"nope", 4, &proof) == BHS_NOT_FOUND);
    bhs_replica_free(r);
}

static void test_sync_converges(void) {
    bhs_replica *a = new_replica(ORIGIN_A, 1);
    bhs_replica *b = new_replica(ORIGIN_B, 3);
    CHECK(put_str(a, "cfg", "only-a", "1") == BHS_OK);
    CHECK(put_str(b, "cfg", "only-b", "2") == BHS_OK);
    CHECK(put_str(a, "cfg", "both", "from-a") == BHS_OK);
    CHECK(put_str(b, "cfg", "both", "from-b") == BHS_OK); /* later write: wins */
    CHECK(put_str(b, "logs", "x", "y") == BHS_OK);
    uint64_t transferred = 0;
    CHECK(bhs_replica_sync(a, b, &transferred) == BHS_OK);
    CHECK(transferred == 4);
    uint8_t ha[32], hb[32];
    CHECK(bhs_replica_state_hash(a, NULL, ha) == BHS_OK);
    CHECK(bhs_replica_state_hash(b, NULL, hb) == BHS_OK);
    CHECK(memcmp(ha, hb, 32) == 0);
    bhs_buf value = {0};
    CHECK(bhs_replica_get(a, "cfg", (const uint8_t *)"both", 4, &value) == BHS_OK);
    CHECK(value.len == 6 && memcmp(value.data, "from-b", 6) == 0);
    bhs_buf_free(&value);
    CHECK(bhs_replica_sync(a, a, NULL) == BHS_OK);
    CHECK(bhs_replica_sync(b, a, &transferred) == BHS_OK && transferred == 0);
    bhs_replica_free(a);
    bhs_replica_free(b);
}

struct writer {
    bhs_replica *replica;
    int id;
    int failures;
};

static void *write_many(void *arg) {
    struct writer *w = arg;
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "t%d-%d", w->id, i);
        if (put_str(w->replica, "shared", key, "v") != BHS_OK) w->failures++;
    }
    return NULL;
}

static void test_concurrent_writers(void) {
    bhs_replica *r = new_replica(ORIGIN_A, 2);
    pthread_t threads[4];
    struct writer writers[4];
    for (int t = 0; t < 4; t++) {
        writers[t] = (struct writer){r, t, 0};
        CHECK(pthread_create(&threads[t], NULL, write_many, &writers[t]) == 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        CHECK(writers[t].failures == 0);
    }
    bhs_buf value = {0};
    CHECK(bhs_replica_get(r, "shared", (const uint8_t *)"t3-499", 6, &value) == BHS_OK);
    bhs_buf_free(&value);
    bhs_replica_free(r);
}

int main(void) {
    test_versions_and_statuses();
    test_invalid_arguments();
    test_put_get_delete();
    test_bounds();
    test_proofs();
    test_sync_converges();
    test_concurrent_writers();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
