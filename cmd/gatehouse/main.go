// Command gatehouse is the Gatehouse authentication gateway and its
// administration commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line; run prints it with a hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `Usage:
  gatehouse [serve] -config FILE           run the gateway
  gatehouse validate -config FILE          check a config file
  gatehouse policy check -config FILE [-user NAME] [-roles a,b] [-ip IP] [-explain] METHOD URL
  gatehouse user add NAME -config FILE [-email E] [-name N] [-role R]... [-password-stdin]
  gatehouse user list -config FILE
  gatehouse user show|delete|enable|disable|unlock NAME -config FILE
  gatehouse user roles NAME -config FILE -set a,b
  gatehouse user passwd NAME -config FILE [-password-stdin]
  gatehouse user import FILE -config FILE  (.csv or .json)
  gatehouse hash-password                  read a password on stdin, print its hash
  gatehouse backup -config FILE OUT        write a consistent copy of the database
  gatehouse version
`

// run is the whole program: it returns the exit status, and prints errors
// as one line each, never a stack trace.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "gatehouse: internal error: %v\n", p)
			code = 2
		}
	}()
	err := dispatch(ctx, args, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		fmt.Fprintf(stderr, "gatehouse: %s\n", line)
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'gatehouse help' for usage.")
	}
	return 1
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	verb := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	switch verb {
	case "serve":
		return cmdServe(ctx, args, stderr)
	case "validate":
		return cmdValidate(args, stdout)
	case "policy":
		if len(args) == 0 || args[0] != "check" {
			return usageError{"policy: the only subcommand is 'check'"}
		}
		return cmdPolicyCheck(args[1:], stdout)
	case "user":
		return cmdUser(args, stdin, stdout, stderr)
	case "hash-password":
		return cmdHashPassword(args, stdin, stdout)
	case "backup":
		return cmdBackup(args, stdout)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "gatehouse", versionString())
		return nil
	case "help", "-h", "-help", "--help":
		return flag.ErrHelp
	}
	return usageError{fmt.Sprintf("unknown command %q", verb)}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// parseFlags parses flags that may come before, between or after the
// positional arguments ("user add alice -config x.yaml -role admin").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// configFlag registers -config; requireConfig checks it was given.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "config file")
}

func requireConfig(file string) (*Config, error) {
	if file == "" {
		return nil, usageError{"-config FILE is required"}
	}
	return loadConfig(file)
}

// stringList is a repeatable flag (-role a -role b) that also takes commas.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
