//go:build !race

// The race detector allocates on its own account, so these run in the
// plain pass of scripts/test.sh.

package policy

import (
	"net/netip"
	"testing"
)

func TestDecideDoesNotAllocate(t *testing.T) {
	p := benchPolicy(t, 10, 50)
	req := &Request{Host: "app3.example.com", Method: "GET", Path: "/section7/page/42", ClientIP: netip.MustParseAddr("10.1.2.3"), User: alice}
	if allocs := testing.AllocsPerRun(100, func() { p.Decide(req) }); allocs != 0 {
		t.Errorf("Decide made %v allocations", allocs)
	}
}

func TestParseTargetDoesNotAllocateForCanonicalPaths(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = ParseTarget("/api/v1/users/42?expand=roles")
	})
	if allocs != 0 {
		t.Errorf("%v allocations for a canonical target", allocs)
	}
}
