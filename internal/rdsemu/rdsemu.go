// Package rdsemu is an emulator of the Amazon RDS Query API for the
// operations prenv's aurora cloner uses. It speaks the wire protocol (a
// form-encoded POST with Action and Version=2014-10-31, XML responses,
// ErrorResponse errors with AWS's codes), so the real AWS SDK pointed at it
// with an endpoint URL works. Clusters and instances follow RDS's state
// machine (creating → available, deleting → gone) with configurable delays;
// faults (quotas, throttling) can be injected. Cluster snapshots (RDS's
// automated ones, taken by a test hook, and manual ones) can be listed,
// taken, deleted and restored. A Backend can give each cluster a real
// PostgreSQL so that its endpoint answers SQL; one that is also a Cloner
// and a Snapshotter makes the data follow the clusters as on Aurora: a
// clone starts with its source's data as it is then, a snapshot keeps its
// cluster's data, a restore starts with the snapshot's.
package rdsemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIVersion is the RDS API version the emulator speaks.
const APIVersion = "2014-10-31"

const xmlns = "http://rds.amazonaws.com/doc/2014-10-31/"

// Options configure an emulator.
type Options struct {
	Region  string // default us-east-1
	Account string // default 123456789012
	// Sources are clusters that exist and are available from the start
	// (the golden clusters clones are made from).
	Sources []string
	// Delays of the state machine; zero is immediate.
	ClusterCreate, InstanceCreate, ClusterDelete, InstanceDelete, Modify time.Duration
	// SnapshotCreate is how long a cluster snapshot stays creating; its
	// data is the cluster's when it was taken all the same, as on RDS.
	SnapshotCreate time.Duration
	// ClusterQuota and InstanceQuota limit how many exist (sources
	// included); zero is 40, RDS's default.
	ClusterQuota, InstanceQuota int
	// ThrottleRate is the fraction of requests answered ThrottlingException
	// at random; RateLimit, if set, throttles requests beyond a sustained
	// rate per second (with a burst of the same size).
	ThrottleRate float64
	RateLimit    float64
	// Backend, if set, gives each restored cluster a real database.
	Backend Backend
	Log     *slog.Logger
	Now     func() time.Time
}

// Backend gives clusters real databases.
type Backend interface {
	// Create makes the database of cluster id, a copy of the backend's
	// golden data, and returns where it listens and its master user.
	Create(ctx context.Context, id string) (host string, port int, user, password string, err error)
	// SetPassword changes the master user's password.
	SetPassword(ctx context.Context, id, password string) error
	// Delete removes the database of cluster id.
	Delete(ctx context.Context, id string) error
}

// Endpoint is where a cluster's database answers, and its master user.
type Endpoint struct {
	Host           string
	Port           int
	User, Password string
}

