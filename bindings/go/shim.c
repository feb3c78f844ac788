#include "shim.h"
#include "_cgo_export.h"

/* The C callback the library calls on its engine thread: forwards to the exported Go
 * function with the handle back as an integer. */
static int32_t bhsgo_resolve(void *user_data, const bhs_conflict *conflict, bhs_resolution *out) {
    return bhsGoResolve((uintptr_t)user_data, (bhs_conflict *)conflict, out);
}

bhs_status bhsgo_set_resolver(bhs_node *node, const char *category, uintptr_t handle) {
    return bhs_set_conflict_resolver(node, category, bhsgo_resolve, (void *)handle);
}
