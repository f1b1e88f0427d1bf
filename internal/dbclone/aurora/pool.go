package aurora

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lock"
)

// The warm pool: clusters of the current golden generation, cloned and
// with their writer available ahead of time, each with its own master
// password; a new environment claims one (a few tags, no wait on RDS)
// instead of cloning.
//
// A member is a cluster named <prefix>pool-<random> with its writer
// <id>-writer, tagged with the owner, LabelPool and the generation. Its
// LabelPool tag says where it is: filling (cloned, its writer on the way,
// or its password being set), ready, or claimed (then it carries an
// environment's tags like any clone, and is that environment's until it
// is deleted with it). Unclaimed members carry an expiry (created + max
// age): past it, with no pool keeper to replace them, the sweeper removes
// them.
const (
	LabelPool    = "prenv.dev/pool"
	PoolFilling  = "filling"
	PoolReady    = "ready"
	PoolClaimed  = "claimed"
	PoolDraining = "draining" // being deleted: its writer first, then the cluster
)

// PoolOptions size the warm pool.
type PoolOptions struct {
	Size          int           // members kept ready; 0: no pool
	MaxAge        time.Duration // an unclaimed member older than this is replaced (default 24h)
	InstanceClass string        // of the members' writers; default the clones'
}

// Member is a pool member as RDS shows it.
type Member struct {
	Cluster, Writer string
	Generation      int
	CreatedAt       time.Time
	Pool            string // filling, ready, claimed
	Status          string // the cluster's status, and its writer's when not the same: "available", "creating/creating"
	Key             env.Key
	Claimed         bool
	// Draining: being deleted (an old generation, too old, or failed).
	Draining bool
}

// Available says whether the cluster and its writer are both available.
func (m Member) Available() bool { return m.Status == "available" }

func (c *Cloner) poolID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return c.opts().Prefix + "pool-" + hex.EncodeToString(b)
}

func (o PoolOptions) maxAge() time.Duration {
	if o.MaxAge <= 0 {
		return 24 * time.Hour
	}
	return o.MaxAge
}

// Members lists the pool's members, claimed ones included, with two
// listings (clusters and instances, a page per hundred).
func (c *Cloner) Members(ctx context.Context) ([]Member, error) {
	clusters, _, instances, err := c.listAll(ctx)
	if err != nil {
		return nil, err
	}
	return c.members(clusters, instances), nil
}

// listClusters and listInstances are every cluster and instance RDS
// shows, a page per hundred (the pool's and the sweeper's listings).
func (c *Cloner) listClusters(ctx context.Context) ([]types.DBCluster, error) {
	var out []types.DBCluster
	p := rds.NewDescribeDBClustersPaginator(c.API, &rds.DescribeDBClustersInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, c.explain(err, "list clusters")
		}
		out = append(out, page.DBClusters...)
	}
	return out, nil
}

func (c *Cloner) listInstances(ctx context.Context) ([]types.DBInstance, error) {
	var out []types.DBInstance
	p := rds.NewDescribeDBInstancesPaginator(c.API, &rds.DescribeDBInstancesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, c.explain(err, "list instances")
		}
		out = append(out, page.DBInstances...)
	}
	return out, nil
}

