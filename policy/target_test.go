package policy

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestParseTarget is the canonicalization table: each accepted target with
// the path the rules see and the path the app receives.
func TestParseTarget(t *testing.T) {
	tests := []struct {
		target, path, forward string
	}{
		// Already canonical: returned as is.
		{"/", "/", "/"},
		{"/a/b", "/a/b", "/a/b"},
		{"/a/b/", "/a/b/", "/a/b/"},
		{"/a/b?x=1&y=/admin", "/a/b", "/a/b"},
		{"/~user/file.tar.gz", "/~user/file.tar.gz", "/~user/file.tar.gz"},
		{"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="},
		{"/...", "/...", "/..."},
		{"/a../.b/..c", "/a../.b/..c", "/a../.b/..c"},
		// Dot segments, raw.
		{"/a/./b", "/a/b", "/a/b"},
		{"/a/../b", "/b", "/b"},
		{"/a/b/..", "/a/", "/a/"},
		{"/a/b/.", "/a/b/", "/a/b/"},
		{"/a/..", "/", "/"},
		{"/.", "/", "/"},
		{"/./", "/", "/"},
		{"/public/../admin", "/admin", "/admin"},
		{"/a/b/../../c/./d/", "/c/d/", "/c/d/"},
		// Dot segments, percent-encoded, any case, mixed.
		{"/a/%2e%2e/admin", "/admin", "/admin"},
		{"/a/%2E%2E/admin", "/admin", "/admin"},
		{"/a/%2e%2E/admin", "/admin", "/admin"},
		{"/a/.%2e/admin", "/admin", "/admin"},
		{"/a/%2e./admin", "/admin", "/admin"},
		{"/a/%2e/admin", "/a/admin", "/a/admin"},
		{"/a/%2e%2e%2e/b", "/a/.../b", "/a/.../b"},
		// ;params: ignored for matching, forwarded as sent.
		{"/app;jsessionid=ABC123/page", "/app/page", "/app;jsessionid=ABC123/page"},
		{"/app/page;jsessionid=abc", "/app/page", "/app/page;jsessionid=abc"},
		{"/app;jsessionid=1", "/app", "/app;jsessionid=1"},
		{"/a;x;y=1,2/b;", "/a/b", "/a;x;y=1,2/b;"},
		{"/a;p=%7e%2a", "/a", "/a;p=~%2A"},
		{"/public/..;/admin", "/admin", "/admin"},
		{"/public/..;x=y/admin", "/admin", "/admin"},
		{"/public/%2e%2e;x/admin", "/admin", "/admin"},
		{"/public;p=1/..;/admin;q=2", "/admin", "/admin;q=2"},
		{"/public/.;/admin", "/public/admin", "/public/admin"},
		{"/;x/admin", "/admin", "/admin"},
		{"/a/;x", "/a/", "/a/"},
		{"/;", "/", "/"},
		{"/a%3bb", "/a%3Bb", "/a%3Bb"},
		// Duplicate slashes.
		{"//admin", "/admin", "/admin"},
		{"/a//b///c", "/a/b/c", "/a/b/c"},
		{"/admin//", "/admin/", "/admin/"},
		{"//", "/", "/"},
		// Unreserved escapes decoded, others upper-cased, raw non-ASCII escaped.
		{"/%61dmin", "/admin", "/admin"},
		{"/%41%42%7e%2D%5f%2E", "/AB~-_.", "/AB~-_."},
		{"/a%20b", "/a%20b", "/a%20b"},
		{"/a%3fb", "/a%3Fb", "/a%3Fb"},
		{"/a%2a", "/a%2A", "/a%2A"},
		{"/100%25", "/100%25", "/100%25"},
		{"/a%2541", "/a%2541", "/a%2541"},
		{"/caf%c3%a9", "/caf%C3%A9", "/caf%C3%A9"},
		{"/café", "/caf%C3%A9", "/caf%C3%A9"},
		{"/caf\xc3%a9", "/caf%C3%A9", "/caf%C3%A9"},
		{"/%e2%82%ac/日本", "/%E2%82%AC/%E6%97%A5%E6%9C%AC", "/%E2%82%AC/%E6%97%A5%E6%9C%AC"},
		{"/%ef%bf%bd", "/%EF%BF%BD", "/%EF%BF%BD"},
		{"/a\"b<c>[d]^`{|}", "/a%22b%3Cc%3E%5Bd%5D%5E%60%7B%7C%7D", "/a%22b%3Cc%3E%5Bd%5D%5E%60%7B%7C%7D"},
		// Absolute-form: the path is taken, the authority ignored.
		{"http://app.test/a/../b?q", "/b", "/b"},
		{"HTTPS://app.test", "/", "/"},
		{"http://app.test?x=1", "/", "/"},
		{"http://app.test:8443/a", "/a", "/a"},
		{"http://user@app.test/a", "/a", "/a"},
		{"https://[::1]:8443/a/", "/a/", "/a/"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			got, err := ParseTarget(tc.target)
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.target, err)
			}
			if got.Path != tc.path || got.Forward != tc.forward {
				t.Errorf("ParseTarget(%q) = path %q forward %q; want %q %q", tc.target, got.Path, got.Forward, tc.path, tc.forward)
			}
			checkCanonical(t, tc.target, got)
		})
	}
}

