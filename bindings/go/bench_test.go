package bhsync

import "testing"

// BenchmarkGet is the per-call cost of Node.Get (bhs_get through cgo, the value copied
// into Go memory and its bhs_buf freed) on a present key with a 64-byte value.
// `make bench-ffi-go-python` runs it against the release library.
func BenchmarkGet(b *testing.B) {
	node, err := Open(Config{Categories: []Category{{Name: "bench", Spec: "mode=eventual,merge=lww,priority=high"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	key := []byte("key-00000001")
	if err := node.Put("bench", key, make([]byte, 64)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := node.Get("bench", key); err != nil {
			b.Fatal(err)
		}
	}
	reportPerCall(b)
}

// reportPerCall adds the ns/call figure `make bench-ffi-go-python` prints (= ns/op).
func reportPerCall(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
}

// BenchmarkGetAbsent is the cost of a miss (the not-found status and its message).
func BenchmarkGetAbsent(b *testing.B) {
	node, err := Open(Config{Categories: []Category{{Name: "bench", Spec: "mode=eventual,merge=lww,priority=high"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	key := []byte("absent")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := node.Get("bench", key); err == nil {
			b.Fatal("found an absent key")
		}
	}
	reportPerCall(b)
}

// BenchmarkBareCgoCall is one cgo call that does nothing (bhs_abi_version), for scale.
func BenchmarkBareCgoCall(b *testing.B) {
	for i := 0; i < b.N; i++ {
		LibraryABIVersion()
	}
	reportPerCall(b)
}
