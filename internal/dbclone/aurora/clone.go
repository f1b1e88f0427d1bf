package aurora

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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

// cluster returns the cluster id, or nil if there is none.
func (c *Cloner) cluster(ctx context.Context, id string) (*types.DBCluster, error) {
	out, err := c.API.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
	var nf *types.DBClusterNotFoundFault
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, c.explain(err, "describe cluster "+id)
	}
	if len(out.DBClusters) == 0 {
		return nil, nil
	}
	return &out.DBClusters[0], nil
}

// instance returns the instance id, or nil if there is none.
func (c *Cloner) instance(ctx context.Context, id string) (*types.DBInstance, error) {
	out, err := c.API.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	var nf *types.DBInstanceNotFoundFault
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, c.explain(err, "describe instance "+id)
	}
	if len(out.DBInstances) == 0 {
		return nil, nil
	}
	return &out.DBInstances[0], nil
}

// ours checks that a resource carries the owner tag of this cloner and is
// the environment's.
func (c *Cloner) ours(kind, id string, ts []types.Tag, k env.Key) error {
	m := tagMap(ts)
	if m[env.LabelOwner] != c.opts().Owner {
		return fmt.Errorf("%s %s exists without prenv's owner tag %s=%s: %w; it is left untouched (choose another database.aurora.prefix, or remove it yourself)",
			kind, id, env.LabelOwner, c.opts().Owner, dbclone.ErrNotOurs)
	}
	if got := m[env.LabelKey]; got != "" && got != keyTag(k) {
		return fmt.Errorf("%s %s belongs to environment %s, not %s: %w", kind, id, got, keyTag(k), dbclone.ErrNotOurs)
	}
	return nil
}

