// Package testenv provides real dependencies for prenv's tests: a PRENV_HOME
// the PostgreSQL user can reach, the real PostgreSQL server binaries, golden
// generations built from SQL, and cleanup that stops every server a test
// started. Tests that need them skip under -short and say why.
package testenv
