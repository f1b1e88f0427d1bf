package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// snapshot is what is read just before and just after the migration.
type snapshot struct {
	at     time.Time // the server's clock
	schema Schema
	rels   map[uint32]rel
	// allNull holds "schema.table.column" of the columns whose every value
	// is NULL according to pg_stats (read before the migration only): a
	// dropped column without data is not data lost.
	allNull map[string]bool
	// sizesEstimated is set when a table was locked and sizes came from
	// pg_class.relpages instead of the files.
	sizesEstimated bool
}

// rel is a table, partitioned table, materialized view, foreign table or
// index in the user's schemas.
type rel struct {
	oid      uint32
	name     string // schema-qualified
	kind     byte   // pg_class.relkind: r, p, m, f, i
	table    uint32 // an index's table
	filenode uint32
	rows     int64 // reltuples, or n_live_tup when never analyzed; -1 unknown
	bytes    int64 // pg_table_size for tables, pg_relation_size for indexes
	ins      int64 // pg_stat_user_tables counters
	upd      int64
	del      int64
}

const relsQuery = `
SELECT c.oid, n.nspname || '.' || c.relname, c.relkind::text, coalesce(i.indrelid, 0), c.relfilenode,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8 ELSE coalesce(s.n_live_tup, -1) END,
       coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0),
       %s
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p', 'm', 'f', 'i') AND ` + userNamespace

// sizeFromFiles needs ACCESS SHARE on each relation; sizeFromPages does not,
// and is as fresh as the last VACUUM, ANALYZE or CREATE INDEX.
const (
	sizeFromFiles = `CASE WHEN c.relkind IN ('r', 'm') THEN pg_table_size(c.oid) WHEN c.relkind = 'i' THEN pg_relation_size(c.oid) ELSE 0 END`
	sizeFromPages = `c.relpages::int8 * current_setting('block_size')::int8`
)

// readSnapshot reads the schema and every relation. Statistics are read
// after pg_stat_clear_snapshot, so they are the server's current counts and
// not a copy cached earlier in the session.
func readSnapshot(ctx context.Context, conn *pgx.Conn, before bool) (snapshot, error) {
	var s snapshot
	if err := conn.QueryRow(ctx, `SELECT now()`).Scan(&s.at); err != nil {
		return s, err
	}
	schema, err := ReadSchema(ctx, conn)
	if err != nil {
		return s, err
	}
	s.schema = schema
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		return s, err
	}
	s.rels, err = readRels(ctx, conn, sizeFromFiles)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
		s.sizesEstimated = true
		s.rels, err = readRels(ctx, conn, sizeFromPages)
	}
	if err != nil {
		return s, err
	}
	if before {
		s.allNull = map[string]bool{}
		err := each(ctx, conn, "column statistics", `
SELECT schemaname || '.' || tablename || '.' || attname FROM pg_stats
WHERE null_frac = 1 AND NOT inherited AND schemaname NOT IN ('pg_catalog', 'information_schema')`, nil, func(r pgx.Rows) error {
			var c string
			if err := r.Scan(&c); err != nil {
				return err
			}
			s.allNull[c] = true
			return nil
		})
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

func readRels(ctx context.Context, conn *pgx.Conn, size string) (map[uint32]rel, error) {
	rels := map[uint32]rel{}
	err := each(ctx, conn, "relations", fmt.Sprintf(relsQuery, size), nil, func(r pgx.Rows) error {
		var x rel
		var kind string
		if err := r.Scan(&x.oid, &x.name, &kind, &x.table, &x.filenode, &x.rows, &x.ins, &x.upd, &x.del, &x.bytes); err != nil {
			return err
		}
		x.kind = kind[0]
		rels[x.oid] = x
		return nil
	})
	return rels, err
}
