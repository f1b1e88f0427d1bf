package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/golden/mask"
	"github.com/prenv/prenv/internal/pgserver"
)

// The masking bench (issue 11, section 7): the demo's golden source at
// about 1.5 GB, masked with 8 rules (a) by golden build, against (b) the
// same build without rules and (c) the same rules as SQL UPDATEs in
// PostgreSQL, the way PostgreSQL Anonymizer's static masking rewrites rows.

const maskSalt = "bench-salt-public-not-a-secret"

// maskRules are the 8 rules: every column of people but its key, and the
// date of each order (a quasi-identifier: a purchase at a known time). The
// demo's people table has only 7 columns besides id, so the eighth rule is
// on orders, which also makes the masked tables most of the golden data.
var maskRules = mask.Rules{
	Salt: maskSalt,
	Tables: map[string]map[string]mask.Rule{
		"people": {
			"full_name":  {Transformer: "person_name"},
			"email":      {Transformer: "email"},
			"phone":      {Transformer: "phone"},
			"street":     {Transformer: "address"},
			"city":       {Transformer: "hash"},
			"postcode":   {Transformer: "redact"},
			"created_at": {Transformer: "date_shift"},
		},
		"orders": {
			"ordered_at": {Transformer: "date_shift"},
		},
	},
}

// maskMB is the demo seed's -mb per bench size.
var maskMB = map[string]int{"small": 150, "large": 1500}

// buildSettings are golden build's own postgres settings (golden.go), so
// that (c) measures the UPDATE way, not a slower configuration.
var buildSettings = map[string]string{"listen_addresses": "", "fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
	"maintenance_work_mem": "256MB", "wal_level": "minimal", "max_wal_senders": "0", "min_wal_size": "32MB", "max_wal_size": "4GB"}

type maskedTable struct {
	name        string
	rows        int64
	heap, total int64 // pg_table_size, pg_total_relation_size
}

type buildTimes struct {
	whole float64
	steps map[string]float64
	gen   golden.Generation
}

