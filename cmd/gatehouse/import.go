package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/gatehouse-auth/gatehouse/store"
)

// importRecord is one user to import, with the line it came from.
type importRecord struct {
	line     int
	Username string   `json:"username"`
	Email    string   `json:"email"`
	Roles    []string `json:"roles"`
	Hash     string   `json:"password_hash"`
}

// importUsers creates or updates users from a CSV or JSON export of the
// app being protected. Every record is checked first; if any is wrong,
// nothing is imported and every wrong line is reported. Running it twice
// updates, it never duplicates.
func importUsers(db *store.DB, name string, data []byte, audit func(event, user string)) (string, error) {
	var recs []importRecord
	var err error
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		recs, err = parseCSV(name, data)
	case ".json":
		recs, err = parseJSON(name, data)
	default:
		return "", fmt.Errorf("%s: the file must end in .csv or .json", name)
	}
	if err != nil {
		return "", err
	}
	var errs []error
	seen := map[string]int{}
	for i := range recs {
		r := &recs[i]
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, r.line, fmt.Sprintf(format, args...)))
		}
		u, err := store.CanonicalUsername(r.Username)
		if err != nil {
			bad("%q is not a valid username", r.Username)
			continue
		}
		r.Username = u
		if prev, dup := seen[u]; dup {
			bad("user %q already appears on line %d", u, prev)
		}
		seen[u] = r.line
		if r.Email != "" {
			if r.Email, err = store.CanonicalEmail(r.Email); err != nil {
				bad("%q is not an email address", r.Email)
			}
		}
		if err := store.ValidHash(r.Hash); err != nil {
			bad("password_hash: %v", strings.TrimPrefix(err.Error(), "store: "))
		}
		if role := badRole(r.Roles); role != "" {
			bad("%q is not a role name", role)
		}
		r.Roles = normalizeRoles(r.Roles)
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("nothing imported; fix these lines and run again:\n%w", errors.Join(errs...))
	}
	created, updated := 0, 0
	for _, r := range recs {
		// An imported address counts as verified, like one an admin types
		// (see store.User): the app it comes from already mailed it. An
		// unchanged address keeps its state, as in the admin console.
		_, err := db.UpdateUser(r.Username, func(u *store.User) error {
			if u.Email != r.Email {
				u.EmailVerified = r.Email != ""
			}
			u.Email, u.Roles, u.PasswordHash = r.Email, r.Roles, r.Hash
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			err = db.CreateUser(store.User{Username: r.Username, Email: r.Email, EmailVerified: r.Email != "", Roles: r.Roles, PasswordHash: r.Hash})
			if err == nil {
				created++
				audit("user_imported", r.Username)
			}
		} else if err == nil {
			updated++
			audit("user_import_updated", r.Username)
		}
		if err != nil {
			if errors.Is(err, store.ErrExists) {
				err = fmt.Errorf("email %q belongs to another user", r.Email)
			} else {
				err = userError(r.Username, err)
			}
			return fmt.Sprintf("imported %d new and updated %d users before the error\n", created, updated),
				fmt.Errorf("%s:%d: %w", name, r.line, err)
		}
	}
	return fmt.Sprintf("imported %d new and updated %d existing users from %s\n", created, updated, name), nil
}

var csvHeader = []string{"username", "email", "roles", "password_hash"}

func parseCSV(name string, data []byte) ([]importRecord, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = len(csvHeader)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s:1: the first line must be the header %s", name, strings.Join(csvHeader, ","))
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	if strings.Join(header, ",") != strings.Join(csvHeader, ",") {
		return nil, fmt.Errorf("%s:1: the header must be %s", name, strings.Join(csvHeader, ","))
	}
	var recs []importRecord
	for {
		line, _ := r.FieldPos(0)
		fields, err := r.Read()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s:%d: %v", name, pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		line, _ = r.FieldPos(0)
		recs = append(recs, importRecord{
			line:     line,
			Username: strings.TrimSpace(fields[0]),
			Email:    strings.TrimSpace(fields[1]),
			Roles:    strings.Fields(fields[2]),
			Hash:     strings.TrimSpace(fields[3]),
		})
	}
}

func parseJSON(name string, data []byte) ([]importRecord, error) {
	lineAt := func(off int64) int { return bytes.Count(data[:off], []byte("\n")) + 1 }
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("%s:1: the file must hold a JSON array of users", name)
	}
	var recs []importRecord
	for dec.More() {
		// The offset after the previous value; skip white space and the comma.
		off := dec.InputOffset()
		for off < int64(len(data)) && strings.ContainsRune(" \t\r\n,", rune(data[off])) {
			off++
		}
		var rec importRecord
		if err := dec.Decode(&rec); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s:%d: %v", name, lineAt(se.Offset), se)
			}
			return nil, fmt.Errorf("%s:%d: %v", name, lineAt(off), err)
		}
		rec.line = lineAt(off)
		recs = append(recs, rec)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: the JSON array is not closed", name)
	}
	return recs, nil
}
