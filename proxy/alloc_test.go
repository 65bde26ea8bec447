//go:build !race

// The race detector allocates on its own account, so these run in the
// plain pass of scripts/test.sh.

package proxy

import (
	"sync/atomic"
	"testing"
)

// TestAccessLineDoesNotAllocate guards the reason the line is encoded by
// hand: every request pays for it.
func TestAccessLineDoesNotAllocate(t *testing.T) {
	e := testEntry("GET", "app.test", "/home", "alice", "gatehouse.yaml")
	buf := make([]byte, 0, 1024)
	var cache atomic.Pointer[stamp]
	if n := testing.AllocsPerRun(100, func() { buf = appendAccessLine(buf[:0], e, &cache) }); n != 0 {
		t.Errorf("%v allocations per line, want 0", n)
	}
}
