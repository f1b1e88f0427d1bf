// Package golden builds the golden source that every environment's database
// is cloned from: a PostgreSQL data directory restored from production (a
// SQL file, a pg_dump archive or a live URL), masked, analyzed, shut down
// cleanly and promoted atomically as a new numbered generation. Clones made
// from an older generation keep working: generations are never modified.
// What interrupted builds leave (.build-* directories) is removed by the
// next build, and listed and removed by the sweeper through Leftovers.
package golden
