// Command cmd is make bench: see package bench.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/localpg"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/pgserver"
)

type size struct {
	label  string
	people int // each with 5 orders
}

func main() {
	dir := flag.String("dir", os.Getenv("PRENV_BENCH_DIR"), "working directory, on a reflink-capable filesystem for representative numbers")
	runs := flag.Int("runs", 5, "runs per fast method (the median is shown)")
	sizes := flag.String("sizes", "small,large", "golden sizes to measure: small (~150 MB), large (~1.5 GB)")
	skipUp := flag.Bool("skip-up", false, "skip the demo up and memory measurements")
	skipKube := flag.Bool("skip-kube", false, "skip the kubernetes runtime measurements")
	skipAurora := flag.Bool("skip-aurora", false, "skip the aurora cloner measurements")
	skipWebhook := flag.Bool("skip-webhook", false, "skip the webhook acceptance measurements")
	skipSweep := flag.Bool("skip-sweep", false, "skip the sweep measurements")
	skipMasking := flag.Bool("skip-masking", false, "skip the masking measurements (the demo seed at the largest size)")
	skipMigration := flag.Bool("skip-migration", false, "skip the migration rehearsal measurements")
	skipInstall := flag.Bool("skip-install", false, "skip the GitHub Action's install measurements (builds prenv from an empty cache)")
	skipFailover := flag.Bool("skip-failover", false, "skip the replica failover measurements")
	only := flag.String("only", "", "run one section alone: webhook, failover, pool")
	flag.Parse()
	if *dir == "" {
		*dir = os.TempDir()
		fmt.Fprintln(os.Stderr, "bench: no reflink volume (PRENV_BENCH_DIR unset): clones will be plain copies; see docs/reflink.md")
	}
	ctx := context.Background()
	bin, err := pgserver.FindBinaries(ctx, "")
	check(err)
	u, err := pgserver.ResolveUser("postgres")
	check(err)
	work, err := os.MkdirTemp(*dir, "bench-")
	check(err)
	os.Chmod(work, 0o755)
	defer func() { pgserver.StopUnder(work, 20*time.Second); os.RemoveAll(work) }()

	switch *only {
	case "":
	case "webhook":
		webhookBench(ctx, work, bin, u)
		return
	case "failover":
		failoverBench(ctx, work, bin, u)
		return
	case "pool":
		poolBench(ctx, work)
		return
	default:
		log.Fatalf("bench: -only %q: want webhook, failover or pool", *only)
	}

	all := map[string]size{"small": {"small", 45_000}, "large": {"large", 800_000}}
	var chosen []size
	for _, s := range strings.Split(*sizes, ",") {
		sz, ok := all[strings.TrimSpace(s)]
		if !ok {
			log.Fatalf("bench: unknown size %q (small, large)", s)
		}
		chosen = append(chosen, sz)
	}

	fsType := fsName(work)
	fmt.Printf("prenv bench: %s, %s/%s, %d CPUs, %s, working directory on %s\n\n",
		time.Now().UTC().Format("2006-01-02"), goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU(), bin.Version, fsType)

	type row struct {
		method string
		secs   map[string]float64
	}
	rows := []row{{"prenv clone (reflink)", map[string]float64{}}, {"prenv clone (plain copy, the fallback)", map[string]float64{}},
		{"CREATE DATABASE ... STRATEGY FILE_COPY", map[string]float64{}}, {"pg_dump | pg_restore", map[string]float64{}}}
	sizeOf := map[string]int64{}
	for _, sz := range chosen {
		home := filepath.Join(work, sz.label)
		os.MkdirAll(home, 0o755)
		fmt.Fprintf(os.Stderr, "bench: building the %s golden data (%d people, %d orders)...\n", sz.label, sz.people, 5*sz.people)
		g := buildGolden(ctx, home, bin, u, sz.people)
		sizeOf[sz.label] = g.SizeBytes
		c := localpg.New(home, "bench", nil)
		c.FirstPort, c.LastPort = 55400, 55499
		pr := 0
		clone := func(noReflink bool) float64 {
			pr++
			c.NoReflink = noReflink
			k := env.Key{PR: pr}
			t0 := time.Now()
			db, err := c.Clone(ctx, dbclone.Request{Key: k, Name: k.Name(), Labels: map[string]string{}})
			check(err)
			d := time.Since(t0).Seconds()
			if !strings.Contains(db.Ready, "select 1") {
				log.Fatalf("clone not checked: %q", db.Ready)
			}
			check(c.Delete(ctx, k))
			return d
		}
		rows[0].secs[sz.label] = median(*runs, func() float64 { return clone(false) })
		rows[1].secs[sz.label] = median(max(1, *runs/2), func() float64 { return clone(true) })
		// The alternatives run on one server holding the golden data.
		k := env.Key{PR: 999}
		tmpl, err := c.Clone(ctx, dbclone.Request{Key: k, Name: k.Name(), Labels: map[string]string{}})
		check(err)
		super := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", pgserver.SocketDir(filepath.Join(home, "clones", k.Name(), "run")), tmpl.Port)
		n := 0
		rows[2].secs[sz.label] = median(*runs, func() float64 {
			n++
			name := fmt.Sprintf("fc_%d", n)
			t0 := time.Now()
			exec1(ctx, super, fmt.Sprintf("CREATE DATABASE %s TEMPLATE app STRATEGY FILE_COPY", name))
			selectOne(ctx, strings.Replace(super, "dbname=postgres", "dbname="+name, 1))
			d := time.Since(t0).Seconds()
			exec1(ctx, super, "DROP DATABASE "+name)
			return d
		})
		rows[3].secs[sz.label] = median(1, func() float64 {
			t0 := time.Now()
			exec1(ctx, super, "CREATE DATABASE restored")
			target := strings.Replace(super, "dbname=postgres", "dbname=restored", 1)
			source := strings.Replace(super, "dbname=postgres", "dbname=app", 1)
			pipe := fmt.Sprintf("%q -Fc -d %q | %q -d %q --no-owner", bin.Path("pg_dump"), source, bin.Path("pg_restore"), target)
			if out, err := exec.Command("/bin/sh", "-c", pipe).CombinedOutput(); err != nil {
				log.Fatalf("pg_dump | pg_restore: %v %s", err, out)
			}
			selectOne(ctx, target)
			d := time.Since(t0).Seconds()
			exec1(ctx, super, "DROP DATABASE restored")
			return d
		})
		check(c.Delete(ctx, k))
		os.RemoveAll(golden.Root(home))
	}

	fmt.Println("Clone-to-first-query: from nothing to a SELECT 1 answered by the new database (median).")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	head := "method"
	for _, sz := range chosen {
		head += fmt.Sprintf("\t%s (%s)", sz.label, human(sizeOf[sz.label]))
	}
	if len(chosen) == 2 {
		head += "\tgrowth small→large"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		line := r.method
		for _, sz := range chosen {
			line += fmt.Sprintf("\t%.3f s", r.secs[sz.label])
		}
		if len(chosen) == 2 {
			line += fmt.Sprintf("\t%.2f×", r.secs[chosen[1].label]/r.secs[chosen[0].label])
		}
		fmt.Fprintln(tw, line)
	}
	line := "FILE_COPY ÷ prenv (reflink)"
	for _, sz := range chosen {
		line += fmt.Sprintf("\t%.1f×", rows[2].secs[sz.label]/rows[0].secs[sz.label])
	}
	fmt.Fprintln(tw, line)
	tw.Flush()
	fmt.Printf("(%d runs each; plain copy %d; pg_dump | pg_restore once)\n\n", *runs, max(1, *runs/2))

	if !*skipUp {
		upAndMemory(ctx, work, *runs)
	}
	if !*skipAurora {
		auroraBench(ctx, work)
		poolBench(ctx, work)
	}
	if !*skipWebhook {
		webhookBench(ctx, work, bin, u)
	}
	if !*skipFailover {
		failoverBench(ctx, work, bin, u)
	}
	if !*skipKube {
		root, _ := os.Getwd()
		kubeBench(ctx, root, work)
	}
	if !*skipSweep {
		root, _ := os.Getwd()
		sweepBench(ctx, root, work)
	}
	if !*skipInstall {
		root, _ := os.Getwd()
		installBench(ctx, root, work)
	}
	if !*skipMigration {
		migrationBench(ctx, work, bin, u, max(*runs, 3))
	}
	if !*skipMasking {
		maskingBench(ctx, work, bin, u, chosen[len(chosen)-1].label)
	}
}

