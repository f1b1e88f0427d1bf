// Package bench measures prenv against the alternatives on this machine and
// prints tables: clone-to-first-query of prenv's localpg cloner, CREATE
// DATABASE ... STRATEGY FILE_COPY and pg_dump | pg_restore on the same golden
// data at two sizes; prenv up of the demo end to end; the memory of an idle
// environment. Run it with make bench.
package bench
