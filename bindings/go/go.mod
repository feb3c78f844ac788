module bhsync

go 1.22
