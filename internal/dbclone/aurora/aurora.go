// Package aurora is the cloner of prenv's production setup: each
// environment's database is an Aurora PostgreSQL cluster cloned
// copy-on-write from the golden cluster, with a writer instance of its own.
// It uses the AWS SDK for Go v2 through API, which lists only the RDS calls
// it makes.
package aurora

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	smithy "github.com/aws/smithy-go"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
)

// API is the part of the RDS API the cloner uses; *rds.Client implements it.
type API interface {
	RestoreDBClusterToPointInTime(context.Context, *rds.RestoreDBClusterToPointInTimeInput, ...func(*rds.Options)) (*rds.RestoreDBClusterToPointInTimeOutput, error)
	CreateDBInstance(context.Context, *rds.CreateDBInstanceInput, ...func(*rds.Options)) (*rds.CreateDBInstanceOutput, error)
	DescribeDBClusters(context.Context, *rds.DescribeDBClustersInput, ...func(*rds.Options)) (*rds.DescribeDBClustersOutput, error)
	DescribeDBInstances(context.Context, *rds.DescribeDBInstancesInput, ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	ModifyDBCluster(context.Context, *rds.ModifyDBClusterInput, ...func(*rds.Options)) (*rds.ModifyDBClusterOutput, error)
	DeleteDBInstance(context.Context, *rds.DeleteDBInstanceInput, ...func(*rds.Options)) (*rds.DeleteDBInstanceOutput, error)
	DeleteDBCluster(context.Context, *rds.DeleteDBClusterInput, ...func(*rds.Options)) (*rds.DeleteDBClusterOutput, error)
	AddTagsToResource(context.Context, *rds.AddTagsToResourceInput, ...func(*rds.Options)) (*rds.AddTagsToResourceOutput, error)
}

var (
	_ dbclone.Cloner  = (*Cloner)(nil)
	_ dbclone.Checker = (*Cloner)(nil)
)

// Credential modes: how each environment gets its own master password (a
// clone carries its source's).
const (
	// CredentialsPassword sets a new master password with ModifyDBCluster;
	// prenv keeps it under Home and hands it to the runtime.
	CredentialsPassword = "password"
	// CredentialsManaged lets RDS keep the master password in Secrets
	// Manager; the database's SecretRef names the secret.
	CredentialsManaged = "managed"
)

// Ready checks.
const (
	ReadySQL  = "sql"  // a SELECT 1 through the endpoint is required
	ReadyAPI  = "api"  // the API saying available is enough
	ReadyAuto = "auto" // SELECT 1 where the network allows it, else the API
)

// LabelGeneration is the tag with the golden data's generation: the nightly
// job that refreshes the golden cluster sets it there, and each clone
// carries the one it was made from (1 when the source has none).
const LabelGeneration = "prenv.dev/generation"

// Engine is the engine of the clusters and instances.
const Engine = "aurora-postgresql"

// Options configure the cloner.
type Options struct {
	Owner  string
	Source string // the golden cluster, when the team maintains it
	// Golden clones the newest generation prenv's nightly build promoted
	// (golden.source.aurora; GoldenBuilder) instead of Source.
	Golden         bool
	InstanceClass  string // default db.t4g.medium
	ParameterGroup string // cluster parameter group; empty keeps the default
	SecurityGroups []string
	// RequireSecurityGroups refuses to clone without SecurityGroups: the
	// clone would land in the VPC's default security group.
	RequireSecurityGroups bool
	SubnetGroup           string
	Prefix                string // of cluster identifiers; default "prenv-"
	DBName                string // the application's database in the cluster
	Credentials           string // password (default) | managed
	ReadyCheck            string // auto (default) | sql | api
	SSLMode               string // of the URLs; default require
	Region                string // for messages
	// Pool is the warm pool of ready clones (Fill keeps it; Clone claims
	// from it).
	Pool PoolOptions
	// WaitTimeout bounds each wait for a state (default 30 minutes); Poll
	// is the first interval between polls (default 5 s), growing to 30 s,
	// with jitter.
	WaitTimeout, Poll time.Duration
}

// Cloner makes Aurora clusters for environments.
type Cloner struct {
	API     API
	Options Options
	// Home keeps the master passwords prenv set (mode password). A run
	// without them (a fresh CI machine) reads the password back from
	// Keeper (the Kubernetes runtime's database Secret) when the cluster's
	// fingerprint tag says it is current, else sets a new one.
	Home   string
	Keeper dbclone.PasswordKeeper
	// Credentials, if set, are retrieved by Check so that missing
	// credentials are reported before anything happens.
	Credentials aws.CredentialsProvider
	Log         *slog.Logger
	// PoolLock, if set, serializes claims and fills of the warm pool among
	// every process that shares it (prenv serve's replicas: the store's
	// lock); without it, a file lock under Home.
	PoolLock func(ctx context.Context) (func(), error)
	// Claimed, if set, is called after a claim from the warm pool: the
	// pool's keeper replenishes it.
	Claimed func()
	// NoClaims, when set, says why this process neither claims from the
	// warm pool nor keeps it (its claims would not take turns with
	// others'): environments clone as without a pool.
	NoClaims string
}

// DefaultOptions are the aurora cloner's defaults, the one place they are
// written: prenv.yaml's defaults are these, and a zero field of a
// Cloner's Options means its default.
func DefaultOptions() Options {
	return Options{
		InstanceClass: "db.t4g.medium", RequireSecurityGroups: true, Prefix: "prenv-", DBName: "postgres",
		Credentials: CredentialsPassword, ReadyCheck: ReadyAuto, SSLMode: "require",
		WaitTimeout: 30 * time.Minute, Poll: 5 * time.Second,
	}
}

func (c *Cloner) opts() Options {
	o, d := c.Options, DefaultOptions()
	// RDS keeps identifiers in lower case whatever case they were given
	// in: compared as given, a capitalised source_cluster would not be
	// recognised as the golden source in what RDS lists.
	o.Source = strings.ToLower(o.Source)
	if o.InstanceClass == "" {
		o.InstanceClass = d.InstanceClass
	}
	if o.Prefix == "" {
		o.Prefix = d.Prefix
	}
	if o.Credentials == "" {
		o.Credentials = d.Credentials
	}
	if o.ReadyCheck == "" {
		o.ReadyCheck = d.ReadyCheck
	}
	if o.SSLMode == "" {
		o.SSLMode = d.SSLMode
	}
	if o.DBName == "" {
		o.DBName = d.DBName
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = d.WaitTimeout
	}
	if o.Poll <= 0 {
		o.Poll = d.Poll
	}
	return o
}

func (c *Cloner) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

var identifierRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// ClusterID is the cluster of environment k: the prefix and the
// environment's name, within RDS's identifier rules (1–63 characters, a
// letter first, no double or trailing hyphen) with room for the writer
// instance, ClusterID + "-writer".
func (c *Cloner) ClusterID(k env.Key) string {
	p := c.opts().Prefix
	return p + k.NameMax(63-len(p)-len("-writer"))
}

func writerID(cluster string) string { return cluster + "-writer" }

// ValidIdentifier reports whether id follows RDS's identifier rules.
func ValidIdentifier(id string) bool {
	return len(id) >= 1 && len(id) <= 63 && identifierRE.MatchString(id) && !strings.Contains(id, "--") && !strings.HasSuffix(id, "-")
}

var prefixRE = regexp.MustCompile(`^[a-z]([a-z0-9]|-[a-z0-9]){0,17}-$`)

var classRE = regexp.MustCompile(`^db\.[a-z0-9]+\.[a-z0-9]+$`)

// Validate checks the options before any request; errors name the
// configuration field.
func (o Options) Validate() error {
	var errs []string
	switch {
	case o.Source == "" && !o.Golden:
		errs = append(errs, "database.aurora.source_cluster is required: the golden cluster environments are cloned from (or let prenv build it nightly from production: golden.source.aurora)")
	case o.Source != "" && o.Golden:
		errs = append(errs, "database.aurora.source_cluster names a golden cluster you maintain, and golden.source.aurora makes prenv build golden clusters: keep one of the two")
	case o.Golden:
	case !ValidIdentifier(strings.ToLower(o.Source)):
		errs = append(errs, fmt.Sprintf("database.aurora.source_cluster %q is not a cluster identifier (1-63 letters, digits and hyphens, a letter first, no double or trailing hyphen)", o.Source))
	}
	if o.Prefix != "" && !prefixRE.MatchString(o.Prefix) {
		errs = append(errs, fmt.Sprintf("database.aurora.prefix %q: want up to 20 lower-case letters, digits and hyphens, a letter first, ending in a hyphen (prenv-)", o.Prefix))
	}
	if o.InstanceClass != "" && !classRE.MatchString(o.InstanceClass) {
		errs = append(errs, fmt.Sprintf("database.aurora.instance_class %q is not an instance class: want db.<family>.<size>, such as db.t4g.medium or db.r7g.large", o.InstanceClass))
	}
	if o.RequireSecurityGroups && len(o.SecurityGroups) == 0 {
		errs = append(errs, "database.aurora.security_groups is empty: without it a clone lands in the VPC's default security group; list the groups that let the app reach the database (or set require_security_groups: false)")
	}
	for _, sg := range o.SecurityGroups {
		if !strings.HasPrefix(sg, "sg-") {
			errs = append(errs, fmt.Sprintf("database.aurora.security_groups: %q is not a security group id (sg-...)", sg))
		}
	}
	switch o.Credentials {
	case "", CredentialsPassword, CredentialsManaged:
	default:
		errs = append(errs, fmt.Sprintf("database.aurora.credentials %q: want password or managed", o.Credentials))
	}
	switch o.ReadyCheck {
	case "", ReadyAuto, ReadySQL, ReadyAPI:
	default:
		errs = append(errs, fmt.Sprintf("database.aurora.ready_check %q: want auto, sql or api", o.ReadyCheck))
	}
	if p := o.Pool; p.Size < 0 || p.Size > 50 {
		errs = append(errs, fmt.Sprintf("database.aurora.pool.size %d: want 0 (no pool) to 50; each member is a cluster and a writer that run, and count against RDS's quotas, until claimed", p.Size))
	}
	if p := o.Pool; p.MaxAge != 0 && p.MaxAge < time.Hour {
		errs = append(errs, fmt.Sprintf("database.aurora.pool.max_age %s: at least 1h (a member takes up to tens of minutes to make; younger limits replace members before they are used), for example 24h", p.MaxAge))
	}
	if p := o.Pool; p.InstanceClass != "" && !classRE.MatchString(p.InstanceClass) {
		errs = append(errs, fmt.Sprintf("database.aurora.pool.instance_class %q is not an instance class: want db.<family>.<size>, such as db.t4g.medium", p.InstanceClass))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// ErrInvalid marks a configuration the cloner refuses.
var ErrInvalid = errors.New("invalid aurora configuration")

// code returns an AWS error's code, or "".
func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isThrottle(err error) bool {
	switch code(err) {
	case "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException":
		return true
	}
	return false
}

// explain turns an AWS error into one that says what to do.
func (c *Cloner) explain(err error, what string) error {
	// Every branch wraps err: callers still tell a throttle or a quota
	// fault by its code.
	switch code(err) {
	case "DBClusterQuotaExceededFault", "InstanceQuotaExceeded", "StorageQuotaExceeded":
		return fmt.Errorf("%s: the account's RDS quota is reached (%w): bring down environments that are no longer needed (prenv ls), or ask AWS for a higher quota: %w", what, err, dbclone.ErrCapacity)
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId", "ExpiredToken", "SignatureDoesNotMatch":
		return fmt.Errorf("%s: AWS refused prenv's credentials (%w): check the role's policy (docs/aurora.md lists the actions prenv needs)", what, err)
	}
	if isThrottle(err) {
		return fmt.Errorf("%s: RDS is still throttling after the SDK's retries (%w): fewer environments at once, or try again shortly", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tags are the tags of an environment's cluster and instance.
func tags(owner string, req dbclone.Request) []types.Tag {
	var out []types.Tag
	add := func(k, v string) { out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(v)}) }
	keys := make([]string, 0, len(req.Labels))
	for k := range req.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := req.Labels[k]
		switch k {
		case env.LabelKey:
			v = keyTag(req.Key) // '#' is not allowed in tag values
		case env.LabelOwner:
			continue
		}
		add(k, v)
	}
	add(env.LabelOwner, owner)
	add("Environment", "PR-"+strconv.Itoa(req.Key.PR))
	if _, ok := req.Labels[env.LabelEphemeral]; !ok {
		add(env.LabelEphemeral, "true")
	}
	return out
}

// keyTag writes an environment key in the characters AWS allows in tag
// values (letters, digits, space, _ . : / = + - @).
func keyTag(k env.Key) string { return k.Repo + ":" + strconv.Itoa(k.PR) }

func parseKeyTag(v string) (env.Key, error) {
	i := strings.LastIndex(v, ":")
	if i < 0 {
		return env.Key{}, fmt.Errorf("environment key tag %q: want owner/name:N", v)
	}
	n, err := env.ParsePR(v[i+1:])
	if err != nil {
		return env.Key{}, err
	}
	return env.NewKey(v[:i], n)
}

func tagMap(ts []types.Tag) map[string]string {
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func password() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// backoff waits before the next poll: the interval grows by half up to
// 30 s, with ±25% jitter so that many environments do not poll in step.
type backoff struct{ next, max time.Duration }

func newBackoff(first time.Duration) *backoff {
	return &backoff{next: first, max: max(first, 30*time.Second)}
}

func (b *backoff) wait(ctx context.Context) error {
	d := time.Duration(float64(b.next) * (0.75 + 0.5*mrand.Float64()))
	b.next = time.Duration(math.Min(float64(b.max), float64(b.next)*1.5))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// passwordFile is where mode password keeps a cluster's master password.
func (c *Cloner) passwordFile(id string) string {
	return filepath.Join(c.Home, "aurora", id+".password")
}

func (c *Cloner) storedPassword(id string) string {
	if c.Home == "" {
		return ""
	}
	data, err := os.ReadFile(c.passwordFile(id))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func (c *Cloner) storePassword(id, pw string) error {
	if c.Home == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.passwordFile(id)), 0o700); err != nil {
		return err
	}
	tmp := c.passwordFile(id) + ".tmp"
	if err := os.WriteFile(tmp, []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.passwordFile(id))
}

// Retryer is how prenv retries RDS requests: the SDK's adaptive mode, which
// on throttling slows every request of the process down to the rate RDS
// admits (so 20 environments in one prenv serve do not storm), on top of
// the standard retryer (exponential backoff with jitter, throttling and
// transient errors only) with more attempts and without its client-side
// retry quota: prenv's own waits are bounded, and many environments at
// once must not fail for lack of retry tokens.
func Retryer() aws.Retryer {
	return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
		o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) {
			so.MaxAttempts = 10
			so.MaxBackoff = 20 * time.Second
			so.RateLimiter = ratelimit.None
		})
	})
}