// Check implements dbclone.Checker: the configuration, the credentials, the
// source cluster, and nothing foreign in the way, before anything is made.
func (c *Cloner) Check(ctx context.Context, k env.Key) error {
	if err := c.Options.Validate(); err != nil {
		return fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if c.Credentials != nil {
		if _, err := c.Credentials.Retrieve(ctx); err != nil {
			return fmt.Errorf("no AWS credentials found (%v): prenv tried, in order, the environment (AWS_ACCESS_KEY_ID), web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, which aws-actions/configure-aws-credentials sets from GitHub's OIDC token), the shared config and credentials files (AWS_PROFILE, SSO), container credentials (ECS, EKS pod identity) and the instance's role (IMDS): %w", shortErr(err), ErrInvalid)
		}
	}
	if _, err := c.source(ctx); err != nil {
		return err
	}
	id := c.ClusterID(k)
	cl, err := c.cluster(ctx, id)
	if err != nil {
		return err
	}
	if cl != nil {
		return c.ours("cluster", id, cl.TagList, k)
	}
	return nil
}

func regionOr(r string) string {
	if r == "" {
		return "the configured region"
	}
	return r
}

// shortErr keeps the first line of the SDK's long credential-chain error.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// Clone implements dbclone.Cloner: restore the cluster copy-on-write from
// the source and add its writer, or adopt what an earlier run made; wait
// until both are available; give the environment its own credentials;
// check it answers.
func (c *Cloner) Clone(ctx context.Context, req dbclone.Request) (dbclone.Database, error) {
	o := c.opts()
	if err := c.Options.Validate(); err != nil {
		return dbclone.Database{}, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if c.Home != "" {
		// prenv up and prenv serve on one machine take turns; runs on
		// other machines meet RDS's AlreadyExists faults instead.
		unlock, err := lock.File(ctx, filepath.Join(c.Home, "aurora", c.ClusterID(req.Key)+".lock"))
		if err != nil {
			return dbclone.Database{}, err
		}
		defer unlock()
	}
	// The pool member this environment claimed before, if any, is found
	// by the claim below, which lists the clusters anyway.
	id, cl, err := c.clusterOf(ctx, req.Key, c.claims())
	if err != nil {
		return dbclone.Database{}, err
	}
	created, claimed := false, false
	if cl != nil {
		if err := c.ours("cluster", id, cl.TagList, req.Key); err != nil {
			return dbclone.Database{}, err
		}
		if aws.ToString(cl.Status) == "deleting" {
			return dbclone.Database{}, fmt.Errorf("cluster %s is being deleted by an earlier down: try again when it is gone", id)
		}
		c.log().Info("adopting the cluster an earlier run made", "cluster", id, "status", aws.ToString(cl.Status))
	} else {
		if o.Pool.Size > 0 && c.NoClaims != "" {
			c.log().Info("warm pool: not claiming", "env", req.Key.Name(), "why", c.NoClaims)
		}
		if c.claims() {
			m, fresh, err := c.claim(ctx, req)
			switch {
			case errors.Is(err, errClaimCut):
				return dbclone.Database{}, err
			case err != nil:
				c.log().Warn("warm pool: no claim, cloning instead", "env", req.Key.Name(), "error", err)
			case m != nil:
				cl, id, claimed, created = m, aws.ToString(m.DBClusterIdentifier), true, fresh
			default:
				c.log().Info("warm pool: no member ready, cloning", "env", req.Key.Name())
			}
		}
		if !claimed {
			// A password kept under this name belongs to a cluster deleted
			// out of band: the new clone has its source's, and gets its own
			// below.
			if c.Home != "" {
				os.Remove(c.passwordFile(id))
			}
			if cl, err = c.restore(ctx, req, id); err != nil {
				return dbclone.Database{}, err
			}
			created = true
		}
	}
	wid := writerID(id)
	if !claimed {
		// A claimed member and its writer were available as listed.
		if err := c.writerFor(ctx, req, id, wid, created); err != nil {
			return dbclone.Database{}, err
		}
		if cl, err = c.waitAvailable(ctx, id, wid); err != nil {
			return dbclone.Database{}, err
		}
	}
	db := c.database(req.Key, cl)
	switch o.Credentials {
	case CredentialsManaged:
		if cl.MasterUserSecret == nil {
			if _, err := c.API.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(id),
				ManageMasterUserPassword: aws.Bool(true), ApplyImmediately: aws.Bool(true)}); err != nil {
				return dbclone.Database{}, c.explain(err, "let RDS manage the master password of "+id)
			}
			if cl, err = c.waitAvailable(ctx, id, wid); err != nil {
				return dbclone.Database{}, err
			}
		}
		db = c.database(req.Key, cl)
	default:
		pw := ""
		if !created || claimed {
			if pw, err = c.keptPassword(ctx, req.Key, cl); err != nil {
				return dbclone.Database{}, err
			}
		}
		if pw == "" {
			if pw, err = c.setPassword(ctx, id, cl); err != nil {
				return dbclone.Database{}, err
			}
			if cl, err = c.waitAvailable(ctx, id, wid); err != nil {
				return dbclone.Database{}, err
			}
			db = c.database(req.Key, cl)
		}
		db.Password = pw
		db.URL = url(db.User, pw, db.Host, db.Port, db.DBName, o.SSLMode)
	}
	db.Ready, err = c.ready(ctx, db)
	db.Created = created
	return db, err
}

// writerFor makes sure cluster id has its writer wid, ours, creating it if
// missing; a cluster just created (created) is removed again when the
// account has no room for the writer.
func (c *Cloner) writerFor(ctx context.Context, req dbclone.Request, id, wid string, created bool) error {
	inst, err := c.instance(ctx, wid)
	if err != nil {
		return err
	}
	if inst != nil {
		if err := c.ours("instance", wid, inst.TagList, req.Key); err != nil {
			return err
		}
		if aws.ToString(inst.DBClusterIdentifier) != id {
			return fmt.Errorf("instance %s belongs to cluster %s, not %s: %w", wid, aws.ToString(inst.DBClusterIdentifier), id, dbclone.ErrNotOurs)
		}
	} else if err := c.createWriter(ctx, req, id, wid); err != nil {
		if created && errors.Is(err, dbclone.ErrCapacity) {
			// Nothing half-made stays behind when the account is full.
			if derr := c.deleteCluster(context.WithoutCancel(ctx), id, c.keyProof(req.Key), "up again"); derr != nil {
				err = fmt.Errorf("%w (and removing cluster %s failed: %v)", err, id, derr)
			}
		}
		return err
	}
	return nil
}