// TestParseTargetRefuses is the 400 table: each target a server somewhere
// reads differently from the rules, with the reason the gateway logs.
func TestParseTargetRefuses(t *testing.T) {
	tests := []struct{ target, why string }{
		// Climbing above the root, raw and encoded.
		{"/..", "climbs above /"},
		{"/../admin", "climbs above /"},
		{"/a/../../admin", "climbs above /"},
		{"/%2e%2e/admin", "climbs above /"},
		{"/%2E%2e/admin", "climbs above /"},
		{"/..;/admin", "climbs above /"},
		{"/./../admin", "climbs above /"},
		{"http://app.test/../admin", "climbs above /"},
		// Double-encoded dot, slash, backslash, any case, and deeper.
		{"/a/%252e%252e/admin", "double-encoded"},
		{"/a/%252E%252E/admin", "double-encoded"},
		{"/a/%252e/admin", "double-encoded"},
		{"/a%252fadmin", "double-encoded"},
		{"/a%252Fadmin", "double-encoded"},
		{"/a%255cadmin", "double-encoded"},
		{"/a%255Cadmin", "double-encoded"},
		{"/a/%25252e%25252e/admin", "double-encoded"},
		{"/a/%25%32%65%25%32%65/admin", "double-encoded"},
		{"/a/%25%32%45/admin", "double-encoded"},
		{"/a;p=%252e/b", "double-encoded"},
		// Encoded and raw slashes and backslashes.
		{"/a%2fb", "encoded slash or backslash"},
		{"/a%2Fb", "encoded slash or backslash"},
		{"/admin%2f", "encoded slash or backslash"},
		{"/%2fadmin", "encoded slash or backslash"},
		{"/public%2f..%2fadmin", "encoded slash or backslash"},
		{"/a%5cb", "encoded slash or backslash"},
		{"/a%5Cb", "encoded slash or backslash"},
		{"/a;x%2fy/b", "encoded slash or backslash"},
		{"/a\\b", "backslash"},
		{"/a\\..\\admin", "backslash"},
		{"/admin\\", "backslash"},
		// NUL and control bytes, raw and encoded.
		{"/a%00b", "encoded control character"},
		{"/admin%00.html", "encoded control character"},
		{"/a%0ab", "encoded control character"},
		{"/a%0D%0ASet-Cookie:x", "encoded control character"},
		{"/a%09", "encoded control character"},
		{"/a%1f", "encoded control character"},
		{"/a%7fb", "encoded control character"},
		{"/a\x00b", "control character"},
		{"/a\tb", "control character"},
		{"/a\rb", "control character"},
		{"/a\nb", "control character"},
		{"/a\x7fb", "control character"},
		{"/a?x=\x01", "control character in the query"},
		{"/a?x=\x7f", "control character in the query"},
		// Fragments.
		{"/a#b", "raw #"},
		{"/a%23b", "encoded #"},
		{"/public%23/../admin", "encoded #"},
		{"/a?x#y", "raw #"},
		{"http://app.test#x", "raw #"},
		// Overlong and invalid UTF-8, raw and encoded.
		{"/%c0%ae%c0%ae/admin", "invalid UTF-8"},
		{"/%c0%af", "invalid UTF-8"},
		{"/%c1%9c", "invalid UTF-8"},
		{"/%e0%80%ae", "invalid UTF-8"},
		{"/%f0%80%80%ae", "invalid UTF-8"},
		{"/%ed%a0%80", "invalid UTF-8"},
		{"/%ff", "invalid UTF-8"},
		{"/%c3", "invalid UTF-8"},
		{"/%c3/a", "invalid UTF-8"},
		{"/%c3%28", "invalid UTF-8"},
		{"/%c3a", "invalid UTF-8"},
		{"/%c0%2e%c0%2e/admin", "invalid UTF-8"},
		{"/\xff", "invalid UTF-8"},
		{"/\xc3", "invalid UTF-8"},
		{"/\xc0\xae\xc0\xae/admin", "invalid UTF-8"},
		{"/\xed\xa0\x80", "invalid UTF-8"},
		{"/a?q=\xff", "invalid UTF-8 in the query"},
		// Invalid escapes.
		{"/%zz", "invalid %-escape"},
		{"/%4", "incomplete %-escape"},
		{"/%", "incomplete %-escape"},
		{"/a%g0", "invalid %-escape"},
		{"/%u002e%u002e/admin", "invalid %-escape"},
		{"/%%32%65", "invalid %-escape"},
		// Spaces.
		{"/a b", "space"},
		{"/admin /", "space"},
		{"/a?q=a b", "space in the query"},
		// Not a path.
		{"*", "must start with /"},
		{"a/b", "must start with /"},
		{"", "must start with /"},
		{"admin", "must start with /"},
		{"\\admin", "must start with /"},
		{"ftp://app.test/a", "must start with /"},
		{"http:/admin", "must start with /"},
		{"http:///a", "must start with /"},
		{"http://", "must start with /"},
		{"http://a b/x", "must start with /"},
		{"http://a\\b/x", "must start with /"},
		{"app.test:443", "must start with /"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			got, err := ParseTarget(tc.target)
			if !errors.Is(err, ErrBadTarget) {
				t.Fatalf("ParseTarget(%q) = %+v, %v; want ErrBadTarget", tc.target, got, err)
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("ParseTarget(%q) error %q, want it to say %q", tc.target, err, tc.why)
			}
		})
	}
}

