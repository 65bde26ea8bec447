package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestPolicyCheckGolden runs `gatehouse policy check` for every line of
// testdata/policycheck/cases.txt and compares the whole output with
// cases.golden (refresh with -update).
func TestPolicyCheckGolden(t *testing.T) {
	f, err := os.Open("testdata/policycheck/cases.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		args := append([]string{"policy", "check", "-config", "testdata/policycheck/config.yaml"}, strings.Fields(line)...)
		code, stdout, stderr := runCLI(t, "", args...)
		out.WriteString("$ gatehouse policy check " + line + "\n" + stdout + stderr)
		if code != 0 {
			out.WriteString("(exit " + string(rune('0'+code)) + ")\n")
		}
		out.WriteString("\n")
	}
	golden := "testdata/policycheck/cases.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if out.String() != string(want) {
		t.Errorf("policy check output differs from %s:\n%s", golden, out.String())
	}
}

func TestValidateWarnsAboutShadowedRulesAndMissingRoles(t *testing.T) {
	dir := t.TempDir()
	cfg := writeE2EConfig(t, dir, `apps:
  - host: localhost
    upstream: echo
    rules:
      - { path: /docs/**, allow: authenticated }
      - { path: /docs/secret/**, roles: [auditor] }
      - { path: /admin/**, roles: [admin] }
`)
	out := mustCLI(t, "", "validate", "-config", cfg)
	if !strings.Contains(out, "config.yaml:9: this rule never matches: the rule at "+cfg+":8 matches every request it would") {
		t.Errorf("no shadowing warning:\n%s", out)
	}
	if strings.Contains(out, "no user has it") {
		t.Errorf("role warnings without a store:\n%s", out)
	}
	mustCLI(t, "", "user", "add", "root", "-config", cfg, "-role", "admin")
	out = mustCLI(t, "", "validate", "-config", cfg)
	if !strings.Contains(out, `warning: role "auditor" appears in rules but no user has it`) || strings.Contains(out, `"admin" appears`) {
		t.Errorf("role warnings:\n%s", out)
	}
	if !strings.HasSuffix(out, cfg+": ok (1 app)\n") {
		t.Errorf("validate did not end with ok:\n%s", out)
	}
}