// listAll is every cluster, by id too, and every instance by id.
func (c *Cloner) listAll(ctx context.Context) ([]types.DBCluster, map[string]types.DBCluster, map[string]types.DBInstance, error) {
	clusters, err := c.listClusters(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	insts, err := c.listInstances(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	byID := make(map[string]types.DBCluster, len(clusters))
	for _, cl := range clusters {
		byID[aws.ToString(cl.DBClusterIdentifier)] = cl
	}
	instances := make(map[string]types.DBInstance, len(insts))
	for _, inst := range insts {
		instances[aws.ToString(inst.DBInstanceIdentifier)] = inst
	}
	return clusters, byID, instances, nil
}

func (c *Cloner) members(clusters []types.DBCluster, instances map[string]types.DBInstance) []Member {
	o := c.opts()
	var out []Member
	for _, cl := range clusters {
		id := aws.ToString(cl.DBClusterIdentifier)
		m := tagMap(cl.TagList)
		// Members are known by their tags, whatever prefix they were
		// named with.
		if m[env.LabelOwner] != o.Owner || m[LabelPool] == "" {
			continue
		}
		mem := Member{Cluster: id, Writer: writerID(id), Pool: m[LabelPool], CreatedAt: aws.ToTime(cl.ClusterCreateTime), Generation: 1}
		if n, err := strconv.Atoi(m[LabelGeneration]); err == nil && n > 0 {
			mem.Generation = n
		}
		if k, err := parseKeyTag(m[env.LabelKey]); err == nil && mem.Pool == PoolClaimed {
			mem.Key, mem.Claimed = k, true
		}
		cs := aws.ToString(cl.Status)
		is := "missing"
		if inst, ok := instances[mem.Writer]; ok {
			is = aws.ToString(inst.DBInstanceStatus)
		}
		mem.Status = cs
		if is != cs {
			mem.Status = cs + "/" + is
		}
		mem.Draining = mem.Pool == PoolDraining || cs == "deleting" || is == "deleting"
		out = append(out, mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// FillReport is what one round of Fill did.
type FillReport struct {
	Generation int
	Ready      int      // members ready to claim after the round
	Filling    int      // members on their way
	Created    []string // members started this round
	Readied    []string // members given their password and made ready
	Drained    []string // members being deleted: why, by id
	// Problems are what held the round back (RDS quotas, throttling);
	// the next round tries again.
	Problems []string
}

// Fill does one round of keeping the pool: members of an older generation,
// older than max age, or that RDS cannot finish are deleted (a writer
// first, its cluster the round after); members whose cluster and writer are
// available get their own master password and become ready; new members
// are started until Size are ready or on their way. It never waits on RDS:
// the next round carries on. A round that RDS refuses (a quota, the
// request rate) says so in Problems and leaves the rest for the next.
func (c *Cloner) Fill(ctx context.Context) (FillReport, error) {
	o := c.opts()
	var rep FillReport
	if c.NoClaims != "" {
		return rep, fmt.Errorf("the warm pool is not kept here: %s", c.NoClaims)
	}
	unlock, err := c.poolLock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()
	src, err := c.source(ctx)
	if err != nil {
		return rep, err
	}
	rep.Generation = generationOf(src)
	clusters, byID, instances, err := c.listAll(ctx)
	if err != nil {
		return rep, err
	}
	now := time.Now()
	live := 0
	for _, m := range c.members(clusters, instances) {
		if m.Claimed {
			continue
		}
		cs, is := splitStatus(m.Status)
		why := ""
		switch {
		case m.Draining:
			why = "being deleted"
		case m.Generation != rep.Generation:
			why = fmt.Sprintf("generation %d, not the current %d", m.Generation, rep.Generation)
		case now.Sub(m.CreatedAt) > o.Pool.maxAge():
			why = fmt.Sprintf("older than database.aurora.pool.max_age (%s)", o.Pool.maxAge())
		case bad(cs) || bad(is):
			why = fmt.Sprintf("RDS cannot finish it (cluster %s, writer %s)", cs, is)
		case m.Pool == PoolFilling && now.Sub(m.CreatedAt) > o.WaitTimeout:
			why = fmt.Sprintf("not available after database.aurora.wait_timeout (%s): cluster %s, writer %s", o.WaitTimeout, cs, is)
		case live >= o.Pool.Size:
			why = "more members than database.aurora.pool.size"
		}
		if why != "" {
			if err := c.drain(ctx, m, byID[m.Cluster], instances); err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("delete %s: %v", m.Cluster, err))
			} else {
				rep.Drained = append(rep.Drained, m.Cluster+": "+why)
			}
			continue
		}
		live++
		switch {
		case m.Pool == PoolReady && m.Available():
			rep.Ready++
		case m.Pool == PoolFilling && m.Available() && c.credentialed(byID[m.Cluster]):
			// Its own credentials were set on an earlier round, and RDS
			// has applied them.
			if err := c.tag(ctx, aws.ToString(byID[m.Cluster].DBClusterArn), map[string]string{LabelPool: PoolReady}); err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("tag %s ready: %v", m.Cluster, c.explain(err, "tag")))
				rep.Filling++
			} else {
				c.log().Info("warm pool: a member is ready", "cluster", m.Cluster)
				rep.Readied = append(rep.Readied, m.Cluster)
				rep.Ready++
			}
		case m.Pool == PoolFilling && m.Available():
			if err := c.credentials(ctx, byID[m.Cluster]); err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("give %s its own credentials: %v", m.Cluster, err))
			}
			rep.Filling++ // ready once RDS has applied them, a later round
		case is == "missing":
			// Its writer was never made (a round cut short, the instance
			// quota): asked for again.
			if err := c.createMemberWriter(ctx, m.Cluster, m.Generation); err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("create the writer of %s: %v", m.Cluster, err))
			}
			rep.Filling++
		default:
			rep.Filling++
		}
	}
	for live < o.Pool.Size {
		id, err := c.startMember(ctx, src, rep.Generation)
		if id != "" {
			live++
			rep.Filling++
			rep.Created = append(rep.Created, id)
		}
		if err != nil {
			rep.Problems = append(rep.Problems, err.Error())
			break // a quota or the request rate: the next round tries again
		}
	}
	return rep, nil
}