// TestBypassAttempts plays an attacker against a deny rule: every way of
// writing /admin that some server decodes, normalizes or truncates to
// /admin must get 400 or deny, never the public rule behind it.
func TestBypassAttempts(t *testing.T) {
	p := mustCompile(t, []App{
		{Host: "app.test", Rules: []Rule{
			{Path: "/admin/**", Deny: true, Source: src(1)},
			{Path: "/secret", Deny: true, Source: src(2)},
			{Path: "/**", Allow: AllowPublic, Source: src(3)},
		}},
		{Host: "iis.test", CaseInsensitivePaths: true, Rules: []Rule{
			{Path: "/admin/**", Deny: true, Source: src(11)},
			{Path: "/**", Allow: AllowPublic, Source: src(12)},
		}},
	})
	attacks := []string{
		// Dot segments: raw, encoded, mixed case, after ;params (Tomcat "..;").
		"/public/../admin", "/public/../admin/", "/./admin", "/x/./../admin", "/x/y/../../admin/z",
		"/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/%2e%2E/admin", "/public/.%2e/admin",
		"/public/%2e./admin", "/%2e/admin", "/public/..;/admin", "/public/..;x=1/admin",
		"/public/%2e%2e;/admin", "/.;/admin", "/public/.%2E;jsessionid=1/../admin",
		// ;params on the protected segment itself.
		"/;/admin", "/;x/admin", "/admin;x", "/admin;/", "/admin;jsessionid=1/x", "/secret;x", "/secret;",
		// Trailing slash and duplicate slashes.
		"/secret/", "//admin", "///admin/x", "//admin//", "/.//admin", "/secret//",
		// Escapes of unreserved characters.
		"/%61dmin", "/%61%64%6d%69%6e/x", "/adm%69n", "/%73ecret", "/secre%74/",
		// Double encoding.
		"/public/%252e%252e/admin", "/public/%252E%252E/admin", "/public%252f..%252fadmin",
		"/public%252F..%252Fadmin", "/public%255c..%255cadmin", "/public/%25252e%25252e/admin",
		"/public/%25%32%65%25%32%65/admin", "/public/%25%32e%25%32e/admin",
		// Encoded and raw separators.
		"/public%2f..%2fadmin", "/public%2F..%2Fadmin", "/%2fadmin", "/public%5c..%5cadmin",
		"/public%5C..%5Cadmin", "/public\\..\\admin", "\\admin", "/admin\\x", "/public/..\\admin",
		// Truncation: NUL, control bytes, fragments.
		"/admin%00", "/secret%00.html", "/secret\x00", "/%00/../admin", "/secret%0a", "/secret%0d%0a",
		"/secret%09", "/secret\t", "/secret%7f", "/secret%1f", "/public#/../admin", "/public%23/../admin",
		"/secret%23", "/secret#x", "/public?x#/../admin",
		// Overlong and invalid UTF-8 for "." and "/".
		"/public/%c0%ae%c0%ae/admin", "/public/%c0%2e%c0%2e/admin", "/public/%e0%80%ae%e0%80%ae/admin",
		"/public%c0%afadmin", "/public%c1%9c..%c1%9cadmin", "/public/\xc0\xae\xc0\xae/admin",
		"/public%e0%80%afadmin", "/secret%ff",
		// Invalid escapes and IIS %u.
		"/%zzadmin", "/secret%", "/secret%4", "/public/%u002e%u002e/admin", "/%%32%65%%32%65/admin",
		// Spaces.
		"/secret ", "/admin /x",
		// Absolute-form.
		"http://app.test/public/../admin", "HTTP://app.test/admin", "https://app.test//admin",
		"http://app.test/%2e%2e/admin", "http://other.test/secret", "http://app.test/secret;x",
	}
	if len(attacks) < 60 {
		t.Fatalf("only %d attacks", len(attacks))
	}
	iisAttacks := []string{"/ADMIN", "/Admin/x", "/%41DMIN/x", "/aDmIn/", "/%41%44%4d%49%4e", "/x/../ADMIN;x/y", "/ADMIN%2fx", "/admin\\x"}
	for host, list := range map[string][]string{"app.test": attacks, "iis.test": iisAttacks} {
		for _, target := range list {
			t.Run(host+target, func(t *testing.T) {
				tg, err := ParseTarget(target)
				if err != nil {
					if !errors.Is(err, ErrBadTarget) {
						t.Fatalf("ParseTarget(%q): %v, want ErrBadTarget", target, err)
					}
					return // 400
				}
				for _, u := range []*Identity{nil, bob} {
					d := p.Decide(&Request{Host: host, Method: "GET", Path: tg.Path, User: u})
					if d.Action != Deny || d.Rule == nil || d.Rule.Allow != "" {
						t.Errorf("%s: path %q forwarded as %q: %v by %+v; want 400 or deny", target, tg.Path, tg.Forward, d.Action, d.Rule)
					}
				}
			})
		}
	}
}

