package aurora

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/golden/mask"
	"github.com/prenv/prenv/internal/lock"
)

// Tags of the golden clusters prenv builds (golden.source.aurora). The
// resources are the record: what 'prenv golden ls' shows on any machine is
// read from them.
const (
	// LabelGoldenBuild is set at creation on every golden cluster and its
	// writer: the generation being built.
	LabelGoldenBuild = "prenv.dev/golden-build"
	// LabelGolden is set when the generation is promoted; clones are made
	// only from clusters that carry it.
	LabelGolden       = "prenv.dev/golden"
	LabelGoldenSource = "prenv.dev/golden-source" // the snapshot or cluster it was restored from
	LabelGoldenMasked = "prenv.dev/golden-masked" // the columns the rules masked
	LabelGoldenScan   = "prenv.dev/golden-scan"   // clean, or allow-pii
	LabelGoldenRows   = "prenv.dev/golden-rows"
	LabelGoldenSize   = "prenv.dev/golden-size" // bytes of the application's database
	LabelGoldenSteps  = "prenv.dev/golden-steps"
)

// How a golden build gets production's data.
const (
	FromSnapshot = "snapshot" // restore its newest automated snapshot
	FromClone    = "clone"    // a copy-on-write clone of it as it is now
)

// SnapshotAPI is what a golden build calls beyond the cloner's API;
// *rds.Client implements it.
type SnapshotAPI interface {
	DescribeDBClusterSnapshots(context.Context, *rds.DescribeDBClusterSnapshotsInput, ...func(*rds.Options)) (*rds.DescribeDBClusterSnapshotsOutput, error)
	RestoreDBClusterFromSnapshot(context.Context, *rds.RestoreDBClusterFromSnapshotInput, ...func(*rds.Options)) (*rds.RestoreDBClusterFromSnapshotOutput, error)
}

