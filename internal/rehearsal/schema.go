package rehearsal

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Schema is a database's schema as its catalogs describe it, in the user's
// schemas only (not pg_catalog, information_schema, pg_toast or temporary
// schemas) and without the objects that belong to an extension. It is
// JSON-serializable and sorted, so the caller can store the golden
// generation's schema once and Diff every later environment against it.
// Names of tables, views and functions are schema-qualified.
type Schema struct {
	Tables     []Table     `json:"tables"`
	Views      []View      `json:"views,omitempty"`
	Functions  []Function  `json:"functions,omitempty"`
	Extensions []Extension `json:"extensions,omitempty"`
}

// Table is a table, a partitioned table, a partition or a foreign table.
type Table struct {
	Name        string       `json:"name"`
	Columns     []Column     `json:"columns"`
	Indexes     []Index      `json:"indexes,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty"`
	Triggers    []Trigger    `json:"triggers,omitempty"`
}

// Column is a table's column in attnum order.
type Column struct {
	Name      string `json:"name"`
	Type      string `json:"type"` // format_type: "numeric(10,2)"
	NotNull   bool   `json:"not_null,omitempty"`
	Default   string `json:"default,omitempty"`   // the default's expression, or a generated column's
	Identity  string `json:"identity,omitempty"`  // "always" or "by default" for an identity column
	Generated bool   `json:"generated,omitempty"` // Default is a stored generated column's expression
}

// Index is an index of a table. Constraint marks the index behind a
// primary key, unique or exclusion constraint: Diff reports the constraint.
type Index struct {
	Name       string `json:"name"`
	Definition string `json:"definition"` // pg_get_indexdef
	Valid      bool   `json:"valid"`      // false after a failed CREATE INDEX CONCURRENTLY
	Constraint bool   `json:"constraint,omitempty"`
}

// Constraint is a table's constraint. NOT NULL is a column's property
// (Column.NotNull), also where PostgreSQL 18 keeps it as a constraint.
type Constraint struct {
	Name       string `json:"name"`
	Type       string `json:"type"`       // "primary key", "unique", "foreign key", "check", "exclusion", "trigger"
	Definition string `json:"definition"` // pg_get_constraintdef
	Validated  bool   `json:"validated"`  // false while added NOT VALID and not yet validated
}

// Trigger is a user trigger on a table (not the internal triggers behind
// foreign keys).
type Trigger struct {
	Name       string `json:"name"`
	Definition string `json:"definition"` // pg_get_triggerdef
	Disabled   bool   `json:"disabled,omitempty"`
}

// View is a view or a materialized view.
type View struct {
	Name         string `json:"name"`
	Materialized bool   `json:"materialized,omitempty"`
	Definition   string `json:"definition"`
}

// Function is a function, procedure or aggregate; Name carries its
// argument types, as overloads are distinct objects: "public.f(integer)".
type Function struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"` // "function", "procedure", "aggregate", "window"
	Returns    string `json:"returns,omitempty"`
	Language   string `json:"language"`
	Definition string `json:"definition,omitempty"` // pg_get_functiondef; empty for aggregates
}

// Extension is an installed extension.
type Extension struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Schema  string `json:"schema"`
}

// userNamespace is the SQL condition on pg_namespace n for the user's schemas.
const userNamespace = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp_'`

// notExtensionMember is the SQL condition that the object o of catalog cat
// is not part of an extension.
func notExtensionMember(cat, o string) string {
	return fmt.Sprintf(`NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '%s'::regclass AND d.objid = %s AND d.deptype = 'e')`, cat, o)
}