// restore makes the cluster, copy-on-write (the API's default is a full
// copy), with the network settings and the tags from creation.
func (c *Cloner) restore(ctx context.Context, req dbclone.Request, id string) (*types.DBCluster, error) {
	o := c.opts()
	src, err := c.source(ctx)
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	from := aws.ToString(src.DBClusterIdentifier)
	gen := tagMap(src.TagList)[LabelGeneration]
	if gen == "" {
		gen = "1"
	}
	in := c.cloneInput(id, from, append(tags(o.Owner, req), types.Tag{Key: aws.String(LabelGeneration), Value: aws.String(gen)}))
	in.CopyTagsToSnapshot = aws.Bool(true)
	out, err := c.API.RestoreDBClusterToPointInTime(ctx, in)
	var exists *types.DBClusterAlreadyExistsFault
	var nf *types.DBClusterNotFoundFault
	switch {
	case errors.As(err, &exists):
		// Another run made it in between: adopt it if it is ours.
		cl, derr := c.cluster(ctx, id)
		if derr != nil || cl == nil {
			return nil, c.explain(err, "clone "+from+" as "+id)
		}
		return cl, c.ours("cluster", id, cl.TagList, req.Key)
	case errors.As(err, &nf):
		return nil, fmt.Errorf("clone %s: the source cluster does not exist (any more): %w", from, dbclone.ErrNoSource)
	case err != nil:
		return nil, c.explain(err, "clone "+from+" as "+id)
	}
	c.log().Info("cloning copy-on-write", "source", from, "cluster", id)
	return out.DBCluster, nil
}

// cloneInput asks for cluster id as a copy-on-write clone of from at its
// latest time, with the network settings and tags from creation.
func (c *Cloner) cloneInput(id, from string, ts []types.Tag) *rds.RestoreDBClusterToPointInTimeInput {
	o := c.opts()
	in := &rds.RestoreDBClusterToPointInTimeInput{
		DBClusterIdentifier: aws.String(id), SourceDBClusterIdentifier: aws.String(from),
		RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true),
		VpcSecurityGroupIds: o.SecurityGroups, DeletionProtection: aws.Bool(false), Tags: ts,
	}
	if o.ParameterGroup != "" {
		in.DBClusterParameterGroupName = aws.String(o.ParameterGroup)
	}
	if o.SubnetGroup != "" {
		in.DBSubnetGroupName = aws.String(o.SubnetGroup)
	}
	return in
}

func (c *Cloner) createWriter(ctx context.Context, req dbclone.Request, id, wid string) error {
	o := c.opts()
	_, err := c.API.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String(wid), DBClusterIdentifier: aws.String(id), DBInstanceClass: aws.String(o.InstanceClass),
		Engine: aws.String(Engine), Tags: tags(o.Owner, req), PubliclyAccessible: aws.Bool(false),
	})
	var exists *types.DBInstanceAlreadyExistsFault
	if errors.As(err, &exists) {
		inst, derr := c.instance(ctx, wid)
		if derr != nil {
			return derr
		}
		if inst == nil {
			return c.explain(err, "create the writer "+wid+" (RDS says it exists but does not show it)")
		}
		return c.ours("instance", wid, inst.TagList, req.Key)
	}
	if err != nil {
		return c.explain(err, "create the writer "+wid)
	}
	c.log().Info("creating the writer", "instance", wid, "class", o.InstanceClass)
	return nil
}

