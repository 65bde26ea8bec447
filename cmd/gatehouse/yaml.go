package main

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ConfigError is a configuration mistake at a place in a file. Its text is
// what an operator sees: "config.yaml:12: session.idle_timeout: ...".
type ConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Duration is a Go duration in YAML ("15m", "12h").
type Duration time.Duration

// UnmarshalYAML parses a Go duration and names the line of a bad one.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return &lineError{n.Line, fmt.Sprintf("%q is not a duration (use e.g. 90s, 15m, 12h)", n.Value)}
	}
	if v < 0 {
		return &lineError{n.Line, fmt.Sprintf("%q: a duration cannot be negative", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// lineError is an error found while decoding one node; decode turns it into
// a ConfigError with the file name.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// positions remembers the line of every key, by dotted path
// ("session.idle_timeout", "apps[0].rules[2]"), for errors found after decoding.
type positions map[string]int

// at returns the deepest key path written on line, or "".
func (p positions) at(line int) string {
	best := ""
	for path, l := range p {
		if l == line && len(path) > len(best) {
			best = path
		}
	}
	return best
}

// decodeStrict decodes doc into v: ${ENV} expanded in values, unknown and
// duplicate keys refused, every error tied to a line.
func decodeStrict(file string, data []byte, v any) (positions, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	pos := positions{}
	if len(doc.Content) == 0 {
		return pos, nil // an empty file: every default
	}
	root := doc.Content[0]
	if err := walk(root, reflect.TypeOf(v).Elem(), "", pos); err != nil {
		var le *lineError
		if ok := asLineError(err, &le); ok {
			return nil, &ConfigError{File: file, Line: le.line, Msg: le.msg}
		}
		return nil, err
	}
	if err := root.Decode(v); err != nil {
		err = yamlError(file, err)
		if ce, ok := err.(*ConfigError); ok {
			if p := pos.at(ce.Line); p != "" {
				ce.Msg = p + ": " + ce.Msg
			}
		}
		return nil, err
	}
	return pos, nil
}

func asLineError(err error, target **lineError) bool {
	le, ok := err.(*lineError)
	if ok {
		*target = le
	}
	return ok
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[Duration]()
)

// walk checks n against t before decoding: keys must be known and unique,
// and scalar values have ${ENV} expanded.
func walk(n *yaml.Node, t reflect.Type, path string, pos positions) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		return &lineError{n.Line, "YAML aliases are not supported in the config"}
	}
	if n.Kind == yaml.ScalarNode {
		if err := expandScalar(n); err != nil {
			return err
		}
		if t == durationType {
			var d Duration
			if err := d.UnmarshalYAML(n); err != nil {
				le := err.(*lineError)
				return &lineError{le.line, path + ": " + le.msg}
			}
		}
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return &lineError{n.Line, fmt.Sprintf("%s must be a mapping of keys to values", describe(path))}
		}
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if line, dup := seen[k.Value]; dup {
				return &lineError{k.Line, fmt.Sprintf("key %q appears twice (first on line %d)", join(path, k.Value), line)}
			}
			seen[k.Value] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				names := slices.Sorted(mapKeys(fields))
				return &lineError{k.Line, fmt.Sprintf("unknown key %q in %s (known keys: %s)", k.Value, describe(path), strings.Join(names, ", "))}
			}
			p := join(path, k.Value)
			pos[p] = k.Line
			if err := walk(val, f.Type, p, pos); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return &lineError{n.Line, fmt.Sprintf("%s must be a list", describe(path))}
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			pos[p] = item.Line
			if err := walk(item, t.Elem(), p, pos); err != nil {
				return err
			}
		}
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func describe(path string) string {
	if path == "" {
		return "the config"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f
	}
	return fields
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// expandScalar replaces ${NAME} (or ${NAME:-default}) in a value with the
// environment variable. An unset variable expands to "" (or the default),
// as in a shell; "$${" writes a literal "${".
func expandScalar(n *yaml.Node) error {
	if !strings.Contains(n.Value, "${") {
		return nil
	}
	const escaped = "\x00lit\x00"
	v := strings.ReplaceAll(n.Value, "$${", escaped)
	v = envRef.ReplaceAllStringFunc(v, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if val, ok := os.LookupEnv(m[1]); ok && val != "" {
			return val
		}
		return strings.TrimPrefix(m[2], ":-")
	})
	if strings.Contains(v, "${") {
		return &lineError{n.Line, fmt.Sprintf("%q: malformed ${...} reference (use ${NAME} or ${NAME:-default})", n.Value)}
	}
	n.Value = strings.ReplaceAll(v, escaped, "${")
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		n.Tag = "" // let the expanded text resolve to its own type (a port, a bool)
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError rewrites the YAML library's messages as file:line errors.
func yamlError(file string, err error) error {
	var msgs []string
	if te, ok := err.(*yaml.TypeError); ok {
		msgs = te.Errors
	} else if le, ok := err.(*lineError); ok {
		return &ConfigError{File: file, Line: le.line, Msg: le.msg}
	} else {
		msgs = []string{err.Error()}
	}
	m := yamlLine.FindStringSubmatch(strings.TrimPrefix(msgs[0], "yaml: "))
	if m == nil {
		return &ConfigError{File: file, Msg: strings.TrimPrefix(msgs[0], "yaml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	if i := strings.Index(msg, " into "); strings.HasPrefix(msg, "cannot unmarshal") && i > 0 {
		got := strings.TrimPrefix(msg[:i], "cannot unmarshal ")
		if a, b := strings.IndexByte(got, '`'), strings.LastIndexByte(got, '`'); a >= 0 && b > a {
			got = strconv.Quote(got[a+1 : b])
		} else {
			got = "a " + strings.TrimPrefix(got, "!!")
		}
		msg = got + " is not " + goTypeName(msg[i+6:])
	}
	return &ConfigError{File: file, Line: line, Msg: msg}
}

// goTypeName turns a Go type from a YAML error into words.
func goTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map[") || strings.HasPrefix(t, "main.") || strings.HasPrefix(t, "struct {"):
		return "a mapping"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return t
}