// ReadSchema reads the schema of the database conn is connected to. It
// reads catalogs only and takes no lock on a user table, but for views:
// PostgreSQL's pg_get_viewdef takes ACCESS SHARE on the tables a view reads,
// so ReadSchema waits while a migration holds ACCESS EXCLUSIVE on one (set
// lock_timeout on conn to bound that).
func ReadSchema(ctx context.Context, conn *pgx.Conn) (Schema, error) {
	var s Schema
	tables := map[uint32]*Table{}
	var oids []uint32
	var names []string
	byName := map[string]uint32{}
	if err := each(ctx, conn, "tables", `
SELECT c.oid, n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f') AND `+userNamespace+` AND `+notExtensionMember("pg_class", "c.oid"), nil, func(r pgx.Rows) error {
		var oid uint32
		var name string
		if err := r.Scan(&oid, &name); err != nil {
			return err
		}
		tables[oid] = &Table{Name: name, Columns: []Column{}}
		oids = append(oids, oid)
		names = append(names, name)
		byName[name] = oid
		return nil
	}); err != nil {
		return Schema{}, err
	}

	if err := each(ctx, conn, "columns", `
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`, []any{oids}, func(r pgx.Rows) error {
		var oid uint32
		var c Column
		var identity, generated string
		if err := r.Scan(&oid, &c.Name, &c.Type, &c.NotNull, &c.Default, &identity, &generated); err != nil {
			return err
		}
		switch identity {
		case "a":
			c.Identity = "always"
		case "d":
			c.Identity = "by default"
		}
		c.Generated = generated != ""
		tables[oid].Columns = append(tables[oid].Columns, c)
		return nil
	}); err != nil {
		return Schema{}, err
	}

	if err := each(ctx, conn, "indexes", `
SELECT i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid), i.indisvalid,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY($1)`, []any{oids}, func(r pgx.Rows) error {
		var oid uint32
		var x Index
		if err := r.Scan(&oid, &x.Name, &x.Definition, &x.Valid, &x.Constraint); err != nil {
			return err
		}
		tables[oid].Indexes = append(tables[oid].Indexes, x)
		return nil
	}); err != nil {
		return Schema{}, err
	}

	// contype 'n' is PostgreSQL 18's NOT NULL constraint: a column property here.
	if err := each(ctx, conn, "constraints", `
SELECT conrelid, conname, contype::text, pg_get_constraintdef(oid), convalidated
FROM pg_constraint WHERE conrelid = ANY($1) AND contype <> 'n'`, []any{oids}, func(r pgx.Rows) error {
		var oid uint32
		var c Constraint
		var t string
		if err := r.Scan(&oid, &c.Name, &t, &c.Definition, &c.Validated); err != nil {
			return err
		}
		c.Type = constraintTypes[t]
		if c.Type == "" {
			c.Type = t
		}
		tables[oid].Constraints = append(tables[oid].Constraints, c)
		return nil
	}); err != nil {
		return Schema{}, err
	}

	if err := each(ctx, conn, "triggers", `
SELECT tgrelid, tgname, pg_get_triggerdef(oid), tgenabled = 'D'
FROM pg_trigger WHERE tgrelid = ANY($1) AND NOT tgisinternal`, []any{oids}, func(r pgx.Rows) error {
		var oid uint32
		var t Trigger
		if err := r.Scan(&oid, &t.Name, &t.Definition, &t.Disabled); err != nil {
			return err
		}
		tables[oid].Triggers = append(tables[oid].Triggers, t)
		return nil
	}); err != nil {
		return Schema{}, err
	}

	if err := each(ctx, conn, "views", `
SELECT n.nspname || '.' || c.relname, c.relkind = 'm', pg_get_viewdef(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND `+userNamespace+` AND `+notExtensionMember("pg_class", "c.oid"), nil, func(r pgx.Rows) error {
		var v View
		if err := r.Scan(&v.Name, &v.Materialized, &v.Definition); err != nil {
			return err
		}
		s.Views = append(s.Views, v)
		return nil
	}); err != nil {
		return Schema{}, err
	}

	if err := each(ctx, conn, "functions", `
SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       p.prokind::text, coalesce(pg_get_function_result(p.oid), ''), l.lanname,
       CASE WHEN p.prokind = 'a' THEN '' ELSE pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE `+userNamespace+` AND `+notExtensionMember("pg_proc", "p.oid"), nil, func(r pgx.Rows) error {
		var f Function
		var kind string
		if err := r.Scan(&f.Name, &kind, &f.Returns, &f.Language, &f.Definition); err != nil {
			return err
		}
		f.Kind = functionKinds[kind]
		s.Functions = append(s.Functions, f)
		return nil
	}); err != nil {
		return Schema{}, err
	}

	if err := each(ctx, conn, "extensions", `
SELECT e.extname, e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace`, nil, func(r pgx.Rows) error {
		var e Extension
		if err := r.Scan(&e.Name, &e.Version, &e.Schema); err != nil {
			return err
		}
		s.Extensions = append(s.Extensions, e)
		return nil
	}); err != nil {
		return Schema{}, err
	}

	sort.Strings(names)
	for _, name := range names {
		t := tables[byName[name]]
		sort.Slice(t.Indexes, func(i, j int) bool { return t.Indexes[i].Name < t.Indexes[j].Name })
		sort.Slice(t.Constraints, func(i, j int) bool { return t.Constraints[i].Name < t.Constraints[j].Name })
		sort.Slice(t.Triggers, func(i, j int) bool { return t.Triggers[i].Name < t.Triggers[j].Name })
		s.Tables = append(s.Tables, *t)
	}
	if s.Tables == nil {
		s.Tables = []Table{}
	}
	sort.Slice(s.Views, func(i, j int) bool { return s.Views[i].Name < s.Views[j].Name })
	sort.Slice(s.Functions, func(i, j int) bool { return s.Functions[i].Name < s.Functions[j].Name })
	sort.Slice(s.Extensions, func(i, j int) bool { return s.Extensions[i].Name < s.Extensions[j].Name })
	return s, nil
}

var constraintTypes = map[string]string{"p": "primary key", "u": "unique", "f": "foreign key", "c": "check", "x": "exclusion", "t": "trigger"}

var functionKinds = map[string]string{"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}

// each runs q and calls fn for every row; errors name what was read.
func each(ctx context.Context, conn *pgx.Conn, what, q string, args []any, fn func(pgx.Rows) error) error {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

// table returns the table named name (schema-qualified), or nil.
func (s Schema) table(name string) *Table {
	for i := range s.Tables {
		if s.Tables[i].Name == name {
			return &s.Tables[i]
		}
	}
	return nil
}

// display drops the public schema from a qualified name: what a developer
// writes in a migration.
func display(name string) string { return strings.TrimPrefix(name, "public.") }