func splitStatus(s string) (cluster, writer string) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, s
}

func generationOf(cl *types.DBCluster) int {
	if n, err := strconv.Atoi(tagMap(cl.TagList)[LabelGeneration]); err == nil && n > 0 {
		return n
	}
	return 1
}

// poolTags are an unclaimed member's: the owner, the pool, the generation,
// and an expiry past which, unreplaced, the sweeper removes it.
func (c *Cloner) poolTags(gen int, now time.Time) []types.Tag {
	o := c.opts()
	t := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	return []types.Tag{
		t(env.LabelOwner, o.Owner), t(LabelPool, PoolFilling), t(LabelGeneration, strconv.Itoa(gen)),
		t(env.LabelCreatedAt, now.UTC().Format(time.RFC3339)),
		t(env.LabelExpiresAt, now.Add(o.Pool.maxAge()+o.WaitTimeout).UTC().Format(time.RFC3339)),
		t(env.LabelEphemeral, "true"),
	}
}

// startMember clones the source as a new member and asks for its writer;
// the id is "" when nothing was made.
func (c *Cloner) startMember(ctx context.Context, src *types.DBCluster, gen int) (string, error) {
	id := c.poolID()
	from := aws.ToString(src.DBClusterIdentifier)
	in := c.cloneInput(id, from, c.poolTags(gen, time.Now()))
	if _, err := c.API.RestoreDBClusterToPointInTime(ctx, in); err != nil {
		return "", c.explain(err, "clone "+from+" as the pool member "+id)
	}
	c.log().Info("warm pool: cloning a member", "cluster", id, "generation", gen)
	if err := c.createMemberWriter(ctx, id, gen); err != nil {
		return id, err // the next round asks again
	}
	return id, nil
}

func (c *Cloner) createMemberWriter(ctx context.Context, id string, gen int) error {
	o := c.opts()
	class := o.Pool.InstanceClass
	if class == "" {
		class = o.InstanceClass
	}
	_, err := c.API.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String(writerID(id)), DBClusterIdentifier: aws.String(id), DBInstanceClass: aws.String(class),
		Engine: aws.String(Engine), Tags: c.poolTags(gen, time.Now()), PubliclyAccessible: aws.Bool(false),
	})
	var exists *types.DBInstanceAlreadyExistsFault
	if err != nil && !errors.As(err, &exists) {
		return c.explain(err, "create the writer of the pool member "+id)
	}
	return nil
}

// credentials gives a member whose cluster and writer are available its
// own master password (kept where prenv keeps clone passwords, its
// fingerprint on the cluster), or lets RDS manage it. The member becomes
// ready on a later round, once RDS has applied it (credentialed).
func (c *Cloner) credentials(ctx context.Context, cl types.DBCluster) error {
	id := aws.ToString(cl.DBClusterIdentifier)
	if c.opts().Credentials == CredentialsManaged {
		if _, err := c.API.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(id),
			ManageMasterUserPassword: aws.Bool(true), ApplyImmediately: aws.Bool(true)}); err != nil {
			return c.explain(err, "let RDS manage the master password of "+id)
		}
		return nil
	}
	_, err := c.setPassword(ctx, id, &cl)
	return err
}

// credentialed says whether cl has its own credentials in the configured
// mode, applied: RDS manages its password, or its password's fingerprint
// matches the one kept here, with no change pending.
func (c *Cloner) credentialed(cl types.DBCluster) bool {
	if p := cl.PendingModifiedValues; p != nil && p.MasterUserPassword != nil {
		return false
	}
	if c.opts().Credentials == CredentialsManaged {
		return cl.MasterUserSecret != nil
	}
	id := aws.ToString(cl.DBClusterIdentifier)
	pw := c.storedPassword(id)
	return cl.MasterUserSecret == nil && pw != "" && tagMap(cl.TagList)[LabelPassword] == fingerprint(id, pw)
}

