// Package store keeps Gatehouse's users, sessions, password hashes and
// single-use tokens in one bbolt file. It never sees an HTTP request.
// Every write goes through *DB, which keeps an in-memory copy of what it
// has read so a signed-in request costs no disk access, and updates that
// copy in the same call that commits, so a change is visible on the very
// next read.
package store
