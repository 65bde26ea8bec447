package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// cmdPolicyCheck prints what the gateway would decide for one request and
// the rule (file:line) that decided it.
func cmdPolicyCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	file := configFlag(fs)
	user := fs.String("user", "", "signed-in user (default: anonymous)")
	var roles stringList
	fs.Var(&roles, "roles", "roles of the user, comma-separated (default: the user's roles in the store)")
	ipFlag := fs.String("ip", "", "client address")
	explain := fs.Bool("explain", false, "show every rule tried")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"policy check needs METHOD and URL, e.g. GET https://wiki.example.com/admin"}
	}
	cfg, err := requireConfig(*file)
	if err != nil {
		return err
	}
	method, raw := pos[0], pos[1]
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Sprintf("%q is not an absolute http(s) URL", raw)}
	}
	target, err := policy.ParseTarget(requestTarget(raw))
	if err != nil {
		fmt.Fprintf(stdout, "decision: reject (400)\nreason:   %s\n", strings.TrimPrefix(err.Error(), "policy: "))
		return nil
	}
	req := policy.Request{Host: u.Host, Method: method, Path: target.Path}
	if *ipFlag != "" {
		if req.ClientIP, err = netip.ParseAddr(*ipFlag); err != nil {
			return usageError{fmt.Sprintf("-ip %q is not an IP address", *ipFlag)}
		}
	}
	if *user != "" {
		name, err := store.CanonicalUsername(*user)
		if err != nil {
			return usageError{fmt.Sprintf("-user %q is not a valid username", *user)}
		}
		ident := policy.Identity{Name: name, Roles: roles}
		if roles == nil {
			if ident.Roles, err = storedRoles(cfg, name); err != nil {
				return err
			}
		}
		req.User = &ident
	}
	d, steps := cfg.Proxy.Policy.Explain(&req)
	printDecision(stdout, cfg.Proxy.Policy, &req, target, d)
	if *explain {
		fmt.Fprintln(stdout, "rules tried:")
		for _, s := range steps {
			mark := " "
			if s.Matched {
				mark = "*"
			}
			fmt.Fprintf(stdout, "  %s %s: %s\n", mark, s.Rule.Source, s.Why)
		}
	}
	return nil
}

// requestTarget is the origin-form target (path and query) of an absolute URL, as sent on the wire.
func requestTarget(raw string) string {
	rest := raw[strings.Index(raw, "://")+3:]
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[i:]
		if !strings.HasPrefix(rest, "/") {
			rest = "/" + rest
		}
		return rest
	}
	return "/"
}

func printDecision(w io.Writer, p *policy.Policy, req *policy.Request, t policy.Target, d policy.Decision) {
	who := "anonymous"
	if req.User != nil {
		who = fmt.Sprintf("%s (roles: %s)", req.User.Name, rolesText(req.User.Roles))
	}
	verdict := d.Action.String()
	switch {
	case d.App < 0:
		verdict = "reject (421: no app serves this host)"
	case d.Action == policy.Login:
		verdict = "login (sign-in required)"
	}
	fmt.Fprintf(w, "decision: %s\n", verdict)
	if d.App >= 0 {
		app := p.Apps()[d.App]
		fmt.Fprintf(w, "app:      %s (%s)\n", app.Host, app.Source)
	}
	fmt.Fprintf(w, "path:     %s\n", t.Path)
	fmt.Fprintf(w, "caller:   %s\n", who)
	switch {
	case d.Rule != nil:
		fmt.Fprintf(w, "rule:     %s\n", d.Rule.Source)
	case d.App >= 0:
		fmt.Fprintln(w, "rule:     none matched (deny)")
	}
}

// storedRoles looks up a user's roles, from the running gateway or the file.
func storedRoles(cfg *Config, name string) ([]string, error) {
	var roles []string
	var found bool
	err := withStore(cfg,
		func(c *controlClient) error {
			out, err := c.user(userRequest{Verb: "get", Name: name})
			if err != nil {
				return nil // unknown user
			}
			var u store.User
			if err := json.Unmarshal([]byte(out), &u); err != nil {
				return fmt.Errorf("the running gateway sent an unreadable user")
			}
			found, roles = true, u.Roles
			return nil
		},
		func(db *store.DB) error {
			u, err := db.User(name)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			found = err == nil
			roles = u.Roles
			return err
		})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("no user %q in the store; pass -roles to check a hypothetical user", name)
	}
	return roles, nil
}