// URL is the connection URL of database db at e.
func (e Endpoint) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(e.User, e.Password), Host: net.JoinHostPort(e.Host, strconv.Itoa(e.Port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Cloner is a Backend that copies a cluster's database. The emulator uses
// it, when the Backend is one, for a cluster restored from another that
// has a database of its own: the new cluster starts with a copy of that
// data as it is at that moment, and the two are independent from then on
// (Aurora documents a clone as "a separate and independent volume":
// writes to either, or deleting either, leave the other as it was).
type Cloner interface {
	// Clone makes the database of cluster id a consistent copy of the
	// database of cluster source as it is now, with source's master user
	// and password.
	Clone(ctx context.Context, id, source string) (Endpoint, error)
}

// Snapshotter is a Backend that keeps snapshots of databases. The
// emulator uses it, when the Backend is one, for snapshots of clusters
// that have a database of their own, and for restores from them.
type Snapshotter interface {
	// Snapshot keeps a consistent copy of the database of cluster as it is
	// now, under the name snap; it returns the copy's size in bytes.
	Snapshot(ctx context.Context, snap, cluster string) (int64, error)
	// Restore makes the database of cluster id a copy of snapshot snap.
	Restore(ctx context.Context, id, snap string) (Endpoint, error)
	// DeleteSnapshot removes snapshot snap; the databases restored from it
	// stay.
	DeleteSnapshot(ctx context.Context, snap string) error
}

// Stats count what the emulator was asked.
type Stats struct {
	Requests  int
	Throttled int
	ByAction  map[string]int
}

// Server is an emulator; it is an http.Handler.
type Server struct {
	opts Options

	mu        sync.Mutex
	clusters  map[string]*cluster
	instances map[string]*instance
	snapshots map[string]*snapshot
	stats     Stats
	tokens    float64
	last      time.Time
}

type cluster struct {
	ID, Engine, EngineVersion, MasterUser, ParameterGroup, SubnetGroup string
	SecurityGroups                                                     []string
	Tags                                                               []tag
	Created, ReadyAt, DeletedAt, ModifiedAt                            time.Time
	Deleting, DeletionProtection, ManagedSecret                        bool
	CloneGroup                                                         string
	Host                                                               string
	Port                                                               int
	Password                                                           string
	// HasDB says the Backend made a database for the cluster (AddSource's
	// clusters have none: clones of them get the backend's golden data).
	HasDB bool
	// making is true while the Backend makes the cluster's database: the
	// cluster is creating until it is there, whatever ClusterCreate says.
	making bool
	// copies counts the copies of its database being made (clones,
	// snapshots): a deleted cluster stays until they are done.
	copies int
}

// Snapshot types, as SnapshotType names them.
const (
	typeAutomated = "automated" // taken by RDS's automated backups (TakeSnapshot)
	typeManual    = "manual"    // CreateDBClusterSnapshot, or a final snapshot
)

type snapshot struct {
	ID, Cluster, Type, Engine, EngineVersion, MasterUser, Password string
	Port                                                           int
	Tags                                                           []tag
	Created, ReadyAt, ClusterCreated                               time.Time
	Size                                                           int64
	// HasData says the Snapshotter keeps the snapshot's data; restores
	// of a snapshot without it get the backend's golden data.
	HasData, Deleted bool
	making           bool
	restores         int // restores from it under way: its data stays until they are done
}

type instance struct {
	ID, Cluster, Class, Engine  string
	Tags                        []tag
	Created, ReadyAt, DeletedAt time.Time
	Deleting                    bool
	DeletionProtection          bool
}

type tag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

// New returns an emulator with opts.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if opts.ClusterQuota == 0 {
		opts.ClusterQuota = 40
	}
	if opts.InstanceQuota == 0 {
		opts.InstanceQuota = 40
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, clusters: map[string]*cluster{}, instances: map[string]*instance{}, snapshots: map[string]*snapshot{},
		stats: Stats{ByAction: map[string]int{}}}
	s.tokens, s.last = opts.RateLimit, opts.Now()
	for _, id := range opts.Sources {
		s.AddSource(id, nil)
	}
	return s
}

// AddSource makes cluster id exist, available, with tags (key, value
// pairs): a golden cluster clones are made from. It has no database of
// its own: the clusters restored from it, or from its snapshots, get the
// Backend's golden data.
func (s *Server) AddSource(id string, tags map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.source(id, tags)
	c.CloneGroup = newCloneGroup()
	s.clusters[id] = c
}

func (s *Server) source(id string, tags map[string]string) *cluster {
	now := s.opts.Now()
	c := &cluster{ID: id, Engine: "aurora-postgresql", EngineVersion: "16.4", MasterUser: "postgres", Created: now, ReadyAt: now,
		Host: s.endpoint(id), Port: 5432, Password: randID(16)}
	for k, v := range tags {
		c.Tags = append(c.Tags, tag{Key: k, Value: v})
	}
	sort.Slice(c.Tags, func(i, j int) bool { return c.Tags[i].Key < c.Tags[j].Key })
	return c
}

func newCloneGroup() string {
	return randID(8) + "-" + randID(4) + "-" + randID(4) + "-" + randID(4) + "-" + randID(12)
}

// ErrNoBackend is returned by the hooks that need Options.Backend.
var ErrNoBackend = errors.New("the emulator has no Backend (Options.Backend)")