// TestNoParserDifferential reads each forwarded path the way common app
// servers do (Tomcat, Jetty and Spring drop ;params and then decode; Go,
// nginx and Node decode and keep them) and checks they find the very path
// the rules matched.
func TestNoParserDifferential(t *testing.T) {
	targets := []string{
		"/", "/a/b/", "/a/../b", "/%61dmin", "/a%20b/c%2541", "/caf%c3%a9/x", "/app;jsessionid=1/x;y=%7e",
		"/public/..;/admin", "/a%3bb/c", "/a%3Fb", "/100%25/x", "/a/%2e%2e%2e/b", "/a\"b", "/;x/y",
		"/a/%25%32%35/b", "/%e2%82%ac", "/x;%2e%2e/y", "/x;p=..%3b/y",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			tg, err := ParseTarget(target)
			if err != nil {
				t.Fatal(err)
			}
			checkCanonical(t, target, tg)
		})
	}
}

// checkCanonical asserts what every accepted target must satisfy: the
// properties the proxy relies on, and no parser differential.
func checkCanonical(t *testing.T, target string, got Target) {
	t.Helper()
	for _, p := range []string{got.Path, got.Forward} {
		up := strings.ToUpper(p)
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(up, "%2F") ||
			strings.Contains(up, "%5C") || strings.ContainsAny(p, "\\#? ") || !utf8.ValidString(p) {
			t.Fatalf("ParseTarget(%q) = %q", target, p)
		}
		for _, c := range []byte(p) {
			if c < 0x21 || c >= 0x7f {
				t.Fatalf("ParseTarget(%q) = %q holds byte %#x", target, p, c)
			}
		}
		for _, seg := range strings.Split(p, "/") {
			name, _, _ := strings.Cut(seg, ";")
			if name == "." || name == ".." {
				t.Fatalf("ParseTarget(%q) = %q has a dot segment", target, p)
			}
		}
		if _, err := url.Parse(p); err != nil {
			t.Fatalf("ParseTarget(%q) = %q, which net/url refuses: %v", target, p, err)
		}
	}
	if strings.Contains(got.Path, ";") {
		t.Fatalf("ParseTarget(%q): path %q keeps ;params", target, got.Path)
	}
	if stripParams(got.Forward) != got.Path {
		t.Fatalf("ParseTarget(%q): forward %q without params is not path %q", target, got.Forward, got.Path)
	}
	again, err := ParseTarget(got.Forward)
	if err != nil || again.Path != got.Path || again.Forward != got.Forward {
		t.Fatalf("not idempotent: %q → %q → %+v %v", target, got.Forward, again, err)
	}
	// The app decodes once. Params first (Tomcat, Jetty, Spring): it must
	// read the path the rules matched, decoded. Decoding first (Go, nginx,
	// Node): the same segments, the last ones possibly with ";params".
	want, err := url.PathUnescape(got.Path)
	if err != nil {
		t.Fatalf("ParseTarget(%q): path %q does not decode: %v", target, got.Path, err)
	}
	tomcat, err := url.PathUnescape(stripParams(got.Forward))
	if err != nil || tomcat != want {
		t.Fatalf("ParseTarget(%q): a params-first server reads %q, rules matched %q", target, tomcat, want)
	}
	goReads, err := url.PathUnescape(got.Forward)
	if err != nil {
		t.Fatalf("ParseTarget(%q): forward %q does not decode: %v", target, got.Forward, err)
	}
	wantSegs, goSegs := strings.Split(want, "/"), strings.Split(goReads, "/")
	if len(wantSegs) != len(goSegs) {
		t.Fatalf("ParseTarget(%q): a decoding server reads %q, rules matched %q", target, goReads, want)
	}
	for i, seg := range wantSegs {
		if seg == "." || seg == ".." || goSegs[i] == "." || goSegs[i] == ".." || strings.ContainsAny(seg, "\\\x00") {
			t.Fatalf("ParseTarget(%q): decoding %q gives a dot segment or separator", target, got.Forward)
		}
		if !strings.HasPrefix(goSegs[i], seg) {
			t.Fatalf("ParseTarget(%q): a decoding server reads %q, rules matched %q", target, goReads, want)
		}
	}
}

