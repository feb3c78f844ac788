/* C glue between the Go package and bhsync.h (compiled by cgo with the package). */
#ifndef BHSYNC_GO_SHIM_H
#define BHSYNC_GO_SHIM_H

#include <stdint.h>
#include "bhsync.h"

/* Registers the package's Go resolver for `category`, with a cgo.Handle (an integer,
 * never a Go pointer) as user_data. */
bhs_status bhsgo_set_resolver(bhs_node *node, const char *category, uintptr_t handle);

#endif
