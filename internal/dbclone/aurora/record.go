package aurora

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/env"
)

var _ env.Recorder = (*Cloner)(nil)

// LabelPassword is the tag saying which master password prenv set on a
// cluster (mode password): a fingerprint, never the password. A runner
// that reads a password back from where it is kept (PasswordKeeper, or
// its own home) uses it only if the fingerprint matches; else it sets a
// new one, so a password kept from before an interrupted change is never
// handed to the app.
const LabelPassword = "prenv.dev/password"

// fingerprint identifies pw as cluster id's master password: the first 64
// bits of a SHA-256 of both. The password is 128 random bits: what the tag
// shows tells nothing of it.
func fingerprint(id, pw string) string {
	sum := sha256.Sum256([]byte("prenv aurora master password\x00" + id + "\x00" + pw))
	return hex.EncodeToString(sum[:8])
}

// keptPassword is the master password of cluster cl kept for k, "" when
// none is known to be its current one: the one in Home, else the one the
// Keeper holds, each only if the cluster's fingerprint tag matches it (a
// cluster without the tag, made by a prenv before it, trusts Home only).
func (c *Cloner) keptPassword(ctx context.Context, k env.Key, cl *types.DBCluster) (string, error) {
	id := aws.ToString(cl.DBClusterIdentifier)
	fp, tagged := tagMap(cl.TagList)[LabelPassword]
	if pw := c.storedPassword(id); pw != "" && (!tagged || fp == fingerprint(id, pw)) {
		return pw, nil
	}
	if c.Keeper == nil || !tagged {
		return "", nil
	}
	pw, err := c.Keeper.Password(ctx, k)
	switch {
	case err != nil:
		// Setting a new one would break the app still using the current
		// one for what may be a passing error.
		return "", fmt.Errorf("read the master password of %s back from where it is kept: %w; nothing was changed: run it again", id, err)
	case pw == "" || fingerprint(id, pw) != fp:
		return "", nil
	}
	c.log().Info("adopting the master password kept for the environment", "cluster", id)
	if err := c.storePassword(id, pw); err != nil {
		c.log().Warn("cannot keep the master password on this machine", "cluster", id, "err", err)
	}
	return pw, nil
}

// setPassword gives cluster id a new master password: its fingerprint is
// tagged first, then the password set, then kept in Home. A run killed
// anywhere in between leaves a fingerprint that matches no kept password
// (the old one no longer matches once the tag is written): the next run
// sets another, never trusts a stale one.
func (c *Cloner) setPassword(ctx context.Context, id string, cl *types.DBCluster) (string, error) {
	pw := password()
	if err := c.tag(ctx, aws.ToString(cl.DBClusterArn), map[string]string{LabelPassword: fingerprint(id, pw)}); err != nil {
		return "", c.explain(err, "tag the master password's fingerprint on "+id+" (rds:AddTagsToResource, which the IAM policy in docs/aurora.md allows)")
	}
	if _, err := c.API.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(id),
		MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)}); err != nil {
		return "", c.explain(err, "set the master password of "+id)
	}
	if err := c.storePassword(id, pw); err != nil {
		return "", fmt.Errorf("keep the master password of %s: %w", id, err)
	}
	return pw, nil
}

// tag adds tags to the resource arn, the owner tag along (an IAM policy
// that lets prenv tag only with its owner tag in the request lets it
// through).
func (c *Cloner) tag(ctx context.Context, arn string, m map[string]string) error {
	if arn == "" {
		return errors.New("no ARN to tag")
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	ts := []types.Tag{{Key: aws.String(env.LabelOwner), Value: aws.String(c.opts().Owner)}}
	for _, name := range names {
		ts = append(ts, types.Tag{Key: aws.String(name), Value: aws.String(m[name])})
	}
	_, err := c.API.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: aws.String(arn), Tags: ts})
	return err
}

// Record implements env.Recorder: s goes on k's cluster as tags
// (prenv.dev/state, commit, url, updated-at and expires-at), with one
// AddTagsToResource; nothing on a cluster that is not ours or is being
// deleted.
func (c *Cloner) Record(ctx context.Context, k env.Key, s env.Status) error {
	id, cl, err := c.clusterOf(ctx, k)
	if err != nil || cl == nil || aws.ToString(cl.Status) == "deleting" {
		return err
	}
	if err := c.ours("cluster", id, cl.TagList, k); err != nil {
		return err
	}
	tags := env.StatusLabels(s)
	if u := tags[env.LabelURL]; tagValue(u) != u {
		delete(tags, env.LabelURL)
	}
	err = c.tag(ctx, aws.ToString(cl.DBClusterArn), tags)
	var nf *types.DBClusterNotFoundFault
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return c.explain(err, "tag the status of "+id)
	}
	return nil
}

// Find implements env.Recorder: k's cluster and writer as Resources lists
// them, with two requests.
func (c *Cloner) Find(ctx context.Context, q env.Query, k env.Key) ([]env.Resource, error) {
	id, cl, err := c.clusterOf(ctx, k)
	if err != nil {
		return nil, err
	}
	inst, err := c.instance(ctx, writerID(id))
	if err != nil {
		return nil, err
	}
	if q.Owner == "" {
		q.Owner = c.opts().Owner
	}
	var out []env.Resource
	if cl != nil {
		r := c.resource(q, KindCluster, id, cl.TagList, aws.ToTime(cl.ClusterCreateTime), false)
		r.Address = address(cl)
		out = append(out, r)
	}
	if inst != nil {
		out = append(out, c.resource(q, KindInstance, writerID(id), inst.TagList, aws.ToTime(inst.InstanceCreateTime), false))
	}
	return env.Of(out, k), nil
}

// address is where cl answers, host:port; "" before it has an endpoint.
func address(cl *types.DBCluster) string {
	host := aws.ToString(cl.Endpoint)
	if host == "" {
		return ""
	}
	port := int(aws.ToInt32(cl.Port))
	if port == 0 {
		port = 5432
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
