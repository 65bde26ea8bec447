package policy

import (
	"errors"
	"strings"
	"testing"
)

// TestParseTarget is the canonicalization table: each target with the path
// the rules see, the path the app receives, or 400.
func TestParseTarget(t *testing.T) {
	tests := []struct {
		target, path, forward string // path "" means 400
	}{
		// Already canonical: returned as is.
		{"/", "/", "/"},
		{"/a/b", "/a/b", "/a/b"},
		{"/a/b/", "/a/b/", "/a/b/"},
		{"/a/b?x=1&y=/admin", "/a/b", "/a/b"},
		{"/~user/file.tar.gz", "/~user/file.tar.gz", "/~user/file.tar.gz"},
		{"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="},
		// Dot segments, raw.
		{"/a/./b", "/a/b", "/a/b"},
		{"/a/../b", "/b", "/b"},
		{"/a/b/..", "/a/", "/a/"},
		{"/a/b/.", "/a/b/", "/a/b/"},
		{"/public/../admin", "/admin", "/admin"},
		{"/..", "", ""},
		{"/../admin", "", ""},
		{"/a/../../admin", "", ""},
		// Dot segments, percent-encoded, any case, mixed.
		{"/a/%2e%2e/admin", "/admin", "/admin"},
		{"/a/%2E%2E/admin", "/admin", "/admin"},
		{"/a/.%2e/admin", "/admin", "/admin"},
		{"/a/%2e./admin", "/admin", "/admin"},
		{"/a/%2e/admin", "/a/admin", "/a/admin"},
		{"/%2e%2e/admin", "", ""},
		// Double-encoded dot, slash, backslash.
		{"/a/%252e%252e/admin", "", ""},
		{"/a/%252E%252E/admin", "", ""},
		{"/a%252fadmin", "", ""},
		{"/a%252Fadmin", "", ""},
		{"/a%255cadmin", "", ""},
		{"/a/%25%32%65%25%32%65/admin", "", ""},
		{"/100%25", "/100%25", "/100%25"},
		{"/a%2541", "/a%2541", "/a%2541"},
		// Encoded and raw slashes and backslashes.
		{"/a%2fb", "", ""},
		{"/a%2Fb", "", ""},
		{"/admin%2f", "", ""},
		{"/a%5cb", "", ""},
		{"/a%5Cb", "", ""},
		{"/a\\b", "", ""},
		{"/a\\..\\admin", "", ""},
		// NUL and control bytes.
		{"/a%00b", "", ""},
		{"/admin%00.html", "", ""},
		{"/a%0ab", "", ""},
		{"/a%0Db", "", ""},
		{"/a%7fb", "", ""},
		{"/a\x00b", "", ""},
		{"/a\tb", "", ""},
		{"/a\x7fb", "", ""},
		{"/a?x=\x01", "", ""},
		// Fragments.
		{"/a#b", "", ""},
		{"/a%23b", "", ""},
		{"/a?x#y", "", ""},
		{"/a?color=%23fff", "/a", "/a"},
		// ;params: ignored for matching, forwarded as sent.
		{"/app;jsessionid=ABC123/page", "/app/page", "/app;jsessionid=ABC123/page"},
		{"/app/page;jsessionid=abc", "/app/page", "/app/page;jsessionid=abc"},
		{"/public/..;/admin", "/admin", "/admin"},
		{"/public/..;x=y/admin", "/admin", "/admin"},
		{"/public/.;/admin", "/public/admin", "/public/admin"},
		{"/;x/admin", "/admin", "/admin"},
		{"/a;b%2fc/d", "", ""},
		{"/a%3bb", "/a%3Bb", "/a%3Bb"},
		// Duplicate slashes.
		{"//admin", "/admin", "/admin"},
		{"/a//b///c", "/a/b/c", "/a/b/c"},
		{"/admin//", "/admin/", "/admin/"},
		// Unreserved escapes decoded, others upper-cased, raw non-ASCII escaped.
		{"/%61dmin", "/admin", "/admin"},
		{"/%41%42%7e", "/AB~", "/AB~"},
		{"/a%20b", "/a%20b", "/a%20b"},
		{"/a%3fb", "/a%3Fb", "/a%3Fb"},
		{"/caf%c3%a9", "/caf%C3%A9", "/caf%C3%A9"},
		{"/café", "/caf%C3%A9", "/caf%C3%A9"},
		{"/a\"b<c>", "/a%22b%3Cc%3E", "/a%22b%3Cc%3E"},
		// Overlong and invalid UTF-8, bad escapes.
		{"/%c0%ae%c0%ae/admin", "", ""},
		{"/%c0%af", "", ""},
		{"/%e0%80%ae", "", ""},
		{"/%ff", "", ""},
		{"/\xff", "", ""},
		{"/\xc3", "", ""},
		{"/%zz", "", ""},
		{"/%4", "", ""},
		{"/%", "", ""},
		{"/a b", "", ""},
		// Absolute-form and other forms.
		{"http://app.test/a/../b?q", "/b", "/b"},
		{"HTTPS://app.test", "/", "/"},
		{"http://app.test?x=1", "/", "/"},
		{"http:///a", "", ""},
		{"*", "", ""},
		{"a/b", "", ""},
		{"", "", ""},
		{"ftp://app.test/a", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			got, err := ParseTarget(tc.target)
			if tc.path == "" {
				if err == nil || !errors.Is(err, ErrBadTarget) {
					t.Fatalf("ParseTarget(%q) = %+v, %v; want ErrBadTarget", tc.target, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.target, err)
			}
			if got.Path != tc.path || got.Forward != tc.forward {
				t.Errorf("ParseTarget(%q) = path %q forward %q; want %q %q", tc.target, got.Path, got.Forward, tc.path, tc.forward)
			}
			again, err := ParseTarget(got.Forward)
			if err != nil || again.Path != got.Path || again.Forward != got.Forward {
				t.Errorf("not idempotent: %q → %+v, %v", got.Forward, again, err)
			}
		})
	}
}