// GoldenGeneration is one golden cluster as its tags and RDS tell it.
type GoldenGeneration struct {
	Number    int       `json:"generation"`
	Cluster   string    `json:"cluster"`
	Status    string    `json:"status"`
	Promoted  bool      `json:"promoted"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when an unpromoted build is taken for dead (its builder
	// was killed): the next build, or the sweeper, deletes it then.
	ExpiresAt     time.Time     `json:"expires_at,omitzero"`
	EngineVersion string        `json:"engine_version,omitempty"`
	MaskedColumns int           `json:"masked_columns"`
	Scan          string        `json:"scan,omitempty"`
	Rows          int64         `json:"rows,omitempty"`
	SizeBytes     int64         `json:"size_bytes,omitempty"`
	Steps         []golden.Step `json:"steps,omitempty"`
	// Masking is what this build masked and found, when this process
	// built it (tags hold counts only).
	Masking *golden.Masking `json:"masking,omitempty"`
	// Dropped are the databases of the restored cluster other than
	// database.name, which this build dropped: nothing masks them.
	Dropped []string `json:"dropped,omitempty"`
}

// GoldenID is the cluster of golden generation n.
func (c *Cloner) GoldenID(n int) string { return c.opts().Prefix + "golden-" + strconv.Itoa(n) }

// GoldenGenerations lists the golden clusters of this owner, oldest
// first, from one paginated DescribeDBClusters.
func (c *Cloner) GoldenGenerations(ctx context.Context) ([]GoldenGeneration, error) {
	var out []GoldenGeneration
	p := rds.NewDescribeDBClustersPaginator(c.API, &rds.DescribeDBClustersInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, c.explain(err, "list the golden clusters")
		}
		for _, cl := range page.DBClusters {
			if g, ok := c.goldenOf(&cl); ok {
				out = append(out, g)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// goldenOf reads a golden cluster of this owner's; false for anything
// else.
func (c *Cloner) goldenOf(cl *types.DBCluster) (GoldenGeneration, bool) {
	m := tagMap(cl.TagList)
	o := c.opts()
	n, err := strconv.Atoi(m[LabelGoldenBuild])
	// The name must be the generation's as well as the tags: tags copied
	// onto another cluster (one restored from a golden snapshot) do not
	// make it a generation prenv may clone from or delete.
	if o.Owner == "" || m[env.LabelOwner] != o.Owner || err != nil || n < 1 || aws.ToString(cl.DBClusterIdentifier) != c.GoldenID(n) {
		return GoldenGeneration{}, false
	}
	g := GoldenGeneration{
		Number: n, Cluster: aws.ToString(cl.DBClusterIdentifier), Status: aws.ToString(cl.Status),
		Promoted: m[LabelGolden] == strconv.Itoa(n), Source: m[LabelGoldenSource],
		CreatedAt: aws.ToTime(cl.ClusterCreateTime).UTC(), EngineVersion: aws.ToString(cl.EngineVersion),
		Scan: m[LabelGoldenScan],
	}
	g.ExpiresAt, _ = time.Parse(time.RFC3339, m[env.LabelExpiresAt])
	g.MaskedColumns, _ = strconv.Atoi(m[LabelGoldenMasked])
	g.Rows, _ = strconv.ParseInt(m[LabelGoldenRows], 10, 64)
	g.SizeBytes, _ = strconv.ParseInt(m[LabelGoldenSize], 10, 64)
	g.Steps = parseSteps(m[LabelGoldenSteps])
	return g, true
}

// newestGolden is the cluster of the newest promoted generation that is
// available, or an error wrapping dbclone.ErrNoSource.
func (c *Cloner) newestGolden(ctx context.Context) (*types.DBCluster, error) {
	gens, err := c.GoldenGenerations(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(gens) - 1; i >= 0; i-- {
		if g := gens[i]; g.Promoted && g.Status == "available" {
			return c.cluster(ctx, g.Cluster)
		}
	}
	return nil, fmt.Errorf("no golden cluster has been promoted yet (golden.source.aurora): run 'prenv golden build', or wait for the nightly build: %w", dbclone.ErrNoSource)
}

// source is the cluster new environments are cloned from: Source, or the
// newest promoted golden generation (Golden). It returns an error wrapping
// dbclone.ErrNoSource if there is none.
func (c *Cloner) source(ctx context.Context) (*types.DBCluster, error) {
	o := c.opts()
	if o.Golden {
		return c.newestGolden(ctx)
	}
	src, err := c.cluster(ctx, o.Source)
	if err != nil {
		return nil, err
	}
	if src == nil {
		return nil, fmt.Errorf("the source cluster %s does not exist in %s (database.aurora.source_cluster): create the golden cluster, or check the name and the region: %w", o.Source, regionOr(o.Region), dbclone.ErrNoSource)
	}
	return src, nil
}

// GoldenBuilder builds golden generations on Aurora: it restores the
// production cluster's newest automated snapshot (or a copy-on-write clone
// of it) into a staging cluster named after the generation, with a writer;
// masks it in place through SQL with the same engine as a local build;
// scans what no rule covers; and promotes it by tag. A failed or refused
// build is deleted and the previous generation stays current. Generations
// beyond Keep are deleted after a promotion.
type GoldenBuilder struct {
	// Cloner gives the API, the owner, the prefix, the network settings,
	// the instance class and the waits of the clusters it makes.
	Cloner    *Cloner
	Snapshots SnapshotAPI
	// Production is the cluster the data comes from; From says how
	// (FromSnapshot, the default, or FromClone).
	Production, From string
	// BuildTimeout bounds a build (default 6 h); an unpromoted cluster
	// older than that is taken for a killed build's and deleted.
	BuildTimeout time.Duration
	// Keep is how many promoted generations are kept (default 2).
	Keep       int
	Masking    mask.Rules
	AllowPII   bool
	AllowEmpty bool
	// DryRun builds, masks and scans, then deletes the cluster: nothing is
	// promoted ('prenv golden check').
	DryRun bool
	// OnStep is told each finished step and its time.
	OnStep func(step string, took time.Duration)
	Now    func() time.Time
}

func (b *GoldenBuilder) now() time.Time {
	if b.Now != nil {
		return b.Now().UTC()
	}
	return time.Now().UTC()
}

func (b *GoldenBuilder) timeout() time.Duration {
	if b.BuildTimeout > 0 {
		return b.BuildTimeout
	}
	return 6 * time.Hour
}

// Check refuses a builder that cannot work, before any request.
func (b *GoldenBuilder) Check() error {
	var errs []string
	o := b.Cloner.opts()
	if o.Owner == "" {
		errs = append(errs, "owner is empty: golden clusters carry the owner id")
	}
	if !ValidIdentifier(strings.ToLower(b.Production)) {
		errs = append(errs, fmt.Sprintf("golden.source.aurora.cluster %q is not a cluster identifier", b.Production))
	}
	switch b.From {
	case "", FromSnapshot, FromClone:
	default:
		errs = append(errs, fmt.Sprintf("golden.source.aurora.from %q: want snapshot or clone", b.From))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(errs, "; "), ErrInvalid)
	}
	return nil
}

// Build builds, masks, scans and promotes the next generation. A
// finding of the scanner returns a *golden.PIIError; every failure deletes
// what the build made (unless that fails too, when the next build or the
// sweeper deletes it once BuildTimeout has passed) and leaves the current
// generation current. A failure to delete old generations after the
// promotion is reported in Retired, not as an error.
func (b *GoldenBuilder) Build(ctx context.Context) (GoldenGeneration, error) {
	if err := b.Check(); err != nil {
		return GoldenGeneration{}, err
	}
	c := b.Cloner
	// A build that outlives its deadline would be taken for a killed one
	// (its expiry tag) and deleted under it: it stops first.
	ctx, cancel := context.WithTimeout(ctx, b.timeout())
	defer cancel()
	if c.Home != "" {
		// Builds on one machine take turns; builds on two meet RDS's
		// DBClusterAlreadyExistsFault on the generation's name.
		unlock, err := lock.File(ctx, filepath.Join(c.Home, "aurora", "golden.lock"))
		if err != nil {
			return GoldenGeneration{}, err
		}
		defer unlock()
	}
	var steps []golden.Step
	step := func(name string, fn func() error) error {
		t0 := time.Now()
		err := fn()
		steps = append(steps, golden.Step{Name: name, Seconds: float64(time.Since(t0).Milliseconds()) / 1000})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("golden build interrupted during %s: %w; nothing was promoted", name, ctx.Err())
			}
			return fmt.Errorf("golden build %s: %w", name, err)
		}
		if b.OnStep != nil {
			b.OnStep(name, time.Since(t0))
		}
		return nil
	}
	gens, err := c.GoldenGenerations(ctx)
	if err != nil {
		return GoldenGeneration{}, err
	}
	b.discardInterrupted(ctx, gens)
	next, current := 1, 0
	for _, g := range gens {
		next = max(next, g.Number+1)
		if g.Promoted {
			current = g.Number
		}
	}
	kept := "nothing was promoted (there is no golden generation yet)"
	if current > 0 {
		kept = fmt.Sprintf("nothing was promoted: generation %d is still current", current)
	}
	id := c.GoldenID(next)
	g := GoldenGeneration{Number: next, Cluster: id, CreatedAt: b.now()}
	made := false
	ok := false
	defer func() {
		if made && !ok {
			// Bounded and detached: an interrupted build still cleans up.
			// What was promoted after all (the tag request went through
			// but its answer did not) is refused by the proof and stays.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts().WaitTimeout)
			defer cancel()
			if err := b.deleteGeneration(dctx, id, false); err != nil {
				c.log().Warn("the failed golden build was not deleted: the next build or the sweeper deletes it once golden.source.aurora.build_timeout has passed", "cluster", id, "error", err)
			}
		}
	}()
	if err := step("restore", func() error {
		src, err := b.restore(ctx, next, id)
		g.Source = src
		made = err == nil || b.madeAnyway(context.WithoutCancel(ctx), id, next)
		if err != nil {
			return err
		}
		if err := b.createWriter(ctx, next, id); err != nil {
			return err
		}
		_, err = c.waitAvailable(ctx, id, writerID(id))
		return err
	}); err != nil {
		return g, fmt.Errorf("%w; %s", err, kept)
	}
	var pw string
	var cl *types.DBCluster
	if err := step("password", func() error {
		// The restored cluster has production's master password, which
		// prenv does not know: it sets one for this build and keeps it
		// nowhere (every clone gets its own).
		pw = password()
		if _, err := c.API.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(id),
			MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)}); err != nil {
			return c.explain(err, "set the master password of "+id)
		}
		var err error
		cl, err = c.waitAvailable(ctx, id, writerID(id))
		return err
	}); err != nil {
		return g, fmt.Errorf("%w; %s", err, kept)
	}
	db := c.database(env.Key{}, cl)
	db.URL = url(db.User, pw, db.Host, db.Port, db.DBName, c.opts().SSLMode)
	conn, err := b.connect(ctx, db.URL)
	if err != nil {
		return g, fmt.Errorf("golden build connect to %s: %w; %s", id, err, kept)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := step("databases", func() error {
		var err error
		g.Dropped, err = b.dropOtherDatabases(ctx, conn, db.URL, db.DBName)
		return err
	}); err != nil {
		return g, fmt.Errorf("%w; %s", err, kept)
	}
	var masking golden.Masking
	if err := step("mask", func() error {
		var err error
		masking, err = golden.MaskAndScan(ctx, conn, b.Masking, b.AllowPII)
		return err
	}); err != nil {
		return g, fmt.Errorf("%w\n%s", err, kept)
	}
	g.Masking, g.MaskedColumns, g.Scan = &masking, len(masking.Columns), "clean"
	if masking.AllowPII && len(masking.Findings) > 0 {
		g.Scan = "allow-pii"
		c.log().Warn(fmt.Sprintf("%d column(s) look personal and are promoted unmasked (--allow-pii)", len(masking.Findings)), "cluster", id)
	}
	if err := step("check", func() error { return b.check(ctx, conn, kept) }); err != nil {
		return g, err
	}
	if err := step("analyze", func() error {
		// Statistics for every clone, and the rows prenv golden ls shows.
		if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
			return err
		}
		return conn.QueryRow(ctx, `SELECT coalesce((SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'), 0),
			pg_database_size(current_database())`).Scan(&g.Rows, &g.SizeBytes)
	}); err != nil {
		return g, fmt.Errorf("%w; %s", err, kept)
	}
	conn.Close(ctx)
	g.Steps = steps
	if b.DryRun {
		return g, nil
	}
	if err := step("promote", func() error { return b.promote(ctx, cl, g) }); err != nil {
		return g, fmt.Errorf("%w; %s", err, kept)
	}
	ok = true
	g.Steps, g.Promoted, g.Status = steps, true, "available"
	b.retire(ctx, next)
	return g, nil
}

// madeAnyway says whether a restore that returned an error made the
// cluster all the same (RDS took the request but the answer was lost, or
// the context ended after it was sent): it is then this build's to delete.
func (b *GoldenBuilder) madeAnyway(ctx context.Context, id string, n int) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := b.Cloner.cluster(ctx, id)
	if err != nil || cl == nil {
		return false
	}
	g, ok := b.Cloner.goldenOf(cl)
	return ok && g.Number == n && !g.Promoted
}

// restore makes the staging cluster of generation n from production,
// tagged from creation, and returns what it was restored from.
func (b *GoldenBuilder) restore(ctx context.Context, n int, id string) (string, error) {
	c := b.Cloner
	o := c.opts()
	prod := strings.ToLower(b.Production)
	if b.From == FromClone {
		_, err := c.API.RestoreDBClusterToPointInTime(ctx, c.cloneInput(id, prod, b.tags(n, "cluster:"+prod)))
		var nf *types.DBClusterNotFoundFault
		if errors.As(err, &nf) {
			return "", fmt.Errorf("the production cluster %s does not exist in %s (golden.source.aurora.cluster): %w", prod, regionOr(o.Region), dbclone.ErrNoSource)
		}
		if err != nil {
			return "", b.restoreErr(ctx, err, id, "clone "+prod+" as "+id)
		}
		c.log().Info("cloning production copy-on-write for the golden build", "source", prod, "cluster", id)
		return "cluster:" + prod, nil
	}
	snap, err := b.newestSnapshot(ctx, prod)
	if err != nil {
		return "", err
	}
	sid := aws.ToString(snap.DBClusterSnapshotIdentifier)
	in := &rds.RestoreDBClusterFromSnapshotInput{
		DBClusterIdentifier: aws.String(id), SnapshotIdentifier: aws.String(sid),
		Engine: aws.String(Engine), EngineVersion: snap.EngineVersion,
		VpcSecurityGroupIds: o.SecurityGroups, DeletionProtection: aws.Bool(false), Tags: b.tags(n, "snapshot:"+sid),
	}
	if o.ParameterGroup != "" {
		in.DBClusterParameterGroupName = aws.String(o.ParameterGroup)
	}
	if o.SubnetGroup != "" {
		in.DBSubnetGroupName = aws.String(o.SubnetGroup)
	}
	if _, err := b.Snapshots.RestoreDBClusterFromSnapshot(ctx, in); err != nil {
		return "", b.restoreErr(ctx, err, id, "restore snapshot "+sid+" as "+id)
	}
	c.log().Info("restoring production's newest automated snapshot for the golden build", "snapshot", sid, "taken", aws.ToTime(snap.SnapshotCreateTime), "cluster", id)
	return "snapshot:" + sid, nil
}

func (b *GoldenBuilder) restoreErr(ctx context.Context, err error, id, what string) error {
	var exists *types.DBClusterAlreadyExistsFault
	if errors.As(err, &exists) {
		if cl, derr := b.Cloner.cluster(ctx, id); derr == nil && cl != nil {
			if _, ours := b.Cloner.goldenOf(cl); !ours {
				return fmt.Errorf("%s: a cluster named %s exists and is not a golden cluster of owner %s: prenv leaves it alone; rename it, or set database.aurora.prefix so that golden clusters get other names: %w", what, id, b.Cloner.opts().Owner, err)
			}
		}
		return fmt.Errorf("%s: the cluster exists: another golden build took this generation at the same time; let it finish (prenv golden ls): %w", what, err)
	}
	return b.Cloner.explain(err, what)
}

// newestSnapshot is the newest available automated snapshot of cluster
// prod.
func (b *GoldenBuilder) newestSnapshot(ctx context.Context, prod string) (*types.DBClusterSnapshot, error) {
	var newest *types.DBClusterSnapshot
	p := rds.NewDescribeDBClusterSnapshotsPaginator(b.Snapshots, &rds.DescribeDBClusterSnapshotsInput{
		DBClusterIdentifier: aws.String(prod), SnapshotType: aws.String("automated")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.Cloner.explain(err, "list the automated snapshots of "+prod)
		}
		for i := range page.DBClusterSnapshots {
			s := &page.DBClusterSnapshots[i]
			if aws.ToString(s.Status) != "available" {
				continue
			}
			if newest == nil || aws.ToTime(s.SnapshotCreateTime).After(aws.ToTime(newest.SnapshotCreateTime)) {
				newest = s
			}
		}
	}
	if newest == nil {
		return nil, fmt.Errorf("the cluster %s has no available automated snapshot in %s (golden.source.aurora.cluster): check the name, and that its automated backups are on (a backup retention of at least 1 day); or set golden.source.aurora.from: clone to clone it as it is now: %w",
			prod, regionOr(b.Cloner.opts().Region), dbclone.ErrNoSource)
	}
	return newest, nil
}

// tags are a golden cluster's from creation: the owner, the generation
// being built, where from, and when it is taken for dead if unpromoted.
func (b *GoldenBuilder) tags(n int, source string) []types.Tag {
	now := b.now()
	out := []types.Tag{
		{Key: aws.String(env.LabelOwner), Value: aws.String(b.Cloner.opts().Owner)},
		{Key: aws.String(LabelGoldenBuild), Value: aws.String(strconv.Itoa(n))},
		{Key: aws.String(LabelGeneration), Value: aws.String(strconv.Itoa(n))},
		{Key: aws.String(LabelGoldenSource), Value: aws.String(tagValue(source))},
		{Key: aws.String(env.LabelCreatedAt), Value: aws.String(now.Format(time.RFC3339))},
		{Key: aws.String(env.LabelExpiresAt), Value: aws.String(now.Add(b.timeout()).Format(time.RFC3339))},
	}
	return out
}

// tagValue keeps the characters AWS allows in a tag value and its length.
func tagValue(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" _.:/=+-@", r):
			return r
		}
		return '-'
	}, s)
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

func (b *GoldenBuilder) createWriter(ctx context.Context, n int, id string) error {
	c := b.Cloner
	o := c.opts()
	wid := writerID(id)
	_, err := c.API.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String(wid), DBClusterIdentifier: aws.String(id), DBInstanceClass: aws.String(o.InstanceClass),
		Engine: aws.String(Engine), Tags: b.tags(n, ""), PubliclyAccessible: aws.Bool(false),
	})
	if err != nil {
		return c.explain(err, "create the writer "+wid)
	}
	return nil
}

// connect opens the build's connection, retrying while the new password
// takes effect.
func (b *GoldenBuilder) connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	bo := newBackoff(min(b.Cloner.opts().Poll, time.Second))
	for {
		conn, err := pgx.Connect(cctx, dsn)
		if err == nil {
			return conn, nil
		}
		if werr := bo.wait(cctx); werr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: the build connects to the cluster's endpoint to mask it: run it where the security groups let it in (inside the VPC)", err)
		}
	}
}

// dropOtherDatabases drops every database of the restored cluster but
// keep (database.name) and those RDS and PostgreSQL keep for themselves:
// the rules mask database.name only, and environments get the master user,
// who could read any other. A database it cannot drop fails the build.
// postgres and template1 are kept, but must hold no table, view or
// sequence of their own: a build refuses them otherwise.
func (b *GoldenBuilder) dropOtherDatabases(ctx context.Context, conn *pgx.Conn, dsn, keep string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname <> $1 AND datname NOT IN ('template0', 'rdsadmin') ORDER BY 1`, keep)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	var dropped []string
	for _, name := range names {
		if name == "postgres" || name == "template1" {
			n, err := userRelations(ctx, dsnFor(dsn, keep, name))
			if err != nil {
				return dropped, fmt.Errorf("look into database %q of the restored cluster: %w", name, err)
			}
			if n > 0 {
				return dropped, fmt.Errorf("the restored cluster's database %q holds %d tables, views or sequences of its own, which no rule masks and environments could read: move them to database.name (%q) in production, or drop them there", name, n, keep)
			}
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return dropped, fmt.Errorf("the restored cluster holds database %q besides database.name (%q), which no rule masks, and it cannot be dropped (%w): environments could read it; make the master user its owner in production, or drop it there", name, keep, err)
		}
		dropped = append(dropped, name)
	}
	if len(dropped) > 0 {
		b.Cloner.log().Info("dropped the databases besides database.name: no rule masks them", "databases", strings.Join(dropped, ","))
	}
	return dropped, nil
}

// dsnFor is dsn, a URL to database from, made to name database to.
func dsnFor(dsn, from, to string) string {
	return strings.Replace(dsn, "/"+from+"?", "/"+to+"?", 1)
}

// userRelations counts the tables, views and sequences outside the system
// schemas of the database dsn names.
func userRelations(ctx context.Context, dsn string) (int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`).Scan(&n)
	return n, err
}

// check refuses a generation with nothing to clone (unless AllowEmpty).
func (b *GoldenBuilder) check(ctx context.Context, conn *pgx.Conn, kept string) error {
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`).Scan(&tables); err != nil {
		return fmt.Errorf("count tables: %w", err)
	}
	if tables == 0 && !b.AllowEmpty {
		return fmt.Errorf("%w: the restored cluster has no tables in database %q (database.name): every environment would get an empty database. Check golden.source.aurora.cluster and database.name; to promote it on purpose, add --allow-empty; %s", golden.ErrSource, b.Cloner.opts().DBName, kept)
	}
	return nil
}