// CreateSource is a test hook: cluster id exists at once, available, with
// tags, like AddSource's, but with a database of its own (a copy of the
// Backend's golden data) that clones and snapshots of it copy: a
// production cluster that a test writes to. A test reaches it as a user
// does: a master password set with ModifyDBCluster, the endpoint and the
// master user from DescribeDBClusters. It returns ErrNoBackend without a
// Backend, and a DBClusterAlreadyExistsFault if id exists.
func (s *Server) CreateSource(ctx context.Context, id string, tags map[string]string) error {
	if s.opts.Backend == nil {
		return ErrNoBackend
	}
	if err := validIdentifier("DBClusterIdentifier", id); err != nil {
		return err
	}
	s.mu.Lock()
	s.gc(ctx)
	if s.clusters[id] != nil {
		s.mu.Unlock()
		return fault(http.StatusBadRequest, "DBClusterAlreadyExistsFault", "DB Cluster already exists")
	}
	c := s.source(id, tags)
	c.making = true
	s.clusters[id] = c
	s.mu.Unlock()
	var ep Endpoint
	var err error
	ep.Host, ep.Port, ep.User, ep.Password, err = s.opts.Backend.Create(ctx, id)
	return s.made(ctx, c, ep, err)
}

// made ends the making of cluster c's database: with ep on success; on
// failure (err) the cluster is forgotten and an InternalFailure returned.
// A cluster lost meanwhile (LoseCluster) has its new database removed: the
// request that made it was answered before, on RDS.
func (s *Server) made(ctx context.Context, c *cluster, ep Endpoint, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.making = false
	if err != nil {
		if s.clusters[c.ID] == c {
			delete(s.clusters, c.ID)
		}
		return fault(http.StatusInternalServerError, "InternalFailure", "the emulator's database for %s: %v", c.ID, err)
	}
	c.Host, c.Port, c.MasterUser, c.Password = ep.Host, ep.Port, ep.User, ep.Password
	if s.clusters[c.ID] != c {
		s.deleteDB(ctx, c.ID)
		return nil
	}
	c.HasDB = true
	return nil
}

func (s *Server) deleteDB(ctx context.Context, id string) {
	if err := s.opts.Backend.Delete(ctx, id); err != nil {
		s.opts.Log.Warn("rds backend delete", "cluster", id, "error", err)
	}
}

// TakeSnapshot is a test hook: it snapshots cluster now, as RDS's
// automated backups do (automated; snapshotID "" names it
// rds:CLUSTER-YYYY-MM-DD-HH-MM from Options.Now, as RDS does), or as
// CreateDBClusterSnapshot does. The snapshot's SnapshotCreateTime is
// Options.Now(), and its data, when the cluster has a database of its own
// and the Backend is a Snapshotter, is the cluster's at this moment, even
// while the snapshot is creating (Options.SnapshotCreate); so is its
// master password. It returns the fault RDS would answer
// (DBClusterNotFoundFault, InvalidDBClusterStateFault,
// DBClusterSnapshotAlreadyExistsFault).
func (s *Server) TakeSnapshot(ctx context.Context, cluster, snapshotID string, automated bool) error {
	typ := typeManual
	if automated {
		typ = typeAutomated
		if snapshotID == "" {
			snapshotID = "rds:" + cluster + "-" + s.opts.Now().UTC().Format("2006-01-02-15-04")
		}
	}
	if _, err := s.snapshot(ctx, cluster, snapshotID, typ, nil); err != nil {
		return err
	}
	return nil
}

// snapshot takes snapshot id of cluster clusterID: the work of
// CreateDBClusterSnapshot, TakeSnapshot and a final snapshot.
func (s *Server) snapshot(ctx context.Context, clusterID, id, typ string, tags []tag) (*snapshot, *apiError) {
	s.mu.Lock()
	s.gc(ctx)
	now := s.opts.Now()
	c := s.clusters[clusterID]
	if c == nil || s.clusterStatus(c, now) == "" || s.clusterStatus(c, now) == "deleting" {
		s.mu.Unlock()
		return nil, fault(http.StatusNotFound, "DBClusterNotFoundFault", "DBCluster %s not found.", clusterID)
	}
	if st := s.clusterStatus(c, now); st != "available" {
		s.mu.Unlock()
		return nil, fault(http.StatusBadRequest, "InvalidDBClusterStateFault", "DBCluster %s is not in available state (it is %s).", clusterID, st)
	}
	sn, err := s.newSnapshot(c, id, typ, tags, now)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return sn, s.copyToSnapshot(ctx, c, sn)
}