// buildGolden builds a golden generation shaped like the demo's data.
func buildGolden(ctx context.Context, home string, bin pgserver.Binaries, u pgserver.User, people int) golden.Generation {
	f := filepath.Join(home, "seed.sql")
	sql := fmt.Sprintf(`
CREATE TABLE people (id bigserial PRIMARY KEY, full_name text NOT NULL, email text NOT NULL, phone text NOT NULL, street text NOT NULL, city text NOT NULL, postcode text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, person_id bigint NOT NULL, item text NOT NULL, quantity int NOT NULL, total_cents bigint NOT NULL, ordered_at timestamptz NOT NULL);
INSERT INTO people (full_name, email, phone, street, city, postcode)
  SELECT 'Person ' || i, 'person' || i || '@example.test', '+44 7' || lpad((i %% 1000000)::text, 9, '0'), (i %% 200) || ' Mill Close', 'Northwick', 'NW' || (i %% 20) || ' 2AB' FROM generate_series(1, %d) i;
INSERT INTO orders (person_id, item, quantity, total_cents, ordered_at)
  SELECT 1 + (i %% %d), 'Espresso beans 1kg', 1 + i %% 4, 1200 + i %% 5000, timestamptz '2025-01-01' + (i %% 31536000) * interval '1 second' FROM generate_series(1, %d) i;
CREATE INDEX orders_person_id ON orders(person_id);
`, people, people, 5*people)
	check(os.WriteFile(f, []byte(sql), 0o644))
	b := &golden.Builder{Home: home, Bin: bin, User: u, Database: "app", AppUser: "app", AllowPII: true} // synthetic people
	g, err := b.Build(ctx, golden.Source{SQLFile: f})
	check(err)
	return g
}