func TestParseTargetQuery(t *testing.T) {
	got, err := ParseTarget("/a?next=%2Fadmin%2F..&x")
	if err != nil || got.Query != "next=%2Fadmin%2F..&x" || !got.HasQuery {
		t.Errorf("query: %+v %v", got, err)
	}
	got, _ = ParseTarget("/a?")
	if !got.HasQuery || got.Query != "" {
		t.Errorf("empty query: %+v", got)
	}
}

func TestCanonicalHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Wiki.Example.com", "wiki.example.com"},
		{"wiki.example.com:8443", "wiki.example.com"},
		{"wiki.example.com.", "wiki.example.com"},
		{"WIKI.example.com.:443", "wiki.example.com"},
		{"[::1]:8443", "::1"},
		{"[::1]", "::1"},
		{"127.0.0.1:80", "127.0.0.1"},
		{"localhost", "localhost"},
		{"", ""},
		{"evil.com/x", ""},
		{"a..b", ""},
		{"a b", ""},
		{"host:port", ""},
		{"[::1", ""},
		{"wiki.example.com..", ""},
		{"under_score.example", ""},
	}
	for _, tc := range tests {
		if got := CanonicalHost(tc.in); got != tc.want {
			t.Errorf("CanonicalHost(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/a;x/..;/b", "/%2e%2e/", "/caf%c3%a9", "//a//", "/a/%252e", "http://h/a?b#c", "/a\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		got, err := ParseTarget(target)
		if err != nil {
			return
		}
		for _, p := range []string{got.Path, got.Forward} {
			if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(strings.ToUpper(p), "%2F") ||
				strings.Contains(strings.ToUpper(p), "%5C") || strings.Contains(p, "\\") {
				t.Fatalf("ParseTarget(%q) = %q", target, p)
			}
			for _, seg := range strings.Split(p, "/") {
				name, _, _ := strings.Cut(seg, ";")
				if name == "." || name == ".." {
					t.Fatalf("ParseTarget(%q) = %q has a dot segment", target, p)
				}
			}
		}
		var stripped []string
		for _, seg := range strings.Split(got.Forward, "/") {
			name, _, _ := strings.Cut(seg, ";")
			stripped = append(stripped, name)
		}
		if strings.Join(stripped, "/") != got.Path {
			t.Fatalf("ParseTarget(%q): forward %q without params is not path %q", target, got.Forward, got.Path)
		}
		again, err := ParseTarget(got.Forward)
		if err != nil || again.Path != got.Path || again.Forward != got.Forward {
			t.Fatalf("not idempotent: %q → %q → %+v %v", target, got.Forward, again, err)
		}
	})
}
