package rehearsal

import (
	"fmt"
	"sort"
	"strings"
)

// Kind is the kind of schema object a Change is about.
type Kind string

// The kinds of objects Diff compares.
const (
	KindTable      Kind = "table"
	KindColumn     Kind = "column"
	KindIndex      Kind = "index"
	KindConstraint Kind = "constraint"
	KindTrigger    Kind = "trigger"
	KindView       Kind = "view"
	KindFunction   Kind = "function"
	KindExtension  Kind = "extension"
)

// Action is what happened to an object.
type Action string

// The actions of a Change.
const (
	Added   Action = "added"
	Dropped Action = "dropped"
	Changed Action = "changed"
)

// Change is one difference between two schemas.
type Change struct {
	Kind   Kind   `json:"kind"`
	Object string `json:"object"`          // the object's name; tables, views and functions without "public."
	Table  string `json:"table,omitempty"` // for a column, index, constraint or trigger: its table
	Action Action `json:"action"`
	// Detail is what changed in words: "type integer -> bigint, default 0
	// -> none, nullable -> not null"; for an added object what it is.
	Detail string `json:"detail,omitempty"`
}

// Diff returns what changed from before to after: tables by table (the
// table itself, then its columns, constraints, indexes and triggers), then
// views, functions and extensions. An added or dropped table is one change;
// its columns and indexes are not listed again. An index behind a primary
// key, unique or exclusion constraint is reported as the constraint.
func Diff(before, after Schema) []Change {
	var out []Change
	bt, at := map[string]Table{}, map[string]Table{}
	for _, t := range before.Tables {
		bt[t.Name] = t
	}
	for _, t := range after.Tables {
		at[t.Name] = t
	}
	for _, name := range unionNames(before.Tables, after.Tables, func(t Table) string { return t.Name }) {
		b, inB := bt[name]
		a, inA := at[name]
		switch {
		case !inB:
			out = append(out, Change{Kind: KindTable, Object: display(name), Action: Added, Detail: columnList(a.Columns)})
		case !inA:
			out = append(out, Change{Kind: KindTable, Object: display(name), Action: Dropped})
		default:
			out = append(out, diffTable(b, a)...)
		}
	}

	bv, av := map[string]View{}, map[string]View{}
	for _, v := range before.Views {
		bv[v.Name] = v
	}
	for _, v := range after.Views {
		av[v.Name] = v
	}
	for _, name := range unionNames(before.Views, after.Views, func(v View) string { return v.Name }) {
		b, inB := bv[name]
		a, inA := av[name]
		c := Change{Kind: KindView, Object: display(name)}
		switch {
		case !inB:
			c.Action = Added
			if a.Materialized {
				c.Detail = "materialized"
			}
		case !inA:
			c.Action = Dropped
		case b.Materialized != a.Materialized:
			c.Action, c.Detail = Changed, viewKind(b)+" -> "+viewKind(a)
		case b.Definition != a.Definition:
			c.Action, c.Detail = Changed, "definition changed"
		default:
			continue
		}
		out = append(out, c)
	}

	bf, af := map[string]Function{}, map[string]Function{}
	for _, f := range before.Functions {
		bf[f.Name] = f
	}
	for _, f := range after.Functions {
		af[f.Name] = f
	}
	for _, name := range unionNames(before.Functions, after.Functions, func(f Function) string { return f.Name }) {
		b, inB := bf[name]
		a, inA := af[name]
		c := Change{Kind: KindFunction, Object: display(name)}
		switch {
		case !inB:
			c.Action, c.Detail = Added, functionSummary(a)
		case !inA:
			c.Action = Dropped
		default:
			var parts []string
			if b.Kind != a.Kind {
				parts = append(parts, b.Kind+" -> "+a.Kind)
			}
			if b.Returns != a.Returns {
				parts = append(parts, "returns "+b.Returns+" -> "+a.Returns)
			}
			if b.Language != a.Language {
				parts = append(parts, "language "+b.Language+" -> "+a.Language)
			}
			if len(parts) == 0 && b.Definition != a.Definition {
				parts = append(parts, "definition changed")
			}
			if len(parts) == 0 {
				continue
			}
			c.Action, c.Detail = Changed, strings.Join(parts, ", ")
		}
		out = append(out, c)
	}

	be, ae := map[string]Extension{}, map[string]Extension{}
	for _, e := range before.Extensions {
		be[e.Name] = e
	}
	for _, e := range after.Extensions {
		ae[e.Name] = e
	}
	for _, name := range unionNames(before.Extensions, after.Extensions, func(e Extension) string { return e.Name }) {
		b, inB := be[name]
		a, inA := ae[name]
		c := Change{Kind: KindExtension, Object: name}
		switch {
		case !inB:
			c.Action, c.Detail = Added, "version "+a.Version
		case !inA:
			c.Action = Dropped
		default:
			var parts []string
			if b.Version != a.Version {
				parts = append(parts, "version "+b.Version+" -> "+a.Version)
			}
			if b.Schema != a.Schema {
				parts = append(parts, "schema "+b.Schema+" -> "+a.Schema)
			}
			if len(parts) == 0 {
				continue
			}
			c.Action, c.Detail = Changed, strings.Join(parts, ", ")
		}
		out = append(out, c)
	}
	return out
}