// upAndMemory measures prenv up of the demo, end to end until the proxy
// answers, and the memory of the idle environment.
func upAndMemory(ctx context.Context, work string, runs int) {
	root, _ := os.Getwd()
	prenv := filepath.Join(root, "bin", "prenv")
	if _, err := os.Stat(prenv); err != nil {
		log.Fatalf("bench: %s missing: run make build", prenv)
	}
	home := filepath.Join(work, "demo")
	os.MkdirAll(home, 0o755)
	listen := "127.0.0.1:18799"
	envv := append(os.Environ(), "PRENV_HOME="+home, "PRENV_LISTEN="+listen, "PRENV_DATABASE_LOCALPG_PORTS=55500-55599")
	run := func(dir string, args ...string) string {
		cmd := exec.Command(prenv, args...)
		cmd.Dir, cmd.Env = dir, envv
		out, err := cmd.CombinedOutput()
		if err != nil {
			log.Fatalf("prenv %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	defer func() {
		if data, err := os.ReadFile(filepath.Join(home, "serve.pid")); err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			syscall.Kill(pid, syscall.SIGTERM)
			time.Sleep(300 * time.Millisecond)
		}
	}()
	seed := filepath.Join(home, "seed.sql")
	out, err := exec.Command("go", "run", "./examples/demo/seed", "-people", "2000").Output()
	check(err)
	check(os.WriteFile(seed, out, 0o644))
	run(root, "golden", "build", "--from-sql", seed)

	// The demo in a repository of the bench's own: c1 is HEAD, c2 the next
	// push (a change to the app's source).
	repo := filepath.Join(work, "repo")
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.test", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.test")
		out, err := cmd.CombinedOutput()
		if err != nil {
			log.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	check(exec.Command("git", "clone", "-q", "--no-hardlinks", root, repo).Run())
	os.Chmod(repo, 0o755)
	c1 := git("rev-parse", "HEAD")
	f, err := os.OpenFile(filepath.Join(repo, "examples", "demo", "app", "main.go"), os.O_APPEND|os.O_WRONLY, 0)
	check(err)
	fmt.Fprintln(f, "\n// the next push")
	f.Close()
	git("commit", "-qam", "the next push")
	c2 := git("rev-parse", "HEAD")
	demo := filepath.Join(repo, "examples", "demo")

	// A home seed as a team makes one from its default branch: the demo
	// built once in an empty home.
	homeSeed := filepath.Join(work, "home-seed")
	os.MkdirAll(homeSeed, 0o755)
	t0 := time.Now()
	modcache, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(work, "seed-app"), ".")
	build.Dir = filepath.Join(repo, "examples", "demo", "app")
	build.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + homeSeed, "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod",
		"GOPROXY=file://" + filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download"), "GONOSUMDB=*"}
	if out, err := build.CombinedOutput(); err != nil {
		log.Fatalf("bench: build the home seed: %v\n%s", err, out)
	}
	seedSecs := time.Since(t0).Seconds()

	pw := ""
	type up struct{ build, total float64 }
	upPR := func(pr int, commit string, extra ...string) (up, map[string]float64) {
		t0 := time.Now()
		cmd := exec.Command(prenv, "up", "--pr", strconv.Itoa(pr), "--sha", commit)
		cmd.Dir, cmd.Env = demo, append(envv, extra...)
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("prenv up --pr %d: %v\n%s", pr, err, out)
		}
		var st struct {
			URL   string
			Auth  struct{ Password string }
			Steps []struct {
				Name    string
				Seconds float64
			}
		}
		check(json.Unmarshal([]byte(run(demo, "status", "--pr", strconv.Itoa(pr), "-o", "json")), &st))
		pw = st.Auth.Password
		waitProxied(st.URL, listen, pw)
		steps := map[string]float64{}
		for _, s := range st.Steps {
			steps[s.Name] = s.Seconds
		}
		return up{build: steps["build"], total: time.Since(t0).Seconds()}, steps
	}
	seeded := "PRENV_RUNTIME_LOCAL_HOME_SEED=" + homeSeed
	var totals []float64
	steps := map[string][]float64{}
	var fresh, next []up
	for i := 0; i <= runs; i++ { // run 0 starts prenv serve
		u, st := upPR(i+1, c1, seeded)
		if i == 0 {
			continue
		}
		fresh = append(fresh, u)
		totals = append(totals, u.total)
		for name, secs := range st {
			steps[name] = append(steps[name], secs)
		}
	}
	for i := 1; i <= runs; i++ {
		u, _ := upPR(i+1, c2)
		next = append(next, u)
	}
	cold, _ := upPR(runs+2, c1) // no seed: the environment's home starts empty
	fmt.Println("prenv up of the demo, a new pull request each time, until its URL answers through the proxy (median):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "step\tseconds")
	for _, name := range []string{"clone", "prepare", "build", "migrate", "deploy"} {
		fmt.Fprintf(tw, "%s\t%.3f\n", name, med(steps[name]))
	}
	fmt.Fprintf(tw, "total, command start to proxied 200\t%.3f\n", med(totals))
	tw.Flush()
	fmt.Println("(each environment builds as its own user in its own home; prepare copies runtime.local.home_seed into it)")
	fmt.Println()
	fmt.Println("The build of each environment, in its own home (Go's build cache is per environment, never shared):")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "case\tbuild s\tup total s")
	medOf := func(us []up, f func(up) float64) float64 {
		var xs []float64
		for _, u := range us {
			xs = append(xs, f(u))
		}
		return med(xs)
	}
	fmt.Fprintf(tw, "new pull request, home seeded (median of %d)\t%.3f\t%.3f\n", len(fresh), medOf(fresh, func(u up) float64 { return u.build }), medOf(fresh, func(u up) float64 { return u.total }))
	fmt.Fprintf(tw, "next push to the same pull request (median of %d)\t%.3f\t%.3f\n", len(next), medOf(next, func(u up) float64 { return u.build }), medOf(next, func(u up) float64 { return u.total }))
	fmt.Fprintf(tw, "new pull request, no seed (once)\t%.3f\t%.3f\n", cold.build, cold.total)
	fmt.Fprintf(tw, "making the seed (once, as from the default branch)\t%.3f\t\n", seedSecs)
	tw.Flush()
	fmt.Println()
	runs++ // the cold environment is torn down below too

	time.Sleep(3 * time.Second) // idle
	pgRSS, pgPSS := postgresMemory(filepath.Join(home, "clones", "pr-2", "data"))
	var rel struct{ PID int }
	data, _ := os.ReadFile(filepath.Join(home, "envs", "pr-2", "release.json"))
	json.Unmarshal(data, &rel)
	appRSS, appPSS := groupMemory(rel.PID)
	fmt.Println("Memory of one idle environment (its postgres processes plus the demo app):")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "part\tRSS\tPSS (shared pages split)")
	fmt.Fprintf(tw, "postgres (postmaster and its workers)\t%s\t%s\n", human(pgRSS), human(pgPSS))
	fmt.Fprintf(tw, "demo app\t%s\t%s\n", human(appRSS), human(appPSS))
	fmt.Fprintf(tw, "total\t%s\t%s\n", human(pgRSS+appRSS), human(pgPSS+appPSS))
	tw.Flush()
	fmt.Println()
	for i := 0; i <= runs; i++ {
		run(demo, "down", "--pr", strconv.Itoa(i+1))
	}
}