// waitAvailable polls until the cluster and its writer are available (the
// cluster alone is not enough), within WaitTimeout. Throttled polls wait
// longer instead of failing.
func (c *Cloner) waitAvailable(ctx context.Context, id, wid string) (*types.DBCluster, error) {
	o := c.opts()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.WaitTimeout)
	defer cancel()
	b := newBackoff(o.Poll)
	var cs, is string
	for {
		cl, err := c.cluster(ctx, id)
		if err == nil && cl == nil {
			return nil, fmt.Errorf("cluster %s disappeared while prenv waited for it", id)
		}
		var inst *types.DBInstance
		if err == nil {
			cs = aws.ToString(cl.Status)
			inst, err = c.instance(ctx, wid)
			if err == nil && inst == nil {
				return nil, fmt.Errorf("instance %s disappeared while prenv waited for it", wid)
			}
		}
		if err == nil {
			is = aws.ToString(inst.DBInstanceStatus)
			if cs == "available" && is == "available" {
				return cl, nil
			}
			if bad(cs) || bad(is) {
				return nil, fmt.Errorf("cluster %s is %s and its writer %s: RDS cannot finish it; see the cluster's events in the RDS console", id, cs, is)
			}
		} else if !isThrottle(err) && ctx.Err() == nil {
			return nil, err
		}
		if err := b.wait(ctx); err != nil {
			if parent.Err() != nil {
				return nil, parent.Err()
			}
			if ctx.Err() == context.DeadlineExceeded {
				return nil, fmt.Errorf("cluster %s is %s and its writer %s after %v (database.aurora.wait_timeout): the next up adopts them and waits again", id, orUnknown(cs), orUnknown(is), o.WaitTimeout)
			}
			return nil, err
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// bad are states RDS does not leave by itself.
func bad(status string) bool {
	switch status {
	case "failed", "incompatible-parameters", "incompatible-restore", "incompatible-network", "inaccessible-encryption-credentials", "storage-full":
		return true
	}
	return false
}

// url is the database's URL; without pw (RDS keeps it) it names the user
// alone.
func url(user, pw, host string, port int, db, sslmode string) string {
	userinfo := user
	if pw != "" {
		userinfo += ":" + pw
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=%s", userinfo, host, port, db, sslmode)
}

func (c *Cloner) database(k env.Key, cl *types.DBCluster) dbclone.Database {
	o := c.opts()
	port := int(aws.ToInt32(cl.Port))
	if port == 0 {
		port = 5432
	}
	db := dbclone.Database{
		Key: k, Name: aws.ToString(cl.DBClusterIdentifier), Provider: "aurora",
		Host: aws.ToString(cl.Endpoint), Port: port, DBName: o.DBName, User: aws.ToString(cl.MasterUsername),
		Labels: tagMap(cl.TagList), CreatedAt: aws.ToTime(cl.ClusterCreateTime), Generation: 1,
	}
	if n, err := strconv.Atoi(db.Labels[LabelGeneration]); err == nil && n > 0 {
		db.Generation = n
	}
	if _, ok := db.Labels[env.LabelKey]; ok {
		db.Labels[env.LabelKey] = k.String() // the tag spells it repo:N
	}
	if cl.MasterUserSecret != nil {
		db.SecretRef = aws.ToString(cl.MasterUserSecret.SecretArn)
	}
	if db.Labels[LabelPool] == PoolClaimed {
		db.FromPool = db.Name
	}
	db.URL = url(db.User, "", db.Host, db.Port, db.DBName, o.SSLMode)
	return db
}

// ready says how the database was found ready: a SELECT 1 through its
// endpoint where the network allows it (ReadyAuto, ReadySQL), else the API.
func (c *Cloner) ready(ctx context.Context, db dbclone.Database) (string, error) {
	o := c.opts()
	api := "rds status available (cluster and writer)"
	if o.ReadyCheck == ReadyAPI || db.Password == "" {
		if o.ReadyCheck == ReadySQL {
			return api, fmt.Errorf("database.aurora.ready_check is sql but the password is kept by RDS (credentials: managed): use ready_check: api")
		}
		return api, nil
	}
	// A new master password takes a moment to apply: retry refusals
	// within a bound.
	budget := 2 * time.Minute
	if o.ReadyCheck == ReadyAuto {
		budget = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	b := newBackoff(min(o.Poll, time.Second))
	for {
		err := dbclone.SelectOne(cctx, db.URL, 10*time.Second)
		if err == nil {
			return "select 1 as " + db.User + " through the cluster endpoint", nil
		}
		if o.ReadyCheck == ReadyAuto && unreachable(err) {
			return api + "; select 1 not possible from here: " + shortErr(err), nil
		}
		if werr := b.wait(cctx); werr != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if o.ReadyCheck == ReadyAuto {
				return api + "; select 1 failed: " + shortErr(err), nil
			}
			return "", fmt.Errorf("cluster %s is available but SELECT 1 through %s:%d fails: %v: check its security groups let this machine in, or set database.aurora.ready_check: api", db.Name, db.Host, db.Port, err)
		}
	}
}

func unreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(err, &dnsErr) || errors.As(err, &opErr) && (opErr.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(err.Error(), "no route to host") || strings.Contains(err.Error(), "network is unreachable"))
}

// Get implements dbclone.Cloner.
func (c *Cloner) Get(ctx context.Context, k env.Key) (dbclone.Database, error) {
	id, cl, err := c.clusterOf(ctx, k)
	if err != nil {
		return dbclone.Database{}, err
	}
	if cl == nil || aws.ToString(cl.Status) == "deleting" {
		return dbclone.Database{}, fmt.Errorf("cluster %s: %w", id, dbclone.ErrNotFound)
	}
	if err := c.ours("cluster", id, cl.TagList, k); err != nil {
		return dbclone.Database{}, err
	}
	db := c.database(k, cl)
	if pw, _ := c.keptPassword(ctx, k, cl); pw != "" {
		db.Password = pw
		db.URL = url(db.User, pw, db.Host, db.Port, db.DBName, c.opts().SSLMode)
	}
	return db, nil
}

// Delete implements dbclone.Cloner: the writer first, waiting until it is
// gone, then the cluster without a final snapshot. Gone already is success;
// anything not ours or with deletion protection on is refused, untouched.
func (c *Cloner) Delete(ctx context.Context, k env.Key) error {
	may := c.keyProof(k)
	id, cl, err := c.clusterOf(ctx, k)
	if err != nil {
		return err
	}
	if cl != nil {
		if err := may("cluster", id, cl.TagList); err != nil {
			return err
		}
		if aws.ToBool(cl.DeletionProtection) {
			return fmt.Errorf("cluster %s has deletion protection on: prenv never turns it off; if the environment should go, run aws rds modify-db-cluster --db-cluster-identifier %s --no-deletion-protection, then down again: %w", id, id, dbclone.ErrNotOurs)
		}
	}
	if err := c.deleteInstance(ctx, writerID(id), "the writer", may, "down again"); err != nil {
		return err
	}
	if cl == nil {
		return nil
	}
	if err := c.deleteCluster(ctx, id, may, "down again"); err != nil {
		return err
	}
	if c.Home != "" {
		os.Remove(c.passwordFile(id))
		os.Remove(c.claimFile(k))
	}
	return nil
}

// proof tells whether a cluster or instance, as just read, may be deleted:
// nil, or an error saying why not. Delete proves the environment's key
// (keyProof); a sweep proves its owner id or its legacy selection
// (sweepProof). The deletions check it again on what they read, so that
// what changed hands since the plan is left.
type proof func(kind, id string, ts []types.Tag) error

func (c *Cloner) keyProof(k env.Key) proof {
	return func(kind, id string, ts []types.Tag) error { return c.ours(kind, id, ts, k) }
}

// deleteInstance deletes instance wid (called what in messages: "the
// writer", "instance") if may allows it, and waits until it is gone, within
// WaitTimeout; again is what to run to keep waiting after that.
func (c *Cloner) deleteInstance(ctx context.Context, wid, what string, may proof, again string) error {
	o := c.opts()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.WaitTimeout)
	defer cancel()
	b := newBackoff(o.Poll)
	asked := false
	for {
		inst, err := c.instance(ctx, wid)
		switch {
		case err != nil && !isThrottle(err) && ctx.Err() == nil:
			// A request cut by the wait's own deadline ends in the timeout
			// message below, not in a bare "context deadline exceeded".
			return err
		case err == nil && inst == nil:
			return nil
		case err == nil && !asked:
			if err := may("instance", wid, inst.TagList); err != nil {
				return err
			}
			if aws.ToBool(inst.DeletionProtection) {
				return fmt.Errorf("instance %s has deletion protection on: prenv never turns it off: %w", wid, dbclone.ErrNotOurs)
			}
			if aws.ToString(inst.DBInstanceStatus) == "deleting" {
				asked = true
				break
			}
			_, derr := c.API.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(wid),
				SkipFinalSnapshot: aws.Bool(true), DeleteAutomatedBackups: aws.Bool(true)})
			var nf *types.DBInstanceNotFoundFault
			var state *types.InvalidDBInstanceStateFault
			switch {
			case derr == nil:
				asked = true
				c.log().Info("deleting "+what, "instance", wid)
			case errors.As(derr, &nf):
				return nil
			case errors.As(derr, &state), isThrottle(derr):
				// Still being created or modified: ask again later.
			case ctx.Err() != nil:
				// The wait's deadline: said below.
			default:
				return c.explain(derr, "delete "+what+" "+wid)
			}
		}
		if err := b.wait(ctx); err != nil {
			if parent.Err() != nil {
				return parent.Err()
			}
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%s %s is not gone after %v (database.aurora.wait_timeout): %s to keep waiting", what, wid, o.WaitTimeout, again)
			}
			return err
		}
	}
}

