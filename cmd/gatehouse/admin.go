package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gatehouse-auth/gatehouse/store"
)

func cmdHashPassword(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"hash-password takes no arguments; it reads the password on stdin"}
	}
	p, err := readPassword(bufio.NewReader(stdin))
	if err != nil {
		return err
	}
	hash, err := store.HashPassword(p)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, hash)
	return nil
}

// cmdBackup writes a consistent copy of the database to OUT, from the
// running gateway when there is one.
func cmdBackup(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	file := configFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"backup needs one OUT file"}
	}
	cfg, err := requireConfig(*file)
	if err != nil {
		return err
	}
	out := pos[0]
	err = withStore(cfg,
		func(c *controlClient) error { return writeFileAtomic(out, c.backup) },
		func(db *store.DB) error { return db.BackupFile(out) })
	if err != nil {
		return fmt.Errorf("backup failed: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return nil
}

// writeFileAtomic writes through a temporary file in the same directory so
// a failed backup never leaves a truncated file under the final name.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gatehouse-backup-*")
	if err != nil {
		return pathError(err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeFile writes a small file readable by its owner only.
func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
