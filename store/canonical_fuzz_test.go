package store

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCanonicalNames: canonical usernames and emails are fixed points
// (canonicalizing again changes nothing), lower case, printable ASCII for
// usernames, exactly one '@' for emails, and a username never contains
// '@', so a login with '@' is always an email.
func FuzzCanonicalNames(f *testing.F) {
	for _, s := range []string{"Alice", " alice ", "alice@example.com", "ALICE@EXAMPLE.COM", "a@b@c", "al\x00ice",
		"ａlice", "alice.", "-alice", "a", strings.Repeat("a", 65), "alice@ex ample.com", "\u212Aelvin", "x@y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if u, err := CanonicalUsername(s); err == nil {
			if again, err := CanonicalUsername(u); err != nil || again != u {
				t.Errorf("username %q → %q → %q, %v", s, u, again, err)
			}
			if u == "" || len(u) > 64 || strings.ContainsAny(u, "@ \t") || u != strings.ToLower(u) {
				t.Errorf("username %q → %q", s, u)
			}
			for i := 0; i < len(u); i++ {
				if u[i] < 0x21 || u[i] > 0x7e {
					t.Errorf("username %q → %q holds byte %#x", s, u, u[i])
				}
			}
		}
		if e, err := CanonicalEmail(s); err == nil && e != "" {
			if again, err := CanonicalEmail(e); err != nil || again != e {
				t.Errorf("email %q → %q → %q, %v", s, e, again, err)
			}
			if strings.Count(e, "@") != 1 || !utf8.ValidString(e) || strings.ContainsAny(e, " \t\r\n\x00") {
				t.Errorf("email %q → %q", s, e)
			}
		}
	})
}