// deleteCluster deletes cluster id without a final snapshot if may allows
// it, and waits until it is gone, within WaitTimeout. RDS rejects
// DeleteDBCluster while instances exist: the caller deletes them first.
func (c *Cloner) deleteCluster(ctx context.Context, id string, may proof, again string) error {
	o := c.opts()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.WaitTimeout)
	defer cancel()
	b := newBackoff(o.Poll)
	asked := false
	var last error
	for {
		cl, err := c.cluster(ctx, id)
		switch {
		case err != nil && !isThrottle(err) && ctx.Err() == nil:
			// A request cut by the wait's own deadline ends in the timeout
			// message below, not in a bare "context deadline exceeded".
			return err
		case err == nil && cl == nil:
			return nil
		case err == nil && !asked:
			if err := may("cluster", id, cl.TagList); err != nil {
				return err
			}
			if aws.ToString(cl.Status) == "deleting" {
				asked = true
				break
			}
			_, derr := c.API.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)})
			var nf *types.DBClusterNotFoundFault
			var state *types.InvalidDBClusterStateFault
			switch {
			case derr == nil:
				asked = true
				c.log().Info("deleting the cluster", "cluster", id)
			case errors.As(derr, &nf):
				return nil
			case errors.As(derr, &state), isThrottle(derr):
				last = derr
			case ctx.Err() != nil:
				// The wait's deadline: said below.
			default:
				return c.explain(derr, "delete cluster "+id)
			}
		}
		if err := b.wait(ctx); err != nil {
			if parent.Err() != nil {
				return parent.Err()
			}
			if ctx.Err() == context.DeadlineExceeded {
				members := ""
				if cl != nil {
					for _, m := range cl.DBClusterMembers {
						members += " " + aws.ToString(m.DBInstanceIdentifier)
					}
				}
				if members != "" {
					return fmt.Errorf("cluster %s still has instances (%s) after %v: prenv deletes only its writer; remove the others, then %s (%v)", id, strings.TrimSpace(members), o.WaitTimeout, again, last)
				}
				return fmt.Errorf("cluster %s is not gone after %v (database.aurora.wait_timeout): %s to keep waiting", id, o.WaitTimeout, again)
			}
			return err
		}
	}
}

// List implements dbclone.Cloner: every cluster carrying the owner tag.
func (c *Cloner) List(ctx context.Context) ([]dbclone.Database, error) {
	var out []dbclone.Database
	p := rds.NewDescribeDBClustersPaginator(c.API, &rds.DescribeDBClustersInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, c.explain(err, "list clusters")
		}
		for _, cl := range page.DBClusters {
			m := tagMap(cl.TagList)
			if m[env.LabelOwner] != c.opts().Owner {
				continue
			}
			k, err := parseKeyTag(m[env.LabelKey])
			if err != nil {
				c.log().Warn("a cluster with prenv's owner tag but no readable environment key", "cluster", aws.ToString(cl.DBClusterIdentifier), "error", err)
			}
			out = append(out, c.database(k, &cl))
		}
	}
	return out, nil
}
