// Command app is prenv's demo application: a tiny shop that lists customers
// and their orders. "app migrate" applies pending migrations to DATABASE_URL;
// "app serve" (the default) serves HTTP on PORT with /healthz.
package main

import (
	"context"
	"fmt"
	"html/template"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prenv/prenv/examples/demo/app/migrations"
)

func main() {
	cmd := "serve"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		log.Fatal("DATABASE_URL is not set")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd {
	case "migrate":
		err = migrate(ctx, url)
	case "serve":
		err = serve(ctx, url)
	default:
		err = fmt.Errorf("unknown command %q: want migrate or serve", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func migrate(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	applied := 0
	for _, name := range names {
		version := strings.TrimSuffix(name, ".sql")
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		body, _ := fs.ReadFile(migrations.FS, name)
		t0 := time.Now()
		fmt.Printf("applying %s ... ", name)
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			tx.Rollback(ctx)
			fmt.Println("failed")
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
			tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		fmt.Printf("ok (%v)\n", time.Since(t0).Round(time.Millisecond))
		applied++
	}
	fmt.Printf("%d migration(s) applied, schema at %s\n", applied, strings.TrimSuffix(names[len(names)-1], ".sql"))
	return nil
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Demo shop · {{.Env}}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}.tag{background:#eef;padding:.1rem .4rem;border-radius:.3rem}</style></head>
<body><h1>Demo shop</h1>
<p>Environment <span class="tag">{{.Env}}</span> at commit <span class="tag">{{.Commit}}</span>, schema <span class="tag">{{.Schema}}</span></p>
<p>{{.People}} customers, {{.Orders}} orders.</p>
<h2>Latest orders</h2>
<table><tr><th>#</th><th>Customer</th><th>Email</th><th>Item</th><th>Qty</th><th>Total</th></tr>
{{range .Latest}}<tr><td>{{.ID}}</td><td>{{.Name}}</td><td>{{.Email}}</td><td>{{.Item}}</td><td>{{.Qty}}</td><td>{{.Total}}</td></tr>{{end}}
</table></body></html>`))

type order struct {
	ID                       int64
	Name, Email, Item, Total string
	Qty                      int
}

func serve(ctx context.Context, url string) error {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		var one int
		if err := pool.QueryRow(r.Context(), "SELECT 1").Scan(&one); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok", os.Getenv("PRENV_SHA"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		data := struct {
			Env, Commit, Schema string
			People, Orders      int64
			Latest              []order
		}{Env: os.Getenv("PRENV_ENV"), Commit: os.Getenv("PRENV_SHA")}
		q := r.Context()
		_ = pool.QueryRow(q, `SELECT coalesce(max(version), 'none') FROM schema_migrations`).Scan(&data.Schema)
		_ = pool.QueryRow(q, `SELECT count(*) FROM people`).Scan(&data.People)
		_ = pool.QueryRow(q, `SELECT count(*) FROM orders`).Scan(&data.Orders)
		rows, err := pool.Query(q, `SELECT o.id, p.full_name, p.email, o.item, o.quantity, o.total_cents FROM orders o JOIN people p ON p.id = o.person_id ORDER BY o.ordered_at DESC LIMIT 20`)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for rows.Next() {
			var o order
			var cents int64
			if err := rows.Scan(&o.ID, &o.Name, &o.Email, &o.Item, &o.Qty, &cents); err == nil {
				o.Total = fmt.Sprintf("%d.%02d", cents/100, cents%100)
				data.Latest = append(data.Latest, o)
			}
		}
		rows.Close()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, data)
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("demo app (commit %s) listening on %s", os.Getenv("PRENV_SHA"), srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
