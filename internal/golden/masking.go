package golden

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/golden/mask"
	"github.com/prenv/prenv/internal/golden/scan"
	"github.com/prenv/prenv/internal/pgserver"
)

// ErrPII is wrapped by a build refused because data that looks personal
// would be promoted: a column no masking rule covers and no keep lists.
var ErrPII = errors.New("personal data would be promoted")

// PIIError is a refused build with what the scanner found.
type PIIError struct{ Findings []scan.Finding }

func (e *PIIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %d column(s) look personal and no masking rule covers them; nothing was promoted and the previous generation stays current:\n", ErrPII, len(e.Findings))
	scan.Report(&b, e.Findings)
	b.WriteString("add a rule for each under golden.masking.tables, or list it under golden.masking.keep once reviewed as not personal (prenv golden check shows this without building); --allow-pii promotes anyway and records it")
	return b.String()
}

func (e *PIIError) Unwrap() error { return ErrPII }

// Masking is what a generation records of how its data was made safe.
type Masking struct {
	// Columns are the "table.column" the rules masked.
	Columns []string `json:"columns,omitempty"`
	// Scan is the scanner's verdict: clean, or allowed (--allow-pii) with
	// Findings.
	Scan     string   `json:"scan"`
	Findings []string `json:"findings,omitempty"`
	AllowPII bool     `json:"allow_pii,omitempty"`
}

// mask applies b.Masking to the restored database, then scans what no
// rule covers; a finding refuses the build unless AllowPII.
func (b *Builder) mask(ctx context.Context, srv pgserver.Server) (Masking, error) {
	conn, err := pgx.Connect(ctx, srv.ConnString(b.Database))
	if err != nil {
		return Masking{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := MaskAndScan(ctx, conn, b.Masking, b.AllowPII)
	if err == nil && len(m.Findings) > 0 {
		b.warn(fmt.Sprintf("%d column(s) look personal and are promoted unmasked (--allow-pii)", len(m.Findings)))
	}
	return m, err
}

// MaskAndScan checks rules against the database conn is connected to and
// applies them (mask.Validate, mask.Apply), then scans every column no
// rule covers and no keep lists. A finding returns a *PIIError (wrapping
// ErrPII) unless allowPII, when the Masking records it. Every golden
// build, local or on Aurora, makes its data safe through here.
func MaskAndScan(ctx context.Context, conn *pgx.Conn, rules mask.Rules, allowPII bool) (Masking, error) {
	var m Masking
	if !rules.Empty() {
		if err := mask.Validate(ctx, conn, rules); err != nil {
			return m, err
		}
		rep, err := mask.Apply(ctx, conn, rules)
		if err != nil {
			return m, err
		}
		for _, t := range rep.Tables {
			for _, c := range t.Columns {
				m.Columns = append(m.Columns, t.Table+"."+c)
			}
		}
	}
	// A materialized view holds rows computed from the tables before they
	// were masked: it is computed again from the masked ones. It is not
	// scanned: computed from tables that are masked, kept or scanned, it
	// holds nothing they do not, and the scanner would take the masked
	// values it copies for production's.
	if err := refreshMaterializedViews(ctx, conn); err != nil {
		return m, err
	}
	findings, err := scan.Scan(ctx, conn, scan.Options{Skip: rules.Covered()})
	if err != nil {
		return m, fmt.Errorf("scan for personal data: %w", err)
	}
	// Large objects are neither masked nor scanned: they count as a
	// finding of their own.
	var objects int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_largeobject_metadata`).Scan(&objects); err != nil {
		return m, fmt.Errorf("count large objects: %w", err)
	}
	if objects > 0 {
		findings = append(findings, scan.Finding{Table: "pg_largeobject", Column: "data", Detector: fmt.Sprintf("%d large objects, which prenv neither masks nor scans (remove them from the source with lo_unlink)", objects), Rate: 1})
	}
	m.Scan, m.AllowPII = "clean", allowPII
	if len(findings) == 0 {
		return m, nil
	}
	if !allowPII {
		return m, &PIIError{Findings: findings}
	}
	m.Scan = "allowed with --allow-pii"
	for _, f := range findings {
		m.Findings = append(m.Findings, fmt.Sprintf("%s.%s: %s (%.0f%%)", f.Table, f.Column, f.Detector, 100*f.Rate))
	}
	return m, nil
}

// refreshMaterializedViews computes every materialized view of the
// database again, from the tables as masked.
func refreshMaterializedViews(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("list materialized views: %w", err)
	}
	views, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list materialized views: %w", err)
	}
	// A view over another materialized view must be computed after it:
	// when there are such, every view is refreshed once per view, which
	// is enough whatever the order.
	var nested bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
		JOIN pg_class v ON v.oid = r.ev_class JOIN pg_class u ON u.oid = d.refobjid
		WHERE d.classid = 'pg_rewrite'::regclass AND v.relkind = 'm' AND u.relkind = 'm' AND u.oid <> v.oid)`).Scan(&nested); err != nil {
		return fmt.Errorf("list materialized views: %w", err)
	}
	passes := 1
	if nested {
		passes = len(views)
	}
	for range passes {
		for _, v := range views {
			if _, err := conn.Exec(ctx, "REFRESH MATERIALIZED VIEW "+v); err != nil {
				return fmt.Errorf("materialized view %s holds rows computed before masking and cannot be computed again (%w): its owner must be the role the build connects as, or drop it from the source", v, err)
			}
		}
	}
	return nil
}
