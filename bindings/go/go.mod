module github.com/blackhole/bhsync/bindings/go

go 1.22