// drain deletes an unclaimed member without waiting: its writer first,
// its cluster once the writer is gone (a later round).
func (c *Cloner) drain(ctx context.Context, m Member, cl types.DBCluster, instances map[string]types.DBInstance) error {
	may := func(kind, id string, ts []types.Tag) error {
		t := tagMap(ts)
		if t[env.LabelOwner] != c.opts().Owner || t[LabelPool] == "" || t[LabelPool] == PoolClaimed {
			return fmt.Errorf("%s %s is no unclaimed member of this pool: left untouched: %w", kind, id, dbclone.ErrNotOurs)
		}
		return nil
	}
	if err := may("cluster", m.Cluster, cl.TagList); err != nil {
		return err
	}
	if m.Pool != PoolDraining {
		// Said first, so that a cluster whose writer is gone is never
		// taken for one whose writer is yet to be made.
		if err := c.tag(ctx, aws.ToString(cl.DBClusterArn), map[string]string{LabelPool: PoolDraining}); err != nil {
			return c.explain(err, "tag "+m.Cluster+" draining")
		}
	}
	if inst, ok := instances[m.Writer]; ok {
		if aws.ToString(inst.DBInstanceStatus) == "deleting" {
			return nil
		}
		if err := may("instance", m.Writer, inst.TagList); err != nil {
			return err
		}
		_, err := c.API.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(m.Writer),
			SkipFinalSnapshot: aws.Bool(true), DeleteAutomatedBackups: aws.Bool(true)})
		var nf *types.DBInstanceNotFoundFault
		var state *types.InvalidDBInstanceStateFault
		if err != nil && !errors.As(err, &nf) && !errors.As(err, &state) {
			return c.explain(err, "delete the writer "+m.Writer)
		}
		return nil
	}
	if aws.ToString(cl.Status) == "deleting" {
		if c.Home != "" {
			os.Remove(c.passwordFile(m.Cluster)) // a round killed after asking leaves it
		}
		return nil
	}
	_, err := c.API.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String(m.Cluster), SkipFinalSnapshot: aws.Bool(true)})
	var nf *types.DBClusterNotFoundFault
	var state *types.InvalidDBClusterStateFault
	if err != nil && !errors.As(err, &nf) && !errors.As(err, &state) {
		return c.explain(err, "delete the cluster "+m.Cluster)
	}
	if c.Home != "" {
		os.Remove(c.passwordFile(m.Cluster))
	}
	return nil
}

// claims says whether Clone claims from the warm pool: it is on, and its
// claims take turns (NoClaims says why not).
func (c *Cloner) claims() bool { return c.opts().Pool.Size > 0 && c.NoClaims == "" }

// poolLock serializes claims and fills among the processes that share it:
// PoolLock when set (the store's lock, shared by replicas), else a file
// under Home.
func (c *Cloner) poolLock(ctx context.Context) (func(), error) {
	if c.PoolLock != nil {
		return c.PoolLock(ctx)
	}
	if c.Home == "" {
		return func() {}, nil
	}
	return lock.File(ctx, filepath.Join(c.Home, "aurora", "pool.lock"))
}

