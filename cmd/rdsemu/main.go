// Command rdsemu is an emulator of the Amazon RDS Query API for the
// operations prenv's aurora cloner uses, for tests and demos: any AWS
// client pointed at it with an endpoint URL works.
//
//	rdsemu --addr 127.0.0.1:4566 --source-cluster golden
//	AWS_ENDPOINT_URL_RDS=http://127.0.0.1:4566 aws rds describe-db-clusters
//
// With --postgres-home, each cluster is a real PostgreSQL server whose data
// follows the clusters as on Aurora, and --production-cluster makes a
// cluster with a database of its own and one automated snapshot, for a
// nightly golden build to restore or clone:
//
//	rdsemu --postgres-home /tmp/rds-home --production-cluster production
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/rdsemu/pgbackend"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() { os.Exit(run()) }

// run is the command; it returns the exit code once everything it made
// is gone.
func run() int {
	var o rdsemu.Options
	var sources, productions list
	addr := flag.String("addr", "127.0.0.1:4566", "address to listen on (HOST:PORT)")
	flag.Var(&sources, "source-cluster", "a cluster that exists and is available from the start (repeatable); clones of it get the golden data of --postgres-home")
	flag.Var(&productions, "production-cluster", "a cluster that exists from the start with a database of its own, a copy of the golden data of --postgres-home, and one automated snapshot (repeatable; needs --postgres-home)")
	flag.StringVar(&o.Region, "region", "us-east-1", "region in ARNs and endpoints")
	flag.DurationVar(&o.ClusterCreate, "cluster-create", 0, "time a cluster stays creating")
	flag.DurationVar(&o.InstanceCreate, "instance-create", 0, "time an instance stays creating")
	flag.DurationVar(&o.ClusterDelete, "cluster-delete", 0, "time a cluster stays deleting")
	flag.DurationVar(&o.InstanceDelete, "instance-delete", 0, "time an instance stays deleting")
	flag.DurationVar(&o.Modify, "modify", 0, "time a cluster stays resetting-master-credentials")
	flag.DurationVar(&o.SnapshotCreate, "snapshot-create", 0, "time a cluster snapshot stays creating")
	flag.IntVar(&o.ClusterQuota, "cluster-quota", 40, "clusters the account may have")
	flag.IntVar(&o.InstanceQuota, "instance-quota", 40, "instances the account may have")
	flag.Float64Var(&o.ThrottleRate, "throttle-rate", 0, "fraction of requests answered ThrottlingException")
	flag.Float64Var(&o.RateLimit, "rate-limit", 0, "requests per second sustained before ThrottlingException (0: no limit)")
	pgHome := flag.String("postgres-home", "", "back each cluster with a real PostgreSQL: a prenv home with a golden database (prenv golden build)")
	pgPorts := flag.String("postgres-ports", "54600-54699", "ports of the backing databases")
	verbose := flag.Bool("v", false, "log every request")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "rdsemu: unexpected arguments %v\n", flag.Args())
		return 2
	}
	if len(productions) > 0 && *pgHome == "" {
		fmt.Fprintln(os.Stderr, "rdsemu: --production-cluster needs --postgres-home: its database is a copy of that home's golden data")
		return 2
	}
	o.Sources = sources
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *pgHome != "" {
		b, err := pgbackend.New(*pgHome, *pgPorts, o.Log)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rdsemu: --postgres-home: %v\n", err)
			return 2
		}
		o.Backend = b
		defer func() {
			if err := b.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "rdsemu: remove the databases: %v\n", err)
			}
		}()
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rdsemu: listen on %s: %v\n", *addr, err)
		return 1
	}
	emu := rdsemu.New(o)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, id := range productions {
		err := emu.CreateSource(ctx, id, nil)
		if err == nil {
			err = emu.TakeSnapshot(ctx, id, "", true)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "rdsemu: --production-cluster %s: %v\n", id, err)
			return 1
		}
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	fmt.Printf("rdsemu: RDS API %s at http://%s (sources: %s; production clusters: %s)\n", rdsemu.APIVersion, ln.Addr(),
		strings.Join(sources, ", "), strings.Join(productions, ", "))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "rdsemu: %v\n", err)
		return 1
	}
	return 0
}