func waitProxied(url, listen, pw string) {
	host := strings.TrimPrefix(url, "http://")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "http://"+listen+"/", nil)
		req.Host = host
		req.SetBasicAuth("prenv", pw)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	log.Fatalf("%s never answered through the proxy", url)
}

// postgresMemory sums RSS and PSS of the postmaster of dataDir and its children.
func postgresMemory(dataDir string) (rss, pss int64) {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	check(err)
	pid, _ := strconv.Atoi(strings.SplitN(string(data), "\n", 2)[0])
	for _, p := range append([]int{pid}, children(pid)...) {
		r, s := memOf(p)
		rss, pss = rss+r, pss+s
	}
	return
}

// groupMemory sums RSS and PSS of the processes of process group pgid.
func groupMemory(pgid int) (rss, pss int64) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			r, s := memOf(pid)
			rss, pss = rss+r, pss+s
		}
	}
	return
}

func children(ppid int) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, pid)
		}
	}
	return out
}

func memOf(pid int) (rss, pss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "Rss:":
			rss = kb * 1024
		case "Pss:":
			pss = kb * 1024
		}
	}
	return
}

func exec1(ctx context.Context, conn, sql string) {
	c, err := pgx.Connect(ctx, conn)
	check(err)
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	check(err)
}

func selectOne(ctx context.Context, conn string) {
	c, err := pgx.Connect(ctx, conn)
	check(err)
	defer c.Close(ctx)
	var one int
	check(c.QueryRow(ctx, "SELECT 1").Scan(&one))
}

func median(n int, f func() float64) float64 {
	var xs []float64
	for i := 0; i < n; i++ {
		xs = append(xs, f())
	}
	return med(xs)
}

func med(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

func fsName(dir string) string {
	out, err := exec.Command("stat", "-f", "-c", "%T", dir).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func check(err error) {
	if err != nil {
		log.Fatal("bench: ", err)
	}
}
