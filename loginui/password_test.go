package loginui

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckNewPassword(t *testing.T) {
	const strong = "correct horse battery staple"
	for _, tc := range []struct {
		name, pw, confirm string
		minLen            int
		want              error // nil: accepted
	}{
		{"ok", strong, strong, 0, nil},
		{"no composition rules: all lower case letters", "tangerinebicycle", "tangerinebicycle", 0, nil},
		{"empty", "", "", 0, msgPasswordEmpty},
		{"seven characters", "tr7$Xq2", "tr7$Xq2", 0, passwordError("Use at least 8 characters.")},
		{"eight characters", "tr7$Xq2z", "tr7$Xq2z", 0, nil},
		{"minimum below 8 counts as 8", "tr7$Xq2", "tr7$Xq2", 4, passwordError("Use at least 8 characters.")},
		{"configured minimum", "tr7$Xq2zk9", "tr7$Xq2zk9", 12, passwordError("Use at least 12 characters.")},
		{"length counts characters, not bytes", "ééééééé", "ééééééé", 0, passwordError("Use at least 8 characters.")},
		{"eight multi-byte characters", "äöüßçñéè", "äöüßçñéè", 0, nil},
		{"256 characters", strings.Repeat("ab", 128), strings.Repeat("ab", 128), 0, nil},
		{"257 characters", strings.Repeat("a", 256) + "b", strings.Repeat("a", 256) + "b", 0, msgPasswordTooLong},
		{"invalid UTF-8", "abcdefgh\xff", "abcdefgh\xff", 0, msgPasswordEncoding},
		{"common", "password123", "password123", 0, msgPasswordCommon},
		{"common, other case", "PassWord123", "PassWord123", 0, msgPasswordCommon},
		{"common, 8 digits", "12345678", "12345678", 0, msgPasswordCommon},
		{"the username", "alice.liddell", "alice.liddell", 0, msgPasswordIsName},
		{"the email address, other case", "Alice@Example.com", "Alice@Example.com", 0, msgPasswordIsName},
		{"confirmation differs", strong, strong + " ", 0, msgPasswordMismatch},
		{"confirmation empty", strong, "", 0, msgPasswordMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkNewPassword(tc.pw, tc.confirm, "alice.liddell", "alice@example.com", tc.minLen)
			if !errors.Is(got, tc.want) {
				t.Errorf("checkNewPassword(%q) = %v, want %v", tc.pw, got, tc.want)
			}
			var pe passwordError
			if got != nil && !errors.As(got, &pe) {
				t.Errorf("error %T is not a user-facing passwordError", got)
			}
		})
	}
}

// Every password the policy accepts must be accepted by the sign-in form,
// which refuses more than maxPassword bytes.
func TestLongestNewPasswordCanSignIn(t *testing.T) {
	pw := strings.Repeat("😀", maxNewPassword)
	if err := checkNewPassword(pw, pw, "alice", "", 0); err != nil {
		t.Fatalf("256 four-byte characters refused: %v", err)
	}
	if len(pw) > maxPassword {
		t.Errorf("longest new password is %d bytes, sign-in takes %d", len(pw), maxPassword)
	}
}

func TestConfigPasswordMinLength(t *testing.T) {
	for in, want := range map[int]int{0: 8, -3: 8, 5: 8, 8: 8, 12: 12, 1000: maxNewPassword} {
		if got := (Config{PasswordMinLength: in}).passwordMinLength(); got != want {
			t.Errorf("PasswordMinLength %d: got %d, want %d", in, got, want)
		}
	}
}

// The embedded list must be what isCommonPassword's binary search needs:
// sorted bytewise, unique, lower case, one per line, newline-terminated.
func TestCommonPasswordList(t *testing.T) {
	if !strings.HasSuffix(commonPasswords, "\n") {
		t.Fatal("list does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(commonPasswords, "\n"), "\n")
	if len(lines) != 10000 {
		t.Errorf("list has %d entries, want 10000", len(lines))
	}
	for i, l := range lines {
		if l == "" || l != strings.ToLower(l) || strings.TrimSpace(l) != l || utf8.RuneCountInString(l) < defaultPasswordMinLength {
			t.Errorf("line %d: %q is empty, not lower case, padded or shorter than 8", i+1, l)
		}
		if i > 0 && lines[i-1] >= l {
			t.Errorf("line %d: %q does not sort after %q", i+1, l, lines[i-1])
		}
		if !isCommonPassword(l) || !isCommonPassword(strings.ToUpper(l)) {
			t.Errorf("isCommonPassword(%q) = false", l)
		}
		if isCommonPassword(l+"\x00") || isCommonPassword(l[:len(l)-1]) != inSorted(lines, l[:len(l)-1]) {
			t.Errorf("isCommonPassword found a near miss of %q", l)
		}
	}
	for _, pw := range []string{"", "correct horse battery staple", "\n", "password123\npassword", "~~~~~~~~~~~~", "!!!!"} {
		if isCommonPassword(pw) {
			t.Errorf("isCommonPassword(%q) = true", pw)
		}
	}
}

func inSorted(list []string, s string) bool {
	_, found := slices.BinarySearch(list, s)
	return found
}

func BenchmarkIsCommonPassword(b *testing.B) {
	for b.Loop() {
		isCommonPassword("correct horse battery staple")
	}
}
