// Package rdsemu is an emulator of the Amazon RDS Query API for the
// operations prenv's aurora cloner uses. It speaks the wire protocol (a
// form-encoded POST with Action and Version=2014-10-31, XML responses,
// ErrorResponse errors with AWS's codes), so the real AWS SDK pointed at it
// with an endpoint URL works. Clusters and instances follow RDS's state
// machine (creating → available, deleting → gone) with configurable delays;
// faults (quotas, throttling) can be injected. A Backend can give each
// cluster a real PostgreSQL so that its endpoint answers SQL.
package rdsemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
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
	// Create makes the database of cluster id and returns where it listens
	// and its master user.
	Create(ctx context.Context, id string) (host string, port int, user, password string, err error)
	// SetPassword changes the master user's password.
	SetPassword(ctx context.Context, id, password string) error
	// Delete removes the database of cluster id.
	Delete(ctx context.Context, id string) error
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
	stats     Stats
	tokens    float64
	last      time.Time
}

type cluster struct {
	ID, Engine, EngineVersion, MasterUser, ParameterGroup, SubnetGroup string
	SecurityGroups                                                     []string
	Tags                                                               []tag
	Created, ReadyAt, DeletedAt, ModifiedAt                            time.Time
	Deleting, DeletionProtection, Source, ManagedSecret                bool
	CloneGroup                                                         string
	Host                                                               string
	Port                                                               int
	Password                                                           string
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
	s := &Server{opts: opts, clusters: map[string]*cluster{}, instances: map[string]*instance{}, stats: Stats{ByAction: map[string]int{}}}
	s.tokens, s.last = opts.RateLimit, opts.Now()
	for _, id := range opts.Sources {
		s.AddSource(id, nil)
	}
	return s
}

// AddSource makes cluster id exist, available, with tags (key, value
// pairs): a golden cluster clones are made from.
func (s *Server) AddSource(id string, tags map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	c := &cluster{ID: id, Engine: "aurora-postgresql", EngineVersion: "16.4", MasterUser: "postgres", Created: now, ReadyAt: now,
		Source: true, CloneGroup: randID(8) + "-" + randID(4), Host: s.endpoint(id), Port: 5432, Password: randID(16)}
	for k, v := range tags {
		c.Tags = append(c.Tags, tag{Key: k, Value: v})
	}
	sort.Slice(c.Tags, func(i, j int) bool { return c.Tags[i].Key < c.Tags[j].Key })
	s.clusters[id] = c
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
	if c != nil && s.opts.Backend != nil && !c.Source {
		if err := s.opts.Backend.Delete(context.Background(), id); err != nil {
			s.opts.Log.Warn("rds backend delete", "cluster", id, "error", err)
		}
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
	case now.Before(c.ReadyAt):
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

// gc forgets what is gone, releasing backends. Called with mu held.
func (s *Server) gc(ctx context.Context) {
	now := s.opts.Now()
	for id, i := range s.instances {
		if s.instanceStatus(i, now) == "" {
			delete(s.instances, id)
		}
	}
	for id, c := range s.clusters {
		if s.clusterStatus(c, now) == "" {
			delete(s.clusters, id)
			if s.opts.Backend != nil && !c.Source {
				if err := s.opts.Backend.Delete(ctx, id); err != nil {
					s.opts.Log.Warn("rds backend delete", "cluster", id, "error", err)
				}
			}
		}
	}
}
