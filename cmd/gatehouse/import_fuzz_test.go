package main

import (
	"regexp"
	"strings"
	"testing"
)

var importErrorLine = regexp.MustCompile(`^users\.(csv|json):\d+: `)

// FuzzImportParsers: whatever a user import file holds, the parsers return
// records or an error that names the file and a line, never a panic; every
// record has a line number inside the file.
func FuzzImportParsers(f *testing.F) {
	f.Add([]byte("username,email,roles,password_hash\nalice,alice@example.com,admin staff,$2b$10$abc\n"), false)
	f.Add([]byte("\ufeffusername,email,roles,password_hash\n\"a\nb\",x,y,z\n"), false)
	f.Add([]byte("username,email,roles,password_hash\nalice,\"unterminated\n"), false)
	f.Add([]byte(`[{"username":"alice","email":"a@b.c","roles":["admin"],"password_hash":"x"}]`), true)
	f.Add([]byte("[\n{\"username\": 1}\n]"), true)
	f.Add([]byte(`[{"username":"alice"},`), true)
	f.Add([]byte(`{"not":"an array"}`), true)
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		name, parse := "users.csv", parseCSV
		if asJSON {
			name, parse = "users.json", parseJSON
		}
		recs, err := parse(name, data)
		if err != nil {
			if msg := err.Error(); !importErrorLine.MatchString(msg) && !strings.HasPrefix(msg, name+": ") {
				t.Errorf("error without file:line: %q", msg)
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, r := range recs {
			if r.line < 1 || r.line > lines {
				t.Errorf("record at line %d of a %d-line file", r.line, lines)
			}
		}
	})
}