// claim takes a ready member of the current generation for req's
// environment: its tags become the environment's (the pool tag says
// claimed), and it is re-read to make sure the claim is this one's. It
// returns nil when no member is ready; fresh is false when the member was
// the environment's already (claimed by an earlier run).
func (c *Cloner) claim(ctx context.Context, req dbclone.Request) (cl *types.DBCluster, fresh bool, err error) {
	o := c.opts()
	// A keeper's round holds the lock through its requests: a claim
	// waits a little, then clones instead of waiting on it.
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	unlock, err := c.poolLock(lctx)
	cancel()
	if err != nil {
		return nil, false, fmt.Errorf("the warm pool is busy (its keeper's round, or other claims): %w", err)
	}
	defer unlock()
	src, err := c.source(ctx)
	if err != nil {
		return nil, false, err
	}
	gen := generationOf(src)
	clusters, byID, instances, err := c.listAll(ctx)
	if err != nil {
		return nil, false, err
	}
	ms := c.members(clusters, instances)
	for _, m := range ms {
		if !m.Claimed && m.Pool == PoolReady && tagMap(instances[m.Writer].TagList)[env.LabelKey] == keyTag(req.Key) {
			// A claim of this environment's cut after the writer's tags:
			// finished below, this member first.
			ms = append([]Member{m}, ms...)
			break
		}
	}
	for _, m := range ms {
		if m.Claimed && m.Key == req.Key && !m.Draining {
			// Claimed by an earlier run (on another machine): its own.
			cl := byID[m.Cluster]
			c.remember(req.Key, m.Cluster)
			return &cl, false, nil
		}
	}
	for _, m := range ms {
		if m.Claimed || m.Draining || m.Pool != PoolReady || !m.Available() || m.Generation != gen || time.Since(m.CreatedAt) > o.Pool.maxAge() {
			continue
		}
		cl := byID[m.Cluster]
		inst := instances[m.Writer]
		ts := tags(o.Owner, req)
		ts = append(ts, types.Tag{Key: aws.String(LabelPool), Value: aws.String(PoolClaimed)})
		// The writer first, the cluster last: the cluster's tags are the
		// claim, and a claim cut between the two leaves a ready member
		// whose writer names the environment, which the next claim of
		// the same environment finishes (claim puts it first). Not cut by the
		// run's cancellation: two requests.
		tagCtx := context.WithoutCancel(ctx)
		for _, arn := range []string{aws.ToString(inst.DBInstanceArn), aws.ToString(cl.DBClusterArn)} {
			if _, err := c.API.AddTagsToResource(tagCtx, &rds.AddTagsToResourceInput{ResourceName: aws.String(arn), Tags: ts}); err != nil {
				return nil, false, fmt.Errorf("%w: %w", errClaimCut, c.explain(err, "claim the pool member "+m.Cluster))
			}
		}
		got, err := c.cluster(tagCtx, m.Cluster)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", errClaimCut, err)
		}
		if got == nil || tagMap(got.TagList)[env.LabelKey] != keyTag(req.Key) {
			return nil, false, fmt.Errorf("%w: the pool member %s was claimed by another environment at the same time (claims are not taking turns: see database.aurora.pool in docs/aurora.md)", errClaimCut, m.Cluster)
		}
		c.remember(req.Key, m.Cluster)
		c.log().Info("warm pool: claimed a ready member", "cluster", m.Cluster, "env", req.Key.Name(), "generation", gen)
		if c.Claimed != nil {
			c.Claimed()
		}
		return got, true, nil
	}
	return nil, false, nil
}

// errClaimCut is a claim that failed after its first tag: the up fails
// (and the next one adopts or finishes the claim) rather than clone a
// second database for the environment.
var errClaimCut = errors.New("the claim of a warm pool member was cut short: run up again")

// claimFile keeps which pool member k's environment claimed, so that
// what follows (get, renew, record, down) finds it with one request.
func (c *Cloner) claimFile(k env.Key) string {
	return filepath.Join(c.Home, "aurora", "claims", c.ClusterID(k))
}

func (c *Cloner) remember(k env.Key, id string) {
	if c.Home == "" {
		return
	}
	f := c.claimFile(k)
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err == nil {
		os.WriteFile(f, []byte(id), 0o600)
	}
}

// clusterOf finds k's cluster: ClusterID(k), or the pool member k claimed
// (kept on this machine, else, unless noList, found among the clusters by
// its tags: whatever the pool's size now, and on any machine). It returns
// the id and the cluster, nil when there is none.
func (c *Cloner) clusterOf(ctx context.Context, k env.Key, noList ...bool) (string, *types.DBCluster, error) {
	id := c.ClusterID(k)
	cl, err := c.cluster(ctx, id)
	if err != nil || cl != nil {
		return id, cl, err
	}
	kept := ""
	if c.Home != "" {
		if b, err := os.ReadFile(c.claimFile(k)); err == nil {
			kept = strings.TrimSpace(string(b))
		}
	}
	if kept != "" && kept != id {
		got, err := c.cluster(ctx, kept)
		if err != nil {
			return id, nil, err
		}
		if got != nil && tagMap(got.TagList)[env.LabelKey] == keyTag(k) {
			return kept, got, nil
		}
	}
	if len(noList) > 0 && noList[0] {
		return id, nil, nil
	}
	p := rds.NewDescribeDBClustersPaginator(c.API, &rds.DescribeDBClustersInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return id, nil, c.explain(err, "list clusters")
		}
		for i := range page.DBClusters {
			got := &page.DBClusters[i]
			m := tagMap(got.TagList)
			if gid := aws.ToString(got.DBClusterIdentifier); m[LabelPool] == PoolClaimed &&
				m[env.LabelOwner] == c.opts().Owner && m[env.LabelKey] == keyTag(k) {
				c.remember(k, gid)
				return gid, got, nil
			}
		}
	}
	return id, nil, nil
}