func maskingBench(ctx context.Context, work string, bin pgserver.Binaries, u pgserver.User, label string) {
	mb, ok := maskMB[label]
	if !ok {
		log.Fatalf("bench: masking: unknown size %q", label)
	}
	dir := filepath.Join(work, "masking")
	os.MkdirAll(dir, 0o755)
	defer os.RemoveAll(dir)
	seed := filepath.Join(dir, "seed.sql")
	fmt.Fprintf(os.Stderr, "bench: masking: writing the demo seed at -mb %d...\n", mb)
	f, err := os.Create(seed)
	check(err)
	gen := exec.Command("go", "run", "./examples/demo/seed", "-mb", fmt.Sprint(mb))
	gen.Stdout, gen.Stderr = f, os.Stderr
	check(gen.Run())
	check(f.Close())
	os.Chmod(seed, 0o644)
	seedInfo, _ := os.Stat(seed)

	build := func(name string, rules mask.Rules) buildTimes {
		home := filepath.Join(dir, name)
		os.MkdirAll(home, 0o755)
		bt := buildTimes{steps: map[string]float64{}}
		b := &golden.Builder{Home: home, Bin: bin, User: u, Database: "app", AppUser: "app", Masking: rules, AllowPII: true,
			OnStep: func(step string, took time.Duration) { bt.steps[step] = took.Seconds() }}
		fmt.Fprintf(os.Stderr, "bench: masking: golden build, %s...\n", name)
		if p := os.Getenv("PRENV_BENCH_MASK_PROFILE"); p != "" && !rules.Empty() {
			pf, err := os.Create(p)
			check(err)
			check(pprof.StartCPUProfile(pf))
			defer func() { pprof.StopCPUProfile(); pf.Close() }()
		}
		t0 := time.Now()
		g, err := b.Build(ctx, golden.Source{SQLFile: seed})
		check(err)
		bt.whole, bt.gen = time.Since(t0).Seconds(), g
		return bt
	}
	// (b) first: its generation is also what (c) updates.
	plain := build("unmasked", mask.Rules{})
	masked := build("masked", maskRules)
	if g := masked.gen; g.Masking == nil || len(g.Masking.Columns) != 8 {
		log.Fatalf("bench: masking: the masked build masked %v, want 8 columns", g.Masking)
	}
	os.RemoveAll(golden.Root(filepath.Join(dir, "masked")))

	// (c): a copy of (b)'s generation, started with the build's settings.
	upd := filepath.Join(dir, "update")
	os.MkdirAll(upd, 0o755)
	if out, err := exec.Command("cp", "-a", "--reflink=auto", plain.gen.DataDir(), filepath.Join(upd, "data")).CombinedOutput(); err != nil {
		log.Fatalf("bench: masking: copy the unmasked generation: %v %s", err, out)
	}
	check(u.Own(upd))
	srv := pgserver.Server{Bin: bin, User: u, DataDir: filepath.Join(upd, "data"),
		SocketDir: pgserver.SocketDir(filepath.Join(upd, "run")), LogFile: filepath.Join(upd, "postgres.log")}
	for p := 55700; p < 55800; p++ {
		if pgserver.FreePort(p) {
			srv.Port = p
			break
		}
	}
	check(srv.Start(ctx, time.Minute, buildSettings))
	defer srv.Stop(time.Minute)
	conn, err := pgx.Connect(ctx, srv.ConnString("app"))
	check(err)
	defer conn.Close(context.WithoutCancel(ctx))
	var tables []maskedTable
	for _, t := range []string{"people", "orders"} {
		mt := maskedTable{name: t}
		check(conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*), pg_table_size('%s'), pg_total_relation_size('%s') FROM %s", t, t, t)).Scan(&mt.rows, &mt.heap, &mt.total))
		tables = append(tables, mt)
	}
	for _, q := range updateSetup() {
		_, err := conn.Exec(ctx, q)
		check(err)
	}
	fmt.Fprintln(os.Stderr, "bench: masking: the same rules as UPDATEs...")
	timed := func(q string) float64 {
		t0 := time.Now()
		_, err := conn.Exec(ctx, q)
		if err != nil {
			log.Fatalf("bench: masking: %s: %v", q, err)
		}
		return time.Since(t0).Seconds()
	}
	t0 := time.Now()
	timed("BEGIN")
	updPeople := timed(`UPDATE people SET full_name = m_person_name(full_name), email = m_email(email), phone = m_phone(phone),
  street = m_address(street), city = m_hash(city), postcode = '[redacted]', created_at = m_date_shift(created_at)`)
	updOrders := timed(`UPDATE orders SET ordered_at = m_date_shift(ordered_at)`)
	commit := timed("COMMIT")
	update := time.Since(t0).Seconds()
	var afterUpdate int64
	check(conn.QueryRow(ctx, "SELECT pg_total_relation_size('people') + pg_total_relation_size('orders')").Scan(&afterUpdate))
	vacuum := timed("VACUUM people, orders")
	vacuumFull := timed("VACUUM FULL people, orders")
	var afterFull int64
	check(conn.QueryRow(ctx, "SELECT pg_total_relation_size('people') + pg_total_relation_size('orders')").Scan(&afterFull))

	var rows, heap, total int64
	for _, t := range tables {
		rows, heap, total = rows+t.rows, heap+t.heap, total+t.total
	}
	rate := func(secs float64) string {
		return fmt.Sprintf("%.0f\t%.1f", float64(rows)/secs, float64(heap)/(1<<20)/secs)
	}
	fmt.Printf("Masking the demo's golden data (examples/demo/seed -mb %d: %s of SQL; generation %s unmasked, %s masked), 8 rules:\n",
		mb, human(seedInfo.Size()), human(plain.gen.SizeBytes), human(masked.gen.SizeBytes))
	fmt.Println("people: full_name person_name, email email, phone phone, street address, city hash, postcode redact, created_at date_shift;")
	fmt.Println("orders: ordered_at date_shift. Masked tables, before masking:")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "table\trows\ttable (heap+toast)\twith indexes")
	for _, t := range tables {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", t.name, t.rows, human(t.heap), human(t.total))
	}
	fmt.Fprintf(tw, "both\t%d\t%s\t%s\n", rows, human(heap), human(total))
	tw.Flush()
	fmt.Println()
	fmt.Println("rows/s and MB/s are of the masked tables (rows of both, MiB of their heaps) over each case's seconds; one run:")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "case\tseconds\trows/s\tMiB/s")
	fmt.Fprintf(tw, "(a) golden build with the 8 rules, whole\t%.1f\t%s\n", masked.whole, rate(masked.whole))
	fmt.Fprintf(tw, "(a) its mask step (validate, rewrite with COPY, check keys, scan)\t%.1f\t%s\n", masked.steps["mask"], rate(masked.steps["mask"]))
	fmt.Fprintf(tw, "(b) the same build without rules, whole\t%.1f\t%s\n", plain.whole, rate(plain.whole))
	fmt.Fprintf(tw, "(b) its mask step (scan only)\t%.1f\t%s\n", plain.steps["mask"], rate(plain.steps["mask"]))
	fmt.Fprintf(tw, "(c) UPDATEs, start to end of COMMIT (people %.1f, orders %.1f, commit %.2f)\t%.1f\t%s\n", updPeople, updOrders, commit, update, rate(update))
	fmt.Fprintf(tw, "(c) then VACUUM\t%.1f\t\t\n", vacuum)
	fmt.Fprintf(tw, "(c) then VACUUM FULL (drops the old values' bytes, the bloat)\t%.1f\t\t\n", vacuumFull)
	tw.Flush()
	fmt.Printf("(a) ÷ (b), whole builds: %.2f× (aim ≤ 1.5×)\n", masked.whole/plain.whole)
	fmt.Printf("(c) ÷ (a)'s mask step: %.2f× (aim ≥ 2×); with VACUUM %.2f×, with VACUUM and VACUUM FULL %.2f×\n",
		update/masked.steps["mask"], (update+vacuum)/masked.steps["mask"], (update+vacuum+vacuumFull)/masked.steps["mask"])
	fmt.Printf("masked tables with indexes: %s before, %s after the UPDATEs, %s after VACUUM FULL\n", human(total), human(afterUpdate), human(afterFull))
	steps := func(bt buildTimes) string {
		var parts []string
		for _, s := range []string{"initdb", "start", "roles", "restore", "mask", "check", "analyze", "compact", "stop", "promote"} {
			parts = append(parts, fmt.Sprintf("%s %.1f", s, bt.steps[s]))
		}
		return strings.Join(parts, ", ")
	}
	fmt.Printf("steps (s) of (a): %s\n", steps(masked))
	fmt.Printf("steps (s) of (b): %s\n", steps(plain))
	fmt.Printf("machine: %s, %d CPUs, %s RAM, %s; (c) ran on a copy of (b)'s generation with golden build's settings (fsync off, wal_level minimal), SQL functions over pgcrypto's hmac(sha256) and the same word lists\n\n",
		cpuModel(), goruntime.NumCPU(), memTotal(), bin.Version)
}

