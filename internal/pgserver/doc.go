// Package pgserver runs PostgreSQL server processes for prenv: it finds the
// server binaries and checks their version, drops to an unprivileged user when
// prenv runs as root (postgres refuses to run as root), starts a postmaster on
// a data directory, waits until a real SELECT 1 answers, and stops it cleanly.
// The golden build and the localpg cloner both use it.
package pgserver
