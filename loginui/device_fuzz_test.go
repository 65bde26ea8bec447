package loginui

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDeviceName: a User-Agent is whatever the client sends; its summary
// on the account page is short, valid UTF-8 and free of control bytes.
func FuzzDeviceName(f *testing.F) {
	for _, ua := range []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1",
		"curl/8.5.0", "", "\x00\xff<script>", strings.Repeat("Edg/", 1000),
	} {
		f.Add(ua)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		d := deviceName(ua)
		if !utf8.ValidString(d) || len(d) > 200 || strings.ContainsFunc(d, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Errorf("deviceName(%q) = %q", ua, d)
		}
	})
}
