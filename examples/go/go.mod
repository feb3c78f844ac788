module bhsync-example

go 1.22

require github.com/blackhole/bhsync/bindings/go v0.0.0

// This repository's copy of the binding; a program elsewhere points the replace at its
// own clone (or drops it once the module is fetched from its published path).
replace github.com/blackhole/bhsync/bindings/go => ../../bindings/go