// newSnapshot registers snapshot id of c, making. Called with mu held.
func (s *Server) newSnapshot(c *cluster, id, typ string, tags []tag, now time.Time) (*snapshot, *apiError) {
	if old := s.snapshots[id]; old != nil {
		return nil, fault(http.StatusBadRequest, "DBClusterSnapshotAlreadyExistsFault", "Cannot create the cluster snapshot because one with the identifier %s already exists.", id)
	}
	sn := &snapshot{ID: id, Cluster: c.ID, Type: typ, Engine: c.Engine, EngineVersion: c.EngineVersion, MasterUser: c.MasterUser,
		Password: c.Password, Port: c.Port, Tags: slices.Clone(tags), Created: now, ReadyAt: now.Add(s.opts.SnapshotCreate),
		ClusterCreated: c.Created, making: true}
	s.snapshots[id] = sn
	c.copies++
	return sn, nil
}

// copyToSnapshot has the Backend keep the data of c as snapshot sn, when
// it can. On failure sn is forgotten.
func (s *Server) copyToSnapshot(ctx context.Context, c *cluster, sn *snapshot) *apiError {
	has, size, err := s.backendSnapshot(ctx, c, sn)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotMade(c, sn, has, size, err)
}

// backendSnapshot copies the data of c into snapshot sn, when c has a
// database and the Backend is a Snapshotter; has says whether it did.
func (s *Server) backendSnapshot(ctx context.Context, c *cluster, sn *snapshot) (has bool, size int64, err error) {
	st, ok := s.opts.Backend.(Snapshotter)
	if !ok || !c.HasDB {
		return false, 0, nil
	}
	size, err = st.Snapshot(ctx, sn.ID, c.ID)
	return err == nil, size, err
}

// snapshotMade ends the making of snapshot sn of c; on failure (err) sn is
// forgotten. Called with mu held.
func (s *Server) snapshotMade(c *cluster, sn *snapshot, has bool, size int64, err error) *apiError {
	c.copies--
	sn.making = false
	if err != nil {
		delete(s.snapshots, sn.ID)
		return fault(http.StatusInternalServerError, "InternalFailure", "the emulator's copy of %s for snapshot %s: %v", c.ID, sn.ID, err)
	}
	sn.HasData, sn.Size = has, size
	return nil
}

// LoseCluster is a test hook: cluster id is gone at once and its
// instances stay, pointing at it. Real RDS shows such an instance while
// its cluster is being deleted (the console deletes a cluster as its last
// instance goes); the emulator's API cannot reach that state, since
// DeleteDBCluster refuses while instances exist, as RDS does. It reports
// whether the cluster existed.
func (s *Server) LoseCluster(id string) bool {
	s.mu.Lock()
	c := s.clusters[id]
	delete(s.clusters, id)
	s.mu.Unlock()
	if c != nil && c.HasDB {
		s.deleteDB(context.Background(), id)
	}
	return c != nil
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.ByAction = map[string]int{}
	for k, v := range s.stats.ByAction {
		out.ByAction[k] = v
	}
	return out
}