// diffTable compares one table present on both sides.
func diffTable(b, a Table) []Change {
	var out []Change
	table := display(a.Name)

	bc := map[string]Column{}
	for _, c := range b.Columns {
		bc[c.Name] = c
	}
	ac := map[string]bool{}
	for _, c := range a.Columns {
		ac[c.Name] = true
		old, ok := bc[c.Name]
		if !ok {
			out = append(out, Change{Kind: KindColumn, Object: c.Name, Table: table, Action: Added, Detail: columnSpec(c)})
			continue
		}
		if d := columnChanges(old, c); d != "" {
			out = append(out, Change{Kind: KindColumn, Object: c.Name, Table: table, Action: Changed, Detail: d})
		}
	}
	for _, c := range b.Columns {
		if !ac[c.Name] {
			out = append(out, Change{Kind: KindColumn, Object: c.Name, Table: table, Action: Dropped, Detail: c.Type})
		}
	}

	bk, ak := map[string]Constraint{}, map[string]Constraint{}
	for _, c := range b.Constraints {
		bk[c.Name] = c
	}
	for _, c := range a.Constraints {
		ak[c.Name] = c
	}
	for _, name := range unionNames(b.Constraints, a.Constraints, func(c Constraint) string { return c.Name }) {
		old, inB := bk[name]
		c, inA := ak[name]
		ch := Change{Kind: KindConstraint, Object: name, Table: table}
		switch {
		case !inB:
			ch.Action, ch.Detail = Added, c.Definition
		case !inA:
			ch.Action, ch.Detail = Dropped, old.Definition
		case old.Definition != c.Definition && strings.TrimSuffix(old.Definition, " NOT VALID") != strings.TrimSuffix(c.Definition, " NOT VALID"):
			ch.Action, ch.Detail = Changed, old.Definition+" -> "+c.Definition
		case old.Validated != c.Validated:
			ch.Action, ch.Detail = Changed, validity(old.Validated)+" -> "+validity(c.Validated)
		default:
			continue
		}
		out = append(out, ch)
	}

	bi, ai := map[string]Index{}, map[string]Index{}
	for _, x := range b.Indexes {
		bi[x.Name] = x
	}
	for _, x := range a.Indexes {
		ai[x.Name] = x
	}
	for _, name := range unionNames(b.Indexes, a.Indexes, func(x Index) string { return x.Name }) {
		old, inB := bi[name]
		x, inA := ai[name]
		// The index of a constraint is the constraint's change; an index
		// that becomes one (ADD CONSTRAINT ... USING INDEX) is too.
		if (inB && old.Constraint) || (inA && x.Constraint) {
			continue
		}
		ch := Change{Kind: KindIndex, Object: name, Table: table}
		switch {
		case !inB:
			ch.Action, ch.Detail = Added, indexSummary(x)
		case !inA:
			ch.Action, ch.Detail = Dropped, indexSummary(old)
		case old.Definition != x.Definition:
			ch.Action, ch.Detail = Changed, indexSummary(old)+" -> "+indexSummary(x)
		case old.Valid != x.Valid:
			ch.Action, ch.Detail = Changed, validIndex(old.Valid)+" -> "+validIndex(x.Valid)
		default:
			continue
		}
		out = append(out, ch)
	}

	bg, ag := map[string]Trigger{}, map[string]Trigger{}
	for _, g := range b.Triggers {
		bg[g.Name] = g
	}
	for _, g := range a.Triggers {
		ag[g.Name] = g
	}
	for _, name := range unionNames(b.Triggers, a.Triggers, func(g Trigger) string { return g.Name }) {
		old, inB := bg[name]
		g, inA := ag[name]
		ch := Change{Kind: KindTrigger, Object: name, Table: table}
		switch {
		case !inB:
			ch.Action, ch.Detail = Added, triggerSummary(g)
		case !inA:
			ch.Action = Dropped
		case old.Definition != g.Definition:
			ch.Action, ch.Detail = Changed, triggerSummary(old)+" -> "+triggerSummary(g)
		case old.Disabled != g.Disabled:
			ch.Action, ch.Detail = Changed, enabled(old.Disabled)+" -> "+enabled(g.Disabled)
		default:
			continue
		}
		out = append(out, ch)
	}
	return out
}