// promote tags the cluster as generation g: from then on new environments
// clone it.
func (b *GoldenBuilder) promote(ctx context.Context, cl *types.DBCluster, g GoldenGeneration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	add := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	ts := []types.Tag{
		// Repeated so that a policy allowing AddTagsToResource only with
		// the owner tag in the request (docs/aurora.md) lets it through.
		add(env.LabelOwner, b.Cloner.opts().Owner),
		add(LabelGoldenMasked, strconv.Itoa(g.MaskedColumns)),
		add(LabelGoldenScan, g.Scan),
		add(LabelGoldenRows, strconv.FormatInt(g.Rows, 10)),
		add(LabelGoldenSize, strconv.FormatInt(g.SizeBytes, 10)),
		add(LabelGoldenSteps, tagValue(formatSteps(g.Steps))),
		// Last: the tag that makes it current.
		add(LabelGolden, strconv.Itoa(g.Number)),
	}
	_, err := b.Cloner.API.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: cl.DBClusterArn, Tags: ts})
	if err != nil {
		return b.Cloner.explain(err, "tag "+g.Cluster+" as golden generation "+strconv.Itoa(g.Number))
	}
	return nil
}

// formatSteps writes steps as "restore:412.1 mask:30.2", the characters a
// tag value allows.
func formatSteps(steps []golden.Step) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%s:%.1f", s.Name, s.Seconds)
	}
	return strings.Join(parts, " ")
}

