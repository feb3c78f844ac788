package bhsync

// #include <stdlib.h>
// #include "bhsync.h"
import "C"

import (
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"unsafe"
)

// Config says how to open a Node. The zero value opens a node on an ephemeral loopback
// port, in memory, with one "default" category.
type Config struct {
	// Listen is the TCP address to listen on ("127.0.0.1:0": any free port).
	Listen string
	// Peers are dialled at start and re-dialled with backoff when their link drops.
	Peers []string
	// DataDir holds the identity key, log and snapshots; empty: in memory only.
	DataDir string
	// IdentitySecret fixes the node's identity (32 bytes; tests and simulations).
	IdentitySecret []byte
	// Shards is the number of engine threads (0: the library's default, 1).
	Shards int
	// Categories are the categories the node holds; empty: the library's default.
	Categories []Category
	// Settings are further bhs_config_set keys (see include/bhsync.h), applied after
	// the fields above in key order.
	Settings map[string]string
}

// Category is a named category with its spec string (see bhs_config_add_category in
// include/bhsync.h), for example "mode=eventual,merge=lww,priority=high".
type Category struct {
	Name string
	Spec string
}

// settings lists the (key, value) pairs to hand to bhs_config_set, in a fixed order.
func (cfg *Config) settings() [][2]string {
	var out [][2]string
	if cfg.Listen != "" {
		out = append(out, [2]string{"listen", cfg.Listen})
	}
	if len(cfg.Peers) > 0 {
		out = append(out, [2]string{"peers", strings.Join(cfg.Peers, ",")})
	}
	if cfg.DataDir != "" {
		out = append(out, [2]string{"data_dir", cfg.DataDir})
	}
	if cfg.IdentitySecret != nil {
		out = append(out, [2]string{"identity_secret", hex.EncodeToString(cfg.IdentitySecret)})
	}
	if cfg.Shards != 0 {
		out = append(out, [2]string{"shards", strconv.Itoa(cfg.Shards)})
	}
	keys := make([]string, 0, len(cfg.Settings))
	for key := range cfg.Settings {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		out = append(out, [2]string{key, cfg.Settings[key]})
	}
	return out
}

// cString copies s into C memory for one call; it refuses strings with a NUL byte,
// which C would silently cut.
func cString(op, what, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, invalid(op, what+" contains a NUL byte")
	}
	return C.CString(s), nil
}

// build makes the C configuration; the caller frees it with bhs_config_free.
func (cfg *Config) build() (*C.bhs_config, error) {
	var handle *C.bhs_config
	if err := call("config_new", func() C.bhs_status { return C.bhs_config_new(&handle) }); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			C.bhs_config_free(handle)
		}
	}()
	for _, pair := range cfg.settings() {
		if err := configSet(handle, pair[0], pair[1]); err != nil {
			return nil, err
		}
	}
	for _, category := range cfg.Categories {
		if err := configAddCategory(handle, category); err != nil {
			return nil, err
		}
	}
	ok = true
	return handle, nil
}

func configSet(handle *C.bhs_config, key, value string) error {
	cKey, err := cString("config_set", "key", key)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cKey))
	cValue, err := cString("config_set", "value of "+key, value)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cValue))
	return call("config_set "+key, func() C.bhs_status { return C.bhs_config_set(handle, cKey, cValue) })
}

func configAddCategory(handle *C.bhs_config, category Category) error {
	cName, err := cString("config_add_category", "category name", category.Name)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cName))
	cSpec, err := cString("config_add_category", "category spec", category.Spec)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cSpec))
	return call("config_add_category "+category.Name, func() C.bhs_status {
		return C.bhs_config_add_category(handle, cName, cSpec)
	})
}