// columnChanges describes how a column changed, or "".
func columnChanges(b, a Column) string {
	var parts []string
	if b.Type != a.Type {
		parts = append(parts, "type "+b.Type+" -> "+a.Type)
	}
	if b.Generated != a.Generated || b.Default != a.Default {
		from, to := orNone(b.Default), orNone(a.Default)
		if b.Generated != a.Generated {
			to = defaultLabel(a) + " " + to
		}
		parts = append(parts, defaultLabel(b)+" "+from+" -> "+to)
	}
	if b.NotNull != a.NotNull {
		parts = append(parts, nullability(b.NotNull)+" -> "+nullability(a.NotNull))
	}
	if b.Identity != a.Identity {
		parts = append(parts, "identity "+orNone(b.Identity)+" -> "+orNone(a.Identity))
	}
	return strings.Join(parts, ", ")
}

// columnSpec is a column as a migration declares it: "bigint not null default 0".
func columnSpec(c Column) string {
	s := c.Type
	if c.NotNull {
		s += " not null"
	}
	switch {
	case c.Generated:
		s += " generated always as (" + c.Default + ") stored"
	case c.Identity != "":
		s += " generated " + c.Identity + " as identity"
	case c.Default != "":
		s += " default " + c.Default
	}
	return s
}

// columnList lists a new table's columns, at most about 100 characters.
func columnList(cols []Column) string {
	var parts []string
	n := 0
	for i, c := range cols {
		p := c.Name + " " + c.Type
		if n+len(p) > 100 && i > 0 {
			parts = append(parts, fmt.Sprintf("... (%d columns)", len(cols)))
			break
		}
		n += len(p) + 2
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// indexSummary is an index's definition without "CREATE INDEX name ON
// table USING": "btree (customer_id)", "unique btree (lower(email))".
func indexSummary(x Index) string {
	def := x.Definition
	s := def
	if _, rest, ok := strings.Cut(def, " USING "); ok {
		s = rest
	}
	if strings.HasPrefix(def, "CREATE UNIQUE INDEX") {
		s = "unique " + s
	}
	if !x.Valid {
		s += " (invalid)"
	}
	return s
}

// triggerSummary is a trigger's definition without "CREATE TRIGGER name".
func triggerSummary(g Trigger) string {
	def := g.Definition
	for _, p := range []string{"CREATE TRIGGER ", "CREATE CONSTRAINT TRIGGER "} {
		if rest, ok := strings.CutPrefix(def, p); ok {
			if _, after, ok := strings.Cut(rest, " "); ok {
				return after
			}
		}
	}
	return def
}

func functionSummary(f Function) string {
	s := f.Kind
	if f.Returns != "" && f.Kind != "procedure" {
		s += " returning " + f.Returns
	}
	return s + ", language " + f.Language
}

func defaultLabel(c Column) string {
	if c.Generated {
		return "generated"
	}
	return "default"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func nullability(notNull bool) string {
	if notNull {
		return "not null"
	}
	return "nullable"
}

func validity(v bool) string {
	if v {
		return "valid"
	}
	return "not valid"
}

func validIndex(v bool) string {
	if v {
		return "valid"
	}
	return "invalid"
}

func enabled(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "enabled"
}

func viewKind(v View) string {
	if v.Materialized {
		return "materialized view"
	}
	return "view"
}

// unionNames returns the names in a or b, sorted.
func unionNames[T any](a, b []T, name func(T) string) []string {
	seen := map[string]bool{}
	var out []string
	for _, list := range [][]T{a, b} {
		for _, x := range list {
			if n := name(x); !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}