// stripParams removes ";params" from every segment.
func stripParams(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	return strings.Join(segs, "/")
}

func TestParseTargetQuery(t *testing.T) {
	tests := []struct {
		target, path, query string
		hasQuery            bool
	}{
		{"/a?next=%2Fadmin%2F..&x", "/a", "next=%2Fadmin%2F..&x", true},
		{"/a?", "/a", "", true},
		{"/a", "/a", "", false},
		{"/a?x=/../admin", "/a", "x=/../admin", true},
		{"/a?color=%23fff&n=%00", "/a", "color=%23fff&n=%00", true},
		{"/a?q=caf%C3%A9&r=é", "/a", "q=caf%C3%A9&r=é", true},
		{"/a/../b?x?y", "/b", "x?y", true},
		{"/a;p?q;r", "/a", "q;r", true},
		{"http://h?", "/", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			got, err := ParseTarget(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if got.Path != tc.path || got.Query != tc.query || got.HasQuery != tc.hasQuery {
				t.Errorf("ParseTarget(%q) = path %q query %q %v; want %q %q %v", tc.target, got.Path, got.Query, got.HasQuery, tc.path, tc.query, tc.hasQuery)
			}
		})
	}
}

func TestCanonicalHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Wiki.Example.com", "wiki.example.com"},
		{"wiki.example.com:8443", "wiki.example.com"},
		{"wiki.example.com:", "wiki.example.com"},
		{"wiki.example.com.", "wiki.example.com"},
		{"WIKI.example.com.:443", "wiki.example.com"},
		{"[::1]:8443", "::1"},
		{"[::1]", "::1"},
		{"[2001:DB8::1]", "2001:db8::1"},
		{"127.0.0.1:80", "127.0.0.1"},
		{"localhost", "localhost"},
		{"xn--caf-dma.example", "xn--caf-dma.example"},
		{"", ""},
		{".", ""},
		{":80", ""},
		{"evil.com/x", ""},
		{"evil.com\\x", ""},
		{"evil.com#x", ""},
		{"user@evil.com", ""},
		{"a..b", ""},
		{".a", ""},
		{"a b", ""},
		{"host:port", ""},
		{"host:123456", ""},
		{"[::1", ""},
		{"[::1]x", ""},
		{"[fe80::1%25eth0]", ""},
		{"[10.0.0.1]", ""},
		{"::1", ""},
		{"wiki.example.com..", ""},
		{"under_score.example", ""},
		{"café.example", ""},
		{strings.Repeat("a", 254), ""},
	}
	for _, tc := range tests {
		if got := CanonicalHost(tc.in); got != tc.want {
			t.Errorf("CanonicalHost(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/a;x/..;/b", "/%2e%2e/", "/caf%c3%a9", "//a//", "/a/%252e", "http://h/a?b#c", "/a\\b",
		"/a/%25%32%65", "/x;p=%7e/y;", "/%c0%ae", "/%e2%82%ac/", "/a?%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		got, err := ParseTarget(target)
		if err != nil {
			if !errors.Is(err, ErrBadTarget) {
				t.Fatalf("ParseTarget(%q): %v is not ErrBadTarget", target, err)
			}
			return
		}
		checkCanonical(t, target, got)
	})
}

func BenchmarkParseTarget(b *testing.B) {
	for _, target := range []string{
		"/api/v1/users/42?expand=roles",          // canonical
		"/files/My%20Report.pdf",                 // canonical, with an escape
		"/app;jsessionid=1/a/../b/%7Euser",       // params, dot segment, unreserved escape
		"/static//css/./app.css?v=3",             // duplicate slash, dot segment
		"http://app.example.com/caf%c3%a9/menu/", // absolute-form, lower-case escapes
	} {
		b.Run(target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ParseTarget(target)
			}
		})
	}
}