func parseSteps(v string) []golden.Step {
	var out []golden.Step
	for _, f := range strings.Fields(v) {
		name, secs, ok := strings.Cut(f, ":")
		s, err := strconv.ParseFloat(secs, 64)
		if ok && err == nil {
			out = append(out, golden.Step{Name: name, Seconds: s})
		}
	}
	return out
}

// discardInterrupted deletes the unpromoted golden clusters whose build
// timed out: what a build killed outright left. A build still within its
// time is left to finish.
func (b *GoldenBuilder) discardInterrupted(ctx context.Context, gens []GoldenGeneration) {
	now := b.now()
	for _, g := range gens {
		if g.Promoted || g.ExpiresAt.IsZero() || now.Before(g.ExpiresAt) || g.Status == "deleting" {
			continue
		}
		if err := b.deleteGeneration(ctx, g.Cluster, false); err != nil {
			b.Cloner.log().Warn("an interrupted golden build was not deleted", "cluster", g.Cluster, "error", err)
			continue
		}
		b.Cloner.log().Info("deleted an interrupted golden build", "cluster", g.Cluster, "generation", g.Number)
	}
}

// retire deletes the promoted generations older than the newest Keep.
// Deleting a clone's source does not affect the clone (Aurora's
// copy-on-write protocol keeps the pages a clone still uses:
// AuroraUserGuide, "Cloning a volume for an Amazon Aurora DB cluster"),
// so environments made from a retired generation keep working; a
// generation that a clone is being made from right now is left for the
// next build.
func (b *GoldenBuilder) retire(ctx context.Context, current int) {
	c := b.Cloner
	keep := b.Keep
	if keep < 1 {
		keep = 2
	}
	gens, err := c.GoldenGenerations(ctx)
	if err != nil {
		c.log().Warn("old golden generations were not retired", "error", err)
		return
	}
	var promoted []GoldenGeneration
	for _, g := range gens {
		if g.Promoted && g.Number <= current {
			promoted = append(promoted, g)
		}
	}
	if len(promoted) <= keep {
		return
	}
	busy, err := c.cloningFrom(ctx)
	if err != nil {
		c.log().Warn("old golden generations were not retired", "error", err)
		return
	}
	for _, g := range promoted[:len(promoted)-keep] {
		if g.Status == "deleting" {
			continue
		}
		if busy[g.Number] {
			c.log().Info("an old golden generation is kept while a clone is being made from it", "cluster", g.Cluster, "generation", g.Number)
			continue
		}
		if err := b.deleteGeneration(ctx, g.Cluster, true); err != nil {
			c.log().Warn("an old golden generation was not retired", "cluster", g.Cluster, "error", err)
			continue
		}
		c.log().Info("retired an old golden generation (golden.keep)", "cluster", g.Cluster, "generation", g.Number)
	}
}

