module bhsync-example

go 1.22

require bhsync v0.0.0

replace bhsync => ../../bindings/go
