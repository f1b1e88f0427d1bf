package aurora

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
)

var (
	_ env.Inventory = (*Cloner)(nil)
	_ env.Renewer   = (*Cloner)(nil)
)

// Kinds of what the cloner lists for a sweep.
const (
	KindCluster  = "cluster"
	KindInstance = "instance"
)

// Resources implements env.Inventory: every cluster and instance of the
// account, from one paginated DescribeDBInstances and one paginated
// DescribeDBClusters, whatever their number. The owner tag, not the
// identifier prefix, says what is ours: a cluster made under an earlier
// prefix is still ours, and another installation's, whatever its prefix,
// carries another owner id and is foreign. The golden source is never
// selected as legacy.
func (c *Cloner) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	// Instances first: an instance listed then has its cluster already
	// made, so a cluster and writer created between the two lists never
	// look like a writer without a cluster.
	instances, err := c.listInstances(ctx)
	if err != nil {
		return nil, err
	}
	clusters, err := c.listClusters(ctx)
	if err != nil {
		return nil, err
	}

	byID := make(map[string]*types.DBCluster, len(clusters))
	for i := range clusters {
		byID[aws.ToString(clusters[i].DBClusterIdentifier)] = &clusters[i]
	}
	members := map[string][]string{}
	protectedMember := map[string]string{}
	for _, inst := range instances {
		cid, id := aws.ToString(inst.DBClusterIdentifier), aws.ToString(inst.DBInstanceIdentifier)
		members[cid] = append(members[cid], id)
		if aws.ToBool(inst.DeletionProtection) && protectedMember[cid] == "" {
			protectedMember[cid] = id
		}
	}
	source := c.opts().Source
	// Golden clusters (golden.source.aurora) are the golden source, not
	// environments': promoted ones and builds within their time are not
	// listed; one whose build timed out unpromoted was left by a build
	// killed outright, and is half-made.
	goldenDead := map[string]bool{}
	goldenLive := map[string]bool{} // and live pool members
	poolDead := map[string]bool{}
	now := q.Now
	if now.IsZero() {
		now = time.Now()
	}
	for i := range clusters {
		if g, ok := c.goldenOf(&clusters[i]); ok {
			if !g.Promoted && !g.ExpiresAt.IsZero() && now.After(g.ExpiresAt) {
				goldenDead[g.Cluster] = true
			} else {
				goldenLive[g.Cluster] = true
			}
		}
	}

	// Unclaimed members of the warm pool are its keeper's: not listed
	// while within their expiry (the keeper replaces them before it);
	// past it, no keeper is replacing them, and they are leftovers.
	for i := range clusters {
		id := aws.ToString(clusters[i].DBClusterIdentifier)
		m := tagMap(clusters[i].TagList)
		if m[env.LabelOwner] != q.Owner || m[LabelPool] == "" || m[LabelPool] == PoolClaimed {
			continue
		}
		if exp, err := time.Parse(time.RFC3339, m[env.LabelExpiresAt]); err == nil && now.After(exp) {
			poolDead[id] = true
		} else {
			goldenLive[id] = true
		}
	}

	out := make([]env.Resource, 0, len(clusters)+len(instances))
	for _, cl := range clusters {
		id := aws.ToString(cl.DBClusterIdentifier)
		if goldenLive[id] {
			continue
		}
		if poolDead[id] {
			out = append(out, poolLeftover(KindCluster, id, cl.TagList, aws.ToTime(cl.ClusterCreateTime)))
			continue
		}
		if goldenDead[id] {
			out = append(out, c.goldenLeftover(KindCluster, id, cl.TagList, aws.ToTime(cl.ClusterCreateTime)))
			continue
		}
		r := c.resource(q, KindCluster, id, cl.TagList, aws.ToTime(cl.ClusterCreateTime), id == source)
		r.Address = address(&cl)
		switch {
		case aws.ToBool(cl.DeletionProtection):
			r.Protected = fmt.Sprintf("deletion protection is on: prenv never turns it off; if it should go, run aws rds modify-db-cluster --db-cluster-identifier %s --no-deletion-protection --apply-immediately", id)
		case protectedMember[id] != "":
			r.Protected = fmt.Sprintf("its instance %s has deletion protection on: prenv never turns it off; if the cluster should go, run aws rds modify-db-instance --db-instance-identifier %s --no-deletion-protection --apply-immediately", protectedMember[id], protectedMember[id])
		}
		// A cluster lists its members as RDS saw them when the cluster
		// was read; the instance list may have seen one made since.
		if r.Owner() == q.Owner && aws.ToString(cl.Status) == "available" && len(cl.DBClusterMembers) == 0 && len(members[id]) == 0 {
			r.HalfMade = "a cluster with no writer: its up was interrupted before the writer was created"
		}
		out = append(out, r)
	}
	for _, inst := range instances {
		id, cid := aws.ToString(inst.DBInstanceIdentifier), aws.ToString(inst.DBClusterIdentifier)
		if goldenLive[cid] {
			continue
		}
		if poolDead[cid] {
			out = append(out, poolLeftover(KindInstance, id, inst.TagList, aws.ToTime(inst.InstanceCreateTime)))
			continue
		}
		if goldenDead[cid] {
			out = append(out, c.goldenLeftover(KindInstance, id, inst.TagList, aws.ToTime(inst.InstanceCreateTime)))
			continue
		}
		r := c.resource(q, KindInstance, id, inst.TagList, aws.ToTime(inst.InstanceCreateTime), cid != "" && cid == source)
		cl := byID[cid]
		switch {
		case aws.ToBool(inst.DeletionProtection):
			r.Protected = fmt.Sprintf("deletion protection is on: prenv never turns it off; if it should go, run aws rds modify-db-instance --db-instance-identifier %s --no-deletion-protection --apply-immediately", id)
		case cl != nil && aws.ToBool(cl.DeletionProtection):
			r.Protected = fmt.Sprintf("its cluster %s has deletion protection on: prenv never turns it off, nor deletes its instances; if it should go, run aws rds modify-db-cluster --db-cluster-identifier %s --no-deletion-protection --apply-immediately", cid, cid)
		}
		if r.Owner() == q.Owner {
			switch {
			case cid == "":
				r.HalfMade = "an instance in no cluster: prenv makes only writers of its clusters"
			case cl == nil:
				r.HalfMade = fmt.Sprintf("a writer whose cluster %s is gone", cid)
			case aws.ToString(cl.Status) == "deleting":
				r.HalfMade = fmt.Sprintf("a writer whose cluster %s is being deleted", cid)
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// resource is a cluster or instance as the sweeper sees it: ours (owner
// tag equal to q.Owner, with its key and times read, or Problem saying why
// they cannot be), legacy (no owner tag at all and every tag of
// q.Legacy.Tags), or foreign (anything else, including what carries
// another installation's owner id). Labels carry the key as env.Key.String
// spells it, as every provider's do; the tag spells it repo:N.
func (c *Cloner) resource(q env.Query, kind, id string, ts []types.Tag, created time.Time, source bool) env.Resource {
	r := env.Resource{Provider: "aurora", Kind: kind, ID: id, Labels: tagMap(ts), CreatedAt: created, Shared: true}
	owner, tagged := r.Labels[env.LabelOwner]
	switch {
	case q.Owner != "" && tagged && owner == q.Owner:
		var problems []string
		if v, ok := r.Labels[env.LabelKey]; !ok {
			problems = append(problems, "no "+env.LabelKey+" tag")
		} else if k, err := parseKeyTag(v); err != nil {
			problems = append(problems, fmt.Sprintf("its %s tag %q is not an environment key (owner/name:N)", env.LabelKey, v))
		} else {
			r.Key = k
			r.Labels[env.LabelKey] = k.String()
		}
		for _, t := range []string{env.LabelCreatedAt, env.LabelExpiresAt} {
			if v, ok := r.Labels[t]; !ok {
				problems = append(problems, "no "+t+" tag")
			} else if _, err := time.Parse(time.RFC3339, v); err != nil {
				problems = append(problems, fmt.Sprintf("its %s tag %q is not an RFC 3339 time", t, v))
			}
		}
		if len(problems) > 0 {
			r.Problem = fmt.Sprintf("it carries prenv's owner tag but %s: prenv cannot tell whose it is or how old, so it keeps it; fix the tags (aws rds add-tags-to-resource) or remove it yourself", strings.Join(problems, ", "))
		}
	case !tagged && !source && legacyMatch(q.Legacy, r.Labels) == nil:
		r.Legacy = true
	}
	return r
}

// poolLeftover is an unclaimed warm pool member, or its writer, past its
// expiry: no pool keeper replaced it.
func poolLeftover(kind, id string, ts []types.Tag, created time.Time) env.Resource {
	return env.Resource{Provider: "aurora", Kind: kind, ID: id, Labels: tagMap(ts), CreatedAt: created, Shared: true,
		HalfMade: "an unclaimed warm pool member past its expiry: no pool keeper (prenv serve, prenv pool fill) replaced it"}
}

// goldenLeftover is a cluster or writer of a golden build that timed out
// unpromoted (golden.source.aurora.build_timeout): its builder was killed.
func (c *Cloner) goldenLeftover(kind, id string, ts []types.Tag, created time.Time) env.Resource {
	return env.Resource{Provider: "aurora", Kind: kind, ID: id, Labels: tagMap(ts), CreatedAt: created, Shared: true,
		HalfMade: "a golden build was interrupted: its build time passed and it was never promoted"}
}

// legacyMatch says why tags are not selected by l: nil when l has tags and
// every one of them is carried with its value.
func legacyMatch(l *env.Legacy, tags map[string]string) error {
	if l == nil || len(l.Tags) == 0 {
		return errors.New("the legacy selection has no tags (sweep.legacy.tags)")
	}
	keys := make([]string, 0, len(l.Tags))
	for k := range l.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v, ok := tags[k]; !ok || v != l.Tags[k] {
			return fmt.Errorf("it does not carry %s=%s", k, l.Tags[k])
		}
	}
	return nil
}

// sweepProof is what a sweep must prove, on what it reads just before it
// deletes, for r: q.Owner on r's own owner tag, or, for a legacy r, no
// owner tag and every tag of q.Legacy. The refusal wraps env.ErrNotOurs.
func (c *Cloner) sweepProof(q env.Query, r env.Resource) (proof, error) {
	if r.Legacy {
		if q.Legacy == nil || len(q.Legacy.Tags) == 0 {
			return nil, fmt.Errorf("%s %s was planned as legacy but the sweep has no legacy tags (sweep.legacy.tags): left untouched: %w", r.Kind, r.ID, env.ErrNotOurs)
		}
		return func(kind, id string, ts []types.Tag) error {
			m := tagMap(ts)
			if owner, ok := m[env.LabelOwner]; ok {
				return fmt.Errorf("%s %s now carries the owner tag %s=%s: it is no longer legacy, and left untouched: %w", kind, id, env.LabelOwner, owner, env.ErrNotOurs)
			}
			if err := legacyMatch(q.Legacy, m); err != nil {
				return fmt.Errorf("%s %s no longer matches sweep.legacy: %v; left untouched: %w", kind, id, err, env.ErrNotOurs)
			}
			return nil
		}, nil
	}
	if q.Owner == "" {
		return nil, fmt.Errorf("remove %s %s: no owner id to prove it is ours (set owner in prenv.yaml): left untouched: %w", r.Kind, r.ID, env.ErrNotOurs)
	}
	return func(kind, id string, ts []types.Tag) error {
		owner, ok := tagMap(ts)[env.LabelOwner]
		switch {
		case !ok:
			return fmt.Errorf("%s %s no longer carries prenv's owner tag %s=%s: left untouched: %w", kind, id, env.LabelOwner, q.Owner, env.ErrNotOurs)
		case owner != q.Owner:
			return fmt.Errorf("%s %s carries the owner tag %s=%s, not %s: another installation's, left untouched: %w", kind, id, env.LabelOwner, owner, q.Owner, env.ErrNotOurs)
		}
		// A golden build planned as interrupted may have been promoted
		// since (a build alive past its deadline): it is then the golden
		// source.
		if _, building := r.Labels[LabelGoldenBuild]; building {
			if n := tagMap(ts)[LabelGolden]; n != "" {
				return fmt.Errorf("%s %s was promoted as golden generation %s since the plan: left untouched: %w", kind, id, n, env.ErrNotOurs)
			}
		}
		// An up on another machine (a CI runner) renews what it adopts:
		// what was renewed since the plan is in use, whatever the plan said.
		if kind == r.Kind && id == r.ID {
			if planned, now := r.Labels[env.LabelExpiresAt], tagMap(ts)[env.LabelExpiresAt]; planned != now {
				return fmt.Errorf("%s %s was renewed since the plan (%s %s, planned with %q): an up is using it, left untouched: %w", kind, id, env.LabelExpiresAt, now, planned, env.ErrNotOurs)
			}
		}
		return nil
	}, nil
}

// Remove implements env.Inventory. It reads r again first: gone is
// success (it was deleted out of band); what no longer passes the proof
// it was planned with is refused untouched (an error wrapping
// env.ErrNotOurs), and so is deletion protection, which prenv never turns
// off, and the golden source. An instance is deleted without a final
// snapshot; a cluster after its instances, each of which must pass the
// same proof, and without a final snapshot. Each waits until RDS no longer
// shows it, within database.aurora.wait_timeout.
func (c *Cloner) Remove(ctx context.Context, q env.Query, r env.Resource) error {
	if r.Provider != "aurora" {
		return fmt.Errorf("remove %s %s: it is listed by %s, not aurora", r.Kind, r.ID, r.Provider)
	}
	may, err := c.sweepProof(q, r)
	if err != nil {
		return err
	}
	switch r.Kind {
	case KindInstance:
		return c.removeInstance(ctx, r.ID, may)
	case KindCluster:
		if err := c.removeCluster(ctx, r.ID, may); err != nil {
			return err
		}
		if c.Home != "" && !r.Legacy {
			os.Remove(c.passwordFile(r.ID))
		}
		return nil
	}
	return fmt.Errorf("remove %s %s: aurora lists clusters and instances only", r.Kind, r.ID)
}

func (c *Cloner) removeInstance(ctx context.Context, id string, may proof) error {
	inst, err := c.instance(ctx, id)
	if err != nil || inst == nil {
		return err
	}
	if err := c.removable(ctx, inst, may); err != nil {
		return err
	}
	return c.deleteInstance(ctx, id, "instance", may, "sweep again")
}

// removable says why instance inst may not be removed: the proof, its
// deletion protection, or its cluster's (RDS lets an instance of a
// protected cluster go, but prenv leaves a protected cluster whole), or
// its cluster being the golden source.
func (c *Cloner) removable(ctx context.Context, inst *types.DBInstance, may proof) error {
	id, cid := aws.ToString(inst.DBInstanceIdentifier), aws.ToString(inst.DBClusterIdentifier)
	if err := may("instance", id, inst.TagList); err != nil {
		return err
	}
	if aws.ToBool(inst.DeletionProtection) {
		return fmt.Errorf("instance %s has deletion protection on: prenv never turns it off; if it should go, run aws rds modify-db-instance --db-instance-identifier %s --no-deletion-protection --apply-immediately, then sweep again", id, id)
	}
	if cid == "" {
		return nil
	}
	if cid == c.opts().Source {
		return fmt.Errorf("instance %s is in the golden source cluster %s (database.aurora.source_cluster): prenv never touches it: %w", id, cid, env.ErrNotOurs)
	}
	cl, err := c.cluster(ctx, cid)
	if err != nil {
		return err
	}
	if _, building := tagMap(inst.TagList)[LabelGoldenBuild]; building && cl != nil {
		if n := tagMap(cl.TagList)[LabelGolden]; n != "" {
			return fmt.Errorf("instance %s is the writer of %s, promoted as golden generation %s: left untouched: %w", id, cid, n, env.ErrNotOurs)
		}
	}
	if cl != nil && aws.ToBool(cl.DeletionProtection) {
		return fmt.Errorf("instance %s is in cluster %s, which has deletion protection on: prenv never turns it off, nor deletes its instances; if it should go, run aws rds modify-db-cluster --db-cluster-identifier %s --no-deletion-protection --apply-immediately, then sweep again", id, cid, cid)
	}
	return nil
}

func (c *Cloner) removeCluster(ctx context.Context, id string, may proof) error {
	cl, err := c.cluster(ctx, id)
	if err != nil || cl == nil {
		return err
	}
	if id == c.opts().Source {
		return fmt.Errorf("cluster %s is the golden source (database.aurora.source_cluster): prenv never touches it: %w", id, env.ErrNotOurs)
	}
	if err := may("cluster", id, cl.TagList); err != nil {
		return err
	}
	// RDS deletes the instances of a protected cluster; prenv checks the
	// cluster first so that a refusal leaves it whole.
	if aws.ToBool(cl.DeletionProtection) {
		return fmt.Errorf("cluster %s has deletion protection on: prenv never turns it off; if it should go, run aws rds modify-db-cluster --db-cluster-identifier %s --no-deletion-protection --apply-immediately, then sweep again", id, id)
	}
	// RDS rejects DeleteDBCluster while instances exist: every member goes
	// first, and each must pass the proof before any is deleted.
	var members []types.DBInstance
	p := rds.NewDescribeDBInstancesPaginator(c.API, &rds.DescribeDBInstancesInput{
		Filters: []types.Filter{{Name: aws.String("db-cluster-id"), Values: []string{id}}}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return c.explain(err, "list the instances of cluster "+id)
		}
		members = append(members, page.DBInstances...)
	}
	for i := range members {
		if err := c.removable(ctx, &members[i], may); err != nil {
			return fmt.Errorf("cluster %s is left with its instances: %w", id, err)
		}
	}
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.deleteInstance(ctx, aws.ToString(members[i].DBInstanceIdentifier), "instance", may, "sweep again")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster %s: %w", id, err)
	}
	return c.deleteCluster(ctx, id, may, "sweep again")
}

// Renew implements env.Renewer: it sets the expires-at tag of environment
// k's cluster and writer to expiresAt (RFC 3339, UTC, as env.Labels
// writes it) and changes nothing else. Only what carries this cloner's
// owner tag and k's key tag is renewed; anything else there is refused
// before either is changed, with an error wrapping dbclone.ErrNotOurs.
// Nothing there is nil: there is nothing to renew.
func (c *Cloner) Renew(ctx context.Context, k env.Key, expiresAt time.Time) error {
	o := c.opts()
	id, cl, err := c.clusterOf(ctx, k)
	if err != nil {
		return err
	}
	wid := writerID(id)
	inst, err := c.instance(ctx, wid)
	if err != nil {
		return err
	}
	mine := func(kind, id string, ts []types.Tag) error {
		m := tagMap(ts)
		if o.Owner == "" || m[env.LabelOwner] != o.Owner {
			return fmt.Errorf("renew %s %s: it does not carry prenv's owner tag %s=%s: left untouched: %w", kind, id, env.LabelOwner, o.Owner, dbclone.ErrNotOurs)
		}
		if m[env.LabelKey] != keyTag(k) {
			return fmt.Errorf("renew %s %s: its %s tag is %q, not environment %s's %q: left untouched: %w", kind, id, env.LabelKey, m[env.LabelKey], k, keyTag(k), dbclone.ErrNotOurs)
		}
		return nil
	}
	var arns []string
	if cl != nil {
		if err := mine("cluster", id, cl.TagList); err != nil {
			return err
		}
		arns = append(arns, aws.ToString(cl.DBClusterArn))
	}
	if inst != nil {
		if err := mine("instance", wid, inst.TagList); err != nil {
			return err
		}
		arns = append(arns, aws.ToString(inst.DBInstanceArn))
	}
	// The owner tag goes along unchanged: an IAM policy that lets prenv
	// tag only with its owner tag in the request (docs/aurora.md) lets
	// this through.
	tags := []types.Tag{
		{Key: aws.String(env.LabelOwner), Value: aws.String(o.Owner)},
		{Key: aws.String(env.LabelExpiresAt), Value: aws.String(expiresAt.UTC().Format(time.RFC3339))},
	}
	for _, arn := range arns {
		_, err := c.API.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: aws.String(arn), Tags: tags})
		var cnf *types.DBClusterNotFoundFault
		var inf *types.DBInstanceNotFoundFault
		switch {
		case errors.As(err, &cnf), errors.As(err, &inf):
			// Deleted since it was read: nothing to renew.
		case err != nil:
			return c.explain(err, "renew the expiry of "+arn)
		}
	}
	return nil
}
