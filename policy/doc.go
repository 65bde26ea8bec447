// Package policy decides whether a request may pass, from per-host lists
// of rules: the first rule whose path, methods and networks match decides;
// no match denies. It also turns a raw request target into the one
// canonical path that is both matched and forwarded, so the app can never
// read a path differently from the rules.
package policy