func randID(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func (s *Server) endpoint(id string) string {
	return fmt.Sprintf("%s.cluster-c0ffee0prenv.%s.rds.amazonaws.com", id, s.opts.Region)
}

func (s *Server) arn(kind, id string) string {
	return fmt.Sprintf("arn:aws:rds:%s:%s:%s:%s", s.opts.Region, s.opts.Account, kind, id)
}

// apiError is an error in RDS's shape.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func fault(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers one Query API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := randID(8) + "-" + randID(4) + "-" + randID(4) + "-" + randID(4) + "-" + randID(12)
	w.Header().Set("x-amzn-RequestId", reqID)
	if r.Method != http.MethodPost {
		s.fail(w, reqID, fault(http.StatusMethodNotAllowed, "InvalidAction", "the RDS Query API takes POST requests"))
		return
	}
	if r.Header.Get("Authorization") == "" {
		s.fail(w, reqID, fault(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		s.fail(w, reqID, fault(http.StatusBadRequest, "MalformedQueryString", "%v", err))
		return
	}
	action := r.PostForm.Get("Action")
	if action == "" {
		s.fail(w, reqID, fault(http.StatusBadRequest, "MissingAction", "Request is missing Action"))
		return
	}
	if v := r.PostForm.Get("Version"); v != APIVersion {
		s.fail(w, reqID, fault(http.StatusBadRequest, "InvalidParameterValue", "Version %q: this endpoint speaks %s", v, APIVersion))
		return
	}
	s.mu.Lock()
	s.stats.Requests++
	s.stats.ByAction[action]++
	throttled := s.throttle()
	if throttled {
		s.stats.Throttled++
	}
	s.mu.Unlock()
	if throttled {
		s.fail(w, reqID, fault(http.StatusBadRequest, "ThrottlingException", "Rate exceeded"))
		return
	}
	h, ok := handlers[action]
	if !ok {
		s.fail(w, reqID, fault(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service (the emulator implements %s)", action, strings.Join(actions(), ", ")))
		return
	}
	result, err := h(s, r.Context(), form(r.PostForm))
	if err != nil {
		ae, ok := err.(*apiError)
		if !ok {
			ae = fault(http.StatusInternalServerError, "InternalFailure", "%v", err)
		}
		s.opts.Log.Info("rds", "action", action, "error", ae.Code, "message", ae.Message)
		s.fail(w, reqID, ae)
		return
	}
	s.opts.Log.Info("rds", "action", action)
	// The whole response is encoded first and sent with its length, as RDS
	// sends it; a result that cannot be encoded is an InternalFailure, not
	// half a document.
	var body bytes.Buffer
	fmt.Fprintf(&body, `<%sResponse xmlns="%s">`, action, xmlns)
	if err := xml.NewEncoder(&body).EncodeElement(result, xml.StartElement{Name: xml.Name{Local: action + "Result"}}); err != nil {
		s.opts.Log.Error("rds: encode the result", "action", action, "error", err)
		s.fail(w, reqID, fault(http.StatusInternalServerError, "InternalFailure", "encode the result: %v", err))
		return
	}
	fmt.Fprintf(&body, "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>", reqID, action)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
	w.Write(body.Bytes())
}

// throttle reports whether this request is throttled. Called with mu held.
func (s *Server) throttle() bool {
	if s.opts.ThrottleRate > 0 && mrand.Float64() < s.opts.ThrottleRate {
		return true
	}
	if s.opts.RateLimit <= 0 {
		return false
	}
	now := s.opts.Now()
	s.tokens = math.Min(s.opts.RateLimit, s.tokens+now.Sub(s.last).Seconds()*s.opts.RateLimit)
	s.last = now
	if s.tokens < 1 {
		return true
	}
	s.tokens--
	return false
}

func (s *Server) fail(w http.ResponseWriter, reqID string, e *apiError) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Status)
	typ := "Sender"
	if e.Status >= 500 {
		typ = "Receiver"
	}
	var msg strings.Builder
	xml.EscapeText(&msg, []byte(e.Message))
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		xmlns, typ, e.Code, msg.String(), reqID)
}

// form reads the Query API's flattened parameters.
type form map[string][]string

func (f form) get(k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (f form) bool(k string) bool { return f.get(k) == "true" }

// list returns the members of a list parameter: Name.Member.1, Name.Member.2,
// ... (the member name is not checked).
func (f form) list(name string) []string {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\.[A-Za-z]+\.(\d+)$`)
	return f.indexed(re)
}

func (f form) indexed(re *regexp.Regexp) []string {
	type item struct {
		i int
		v string
	}
	var items []item
	for k, v := range f {
		if m := re.FindStringSubmatch(k); m != nil {
			i, _ := strconv.Atoi(m[1])
			items = append(items, item{i, v[0]})
		}
	}
	sort.Slice(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

var tagValueRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

// validTags applies AWS's rules on tags.
func validTags(ts []tag) *apiError {
	for _, t := range ts {
		if t.Key == "" || len(t.Key) > 128 || strings.HasPrefix(strings.ToLower(t.Key), "aws:") || !tagValueRE.MatchString(t.Key) {
			return fault(http.StatusBadRequest, "InvalidParameterValue", "Tag key %q is not valid: 1-128 of letters, digits, spaces and _ . : / = + - @, not starting with aws:", t.Key)
		}
		if len(t.Value) > 256 || !tagValueRE.MatchString(t.Value) {
			return fault(http.StatusBadRequest, "InvalidParameterValue", "Tag value %q of %s is not valid: up to 256 of letters, digits, spaces and _ . : / = + - @", t.Value, t.Key)
		}
	}
	return nil
}

// tags reads Tags.Tag.N.Key and .Value.
func (f form) tags() []tag {
	keys := map[int]*tag{}
	re := regexp.MustCompile(`^Tags\.[A-Za-z]+\.(\d+)\.(Key|Value)$`)
	for k, v := range f {
		m := re.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		if keys[i] == nil {
			keys[i] = &tag{}
		}
		if m[2] == "Key" {
			keys[i].Key = v[0]
		} else {
			keys[i].Value = v[0]
		}
	}
	idx := make([]int, 0, len(keys))
	for i := range keys {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]tag, 0, len(idx))
	for _, i := range idx {
		out = append(out, *keys[i])
	}
	return out
}

// filters reads Filters.Filter.N.Name and .Values.Value.M.
func (f form) filters() map[string][]string {
	out := map[string][]string{}
	re := regexp.MustCompile(`^Filters\.[A-Za-z]+\.(\d+)\.Name$`)
	for k, v := range f {
		m := re.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		vals := f.indexed(regexp.MustCompile(`^Filters\.[A-Za-z]+\.` + m[1] + `\.Values\.[A-Za-z]+\.(\d+)$`))
		out[v[0]] = append(out[v[0]], vals...)
	}
	return out
}

var identifierRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,62}$`)

// validIdentifier applies RDS's identifier rules.
func validIdentifier(param, id string) *apiError {
	if !identifierRE.MatchString(id) || strings.Contains(id, "--") || strings.HasSuffix(id, "-") {
		return fault(http.StatusBadRequest, "InvalidParameterValue",
			"The parameter %s is not a valid identifier. Identifiers must begin with a letter; must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen or contain two consecutive hyphens.", param)
	}
	return nil
}

// Status of a cluster now; "" when it is gone. Called with mu held.
func (s *Server) clusterStatus(c *cluster, now time.Time) string {
	switch {
	case c.Deleting && !now.Before(c.DeletedAt):
		return ""
	case c.Deleting:
		return "deleting"
	case now.Before(c.ReadyAt) || c.making:
		return "creating"
	case now.Before(c.ModifiedAt):
		return "resetting-master-credentials"
	}
	return "available"
}

func (s *Server) instanceStatus(i *instance, now time.Time) string {
	switch {
	case i.Deleting && !now.Before(i.DeletedAt):
		return ""
	case i.Deleting:
		return "deleting"
	case now.Before(i.ReadyAt):
		return "creating"
	}
	return "available"
}

// Status of a snapshot now; "" when it is gone.
func (s *Server) snapshotStatus(sn *snapshot, now time.Time) string {
	switch {
	case sn.Deleted:
		return ""
	case now.Before(sn.ReadyAt) || sn.making:
		return "creating"
	}
	return "available"
}

// gc forgets what is gone, releasing backends. A cluster whose database
// is being copied, or a snapshot being restored, stays until the copy is
// done. Called with mu held.
func (s *Server) gc(ctx context.Context) {
	now := s.opts.Now()
	for id, i := range s.instances {
		if s.instanceStatus(i, now) == "" {
			delete(s.instances, id)
		}
	}
	for id, c := range s.clusters {
		if s.clusterStatus(c, now) != "" || c.copies > 0 {
			continue
		}
		delete(s.clusters, id)
		if c.HasDB {
			s.deleteDB(ctx, id)
		}
		// A cluster's automated snapshots go with it; its manual ones
		// stay (RDS keeps automated backups only on request, and then
		// not as snapshots).
		for _, sn := range s.snapshots {
			if sn.Cluster == id && sn.Type == typeAutomated && !sn.Created.After(c.DeletedAt) {
				sn.Deleted = true
			}
		}
	}
	for id, sn := range s.snapshots {
		if s.snapshotStatus(sn, now) != "" || sn.restores > 0 {
			continue
		}
		delete(s.snapshots, id)
		if st, ok := s.opts.Backend.(Snapshotter); ok && sn.HasData {
			if err := st.DeleteSnapshot(ctx, id); err != nil {
				s.opts.Log.Warn("rds backend delete snapshot", "snapshot", id, "error", err)
			}
		}
	}
}