// cloningFrom is the generations environments' clusters are being
// created from now.
func (c *Cloner) cloningFrom(ctx context.Context) (map[int]bool, error) {
	out := map[int]bool{}
	p := rds.NewDescribeDBClustersPaginator(c.API, &rds.DescribeDBClustersInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, c.explain(err, "list clusters")
		}
		for _, cl := range page.DBClusters {
			m := tagMap(cl.TagList)
			if _, golden := m[LabelGoldenBuild]; golden || m[env.LabelOwner] != c.opts().Owner {
				continue
			}
			if s := aws.ToString(cl.Status); s == "creating" {
				if n, err := strconv.Atoi(m[LabelGeneration]); err == nil {
					out[n] = true
				}
			}
		}
	}
	return out, nil
}

// deleteGeneration deletes a golden cluster and its writer, without final
// snapshots, proving on what it reads just before each delete that it is a
// golden cluster of this owner with the generation's name, promoted or not
// as the caller expects: an unpromoted build is never deleted once it has
// been promoted since it was listed, nor a promoted one as a failed build.
func (b *GoldenBuilder) deleteGeneration(ctx context.Context, id string, promoted bool) error {
	c := b.Cloner
	owner := c.opts().Owner
	may := func(kind, rid string, ts []types.Tag) error {
		m := tagMap(ts)
		n, _ := strconv.Atoi(m[LabelGoldenBuild])
		if m[env.LabelOwner] != owner || n < 1 || id != c.GoldenID(n) || strings.EqualFold(id, b.Production) {
			return fmt.Errorf("%s %s is not a golden cluster of owner %s (tags %s=%q, %s=%q): left untouched: %w", kind, rid, owner, env.LabelOwner, m[env.LabelOwner], LabelGoldenBuild, m[LabelGoldenBuild], env.ErrNotOurs)
		}
		if kind == "cluster" && (m[LabelGolden] != "") != promoted {
			if promoted {
				return fmt.Errorf("cluster %s is no longer a promoted golden generation: left untouched: %w", rid, env.ErrNotOurs)
			}
			return fmt.Errorf("cluster %s was promoted as golden generation %s: left untouched: %w", rid, m[LabelGolden], env.ErrNotOurs)
		}
		return nil
	}
	// The cluster's proof first: a promoted cluster's writer is never
	// deleted as a failed build's.
	cl, err := c.cluster(ctx, id)
	if err != nil {
		return err
	}
	if cl != nil {
		if err := may("cluster", id, cl.TagList); err != nil {
			return err
		}
	}
	if err := c.deleteInstance(ctx, writerID(id), "writer", may, "build again"); err != nil {
		return err
	}
	return c.deleteCluster(ctx, id, may, "build again")
}