// updateSetup creates the SQL functions of (c): each does what the Go
// transformer of the same name does, with HMAC-SHA256 (pgcrypto) of the
// transformer's name and the value under the salt, and the same word lists;
// like PostgreSQL Anonymizer's pseudo_* functions, one call per value.
func updateSetup() []string {
	words := func(file string) string {
		data, err := os.ReadFile(filepath.Join("internal", "golden", "mask", "dict", file))
		check(err)
		var q []string
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				q = append(q, "'"+strings.ReplaceAll(l, "'", "''")+"'")
			}
		}
		return "ARRAY[" + strings.Join(q, ",") + "]"
	}
	salt := "'" + maskSalt + "'"
	return []string{
		"CREATE EXTENSION IF NOT EXISTS pgcrypto",
		"SET statement_timeout = 0",
		`CREATE FUNCTION m_mac(name text, v text) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT hmac(convert_to(name, 'UTF8') || '\x00'::bytea || convert_to(v, 'UTF8'), convert_to(` + salt + `, 'UTF8'), 'sha256') $$`,
		// the i-th word of the digest, 56 bits so it stays a positive bigint
		`CREATE FUNCTION m_u(d bytea, i int) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT ('x' || encode(substring(d FROM 8*i+1 FOR 7), 'hex'))::bit(56)::bigint $$`,
		`CREATE FUNCTION m_pick(w text[], v bigint) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT w[(1 + v % array_length(w, 1))::int] $$`,
		`CREATE FUNCTION m_person_name(v text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT m_pick(` + words("first_names.txt") + `, m_u(d, 0)) || ' ' || m_pick(` + words("last_names.txt") + `, m_u(d, 1))
		    FROM (SELECT m_mac('person_name', v) d) s $$`,
		`CREATE FUNCTION m_email(v text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT lower(m_pick(` + words("first_names.txt") + `, m_u(d, 1))) || '.' || encode(substring(d FROM 1 FOR 8), 'hex') || '@example.com'
		    FROM (SELECT m_mac('email', lower(btrim(v))) d) s $$`,
		`CREATE FUNCTION m_phone(v text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT format('+1-%s-555-01%s', 200 + m_u(d, 0) % 800, lpad((m_u(d, 1) % 100)::text, 2, '0'))
		    FROM (SELECT m_mac('phone', v) d) s $$`,
		`CREATE FUNCTION m_address(v text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT format('%s %s, %s %s', 1 + m_u(d, 0) % 199, m_pick(` + words("streets.txt") + `, m_u(d, 1)),
		           m_pick(` + words("cities.txt") + `, m_u(d, 2)), lpad((m_u(d, 3) % 100000)::text, 5, '0'))
		    FROM (SELECT m_mac('address', v) d) s $$`,
		`CREATE FUNCTION m_hash(v text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT encode(substring(m_mac('hash', v) FROM 1 FOR 16), 'hex') $$`,
		`CREATE FUNCTION m_date_shift(v timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE STRICT AS
		 $$ SELECT v + make_interval(days => (CASE WHEN s >= 0 THEN s + 1 ELSE s END)::int)
		    FROM (SELECT m_u(m_mac('date_shift', v::text), 0) % 60 - 30 s) x $$`,
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return goruntime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return goruntime.GOARCH
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			var kb int64
			fmt.Sscan(f[1], &kb)
			return human(kb << 10)
		}
	}
	return "?"
}
