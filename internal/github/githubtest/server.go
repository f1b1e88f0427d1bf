// Package githubtest is a GitHub REST API for tests: an HTTP server
// answering, in GitHub's shapes, the calls prenv makes (deployments and
// their statuses, issue comments with pagination, pull requests, GitHub App
// installation tokens), with rate-limit responses on demand.
package githubtest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake GitHub.
type Server struct {
	URL string
	// Token is the token calls must carry (or an installation token).
	Token string
	// AppKey, if set, is the public key of the GitHub App whose JWTs are
	// accepted for /app and /repos/*/installation.
	AppKey *rsa.PublicKey
	// PageSize of list answers (GitHub's per_page is honoured up to it).
	PageSize int

	mu          sync.Mutex
	Deployments []*Deployment
	Comments    map[string][]*Comment // "owner/repo#N"
	Pulls       map[string][]*PR      // "owner/repo"
	Calls       []string              // "METHOD path"
	faults      []Fault
	nextID      int64
	Installed   map[string]int64 // repository → installation id
	issued      map[string]time.Time
	// PullsError, if set, is the status /pulls answers with.
	PullsError int
	// CheckRuns are the check runs created, oldest first.
	CheckRuns []CheckRun
	// PersonalToken makes the token a personal access token's: GitHub
	// refuses it the checks API.
	PersonalToken bool
}

// CheckRun is a check run as created.
type CheckRun struct {
	Repo       string `json:"-"`
	Name       string `json:"name"`
	HeadSHA    string `json:"head_sha"`
	Status     string `json:"status"`
	Conclusion string `json:"conclusion"`
	DetailsURL string `json:"details_url"`
	Output     struct {
		Title   string `json:"title"`
		Summary string `json:"summary"`
		Text    string `json:"text"`
	} `json:"output"`
}

// Deployment is a deployment with its statuses.
type Deployment struct {
	ID          int64             `json:"id"`
	Repo        string            `json:"-"`
	SHA         string            `json:"sha"`
	Ref         string            `json:"ref"`
	Environment string            `json:"environment"`
	Transient   bool              `json:"transient_environment"`
	AutoMerge   bool              `json:"-"`
	Required    []string          `json:"-"`
	Statuses    []json.RawMessage `json:"-"`
}

// Comment is an issue comment.
type Comment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
}

// PR is a pull request as the API returns it.
type PR = map[string]any

// Fault is a response given instead of the next call's.
type Fault struct {
	Status  int
	Headers map[string]string
	Message string
}

// New starts a fake GitHub accepting token.
func New(t testing.TB, token string) *Server {
	s := &Server{Token: token, PageSize: 100, Comments: map[string][]*Comment{}, Pulls: map[string][]*PR{}, Installed: map[string]int64{}, issued: map[string]time.Time{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Fail makes the next calls answer with faults, in order.
func (s *Server) Fail(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// SecondaryLimit is GitHub's answer when a secondary rate limit is hit.
func SecondaryLimit() Fault {
	return Fault{Status: http.StatusForbidden, Message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}
}

// CallCount returns how many calls started with prefix ("POST /repos/...").
func (s *Server) CallCount(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.Calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// SetPulls sets the pull requests of repo.
func (s *Server) SetPulls(repo string, prs ...PR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Pulls[repo] = nil
	for _, p := range prs {
		p := p
		s.Pulls[repo] = append(s.Pulls[repo], &p)
	}
}

// CommentsOf returns the comments of repo#n.
func (s *Server) CommentsOf(repo string, n int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.Comments[fmt.Sprintf("%s#%d", repo, n)] {
		out = append(out, *c)
	}
	return out
}

// StatusesOf returns the states of the statuses of repo's deployments to
// environment, oldest first, as "sha:state".
func (s *Server) StatusesOf(repo, environment string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.Deployments {
		if d.Repo != repo || d.Environment != environment {
			continue
		}
		for _, raw := range d.Statuses {
			var st struct{ State string }
			json.Unmarshal(raw, &st)
			out = append(out, d.SHA+":"+st.State)
		}
	}
	return out
}

// LastStatus returns the newest status of repo's deployments to
// environment, decoded.
func (s *Server) LastStatus(repo, environment string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last json.RawMessage
	for _, d := range s.Deployments {
		if d.Repo == repo && d.Environment == environment && len(d.Statuses) > 0 {
			last = d.Statuses[len(d.Statuses)-1]
		}
	}
	var m map[string]any
	json.Unmarshal(last, &m)
	return m
}

var (
	reDeployments = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/deployments$`)
	reStatuses    = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/deployments/(\d+)/statuses$`)
	reComments    = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$`)
	reComment     = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$`)
	rePulls       = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/pulls$`)
	rePull        = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/pulls/(\d+)$`)
	reInstall     = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/installation$`)
	reTokens      = regexp.MustCompile(`^/app/installations/(\d+)/access_tokens$`)
	reCheckRuns   = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/check-runs$`)
)

// CheckRunsOf returns the check runs created on repo.
func (s *Server) CheckRunsOf(repo string) []CheckRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CheckRun
	for _, c := range s.CheckRuns {
		if c.Repo == repo {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Calls = append(s.Calls, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		for k, v := range f.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(f.Status)
		json.NewEncoder(w).Encode(map[string]string{"message": f.Message, "documentation_url": "https://docs.github.com/rest"})
		return
	}
	auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	jwtPath := reInstall.MatchString(r.URL.Path) || reTokens.MatchString(r.URL.Path)
	if jwtPath {
		if s.AppKey == nil || !s.validJWT(auth) {
			s.fail(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
			return
		}
	} else if auth == "" || (auth != s.Token && s.issued[auth].IsZero()) {
		s.fail(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	var raw []byte
	if r.Body != nil {
		raw, _ = io.ReadAll(r.Body)
	}
	var body map[string]any
	json.Unmarshal(raw, &body)
	p := r.URL.Path
	switch {
	case reInstall.MatchString(p):
		m := reInstall.FindStringSubmatch(p)
		id, ok := s.Installed[m[1]]
		if !ok {
			s.fail(w, http.StatusNotFound, "Not Found")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"id": id})
	case reTokens.MatchString(p) && r.Method == http.MethodPost:
		s.nextID++
		tok := fmt.Sprintf("ghs_installation%d", s.nextID)
		s.issued[tok] = time.Now().Add(time.Hour)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_at": s.issued[tok].UTC().Format(time.RFC3339)})
	case reDeployments.MatchString(p) && r.Method == http.MethodPost:
		repo := reDeployments.FindStringSubmatch(p)[1]
		s.nextID++
		d := &Deployment{ID: s.nextID, Repo: repo, SHA: str(body["ref"]), Ref: str(body["ref"]), Environment: str(body["environment"]),
			Transient: body["transient_environment"] == true, AutoMerge: body["auto_merge"] != false}
		if rc, ok := body["required_contexts"].([]any); ok {
			d.Required = []string{}
			for _, c := range rc {
				d.Required = append(d.Required, str(c))
			}
		}
		if d.AutoMerge || d.Required == nil {
			// GitHub would merge the default branch in or wait for checks:
			// a preview must do neither.
			s.fail(w, http.StatusConflict, "auto_merge must be false and required_contexts [] for a preview deployment")
			return
		}
		s.Deployments = append(s.Deployments, d)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(d)
	case reDeployments.MatchString(p) && r.Method == http.MethodGet:
		repo := reDeployments.FindStringSubmatch(p)[1]
		var out []*Deployment
		for i := len(s.Deployments) - 1; i >= 0; i-- {
			d := s.Deployments[i]
			if d.Repo == repo && (r.URL.Query().Get("environment") == "" || d.Environment == r.URL.Query().Get("environment")) {
				out = append(out, d)
			}
		}
		s.page(w, r, len(out), func(a, b int) any { return out[a:b] })
	case reStatuses.MatchString(p) && r.Method == http.MethodPost:
		id, _ := strconv.ParseInt(reStatuses.FindStringSubmatch(p)[2], 10, 64)
		for _, d := range s.Deployments {
			if d.ID == id {
				switch str(body["state"]) {
				case "error", "failure", "inactive", "in_progress", "queued", "pending", "success":
				default:
					s.fail(w, http.StatusUnprocessableEntity, "Validation Failed: state")
					return
				}
				raw, _ := json.Marshal(body)
				d.Statuses = append(d.Statuses, raw)
				w.WriteHeader(http.StatusCreated)
				w.Write(raw)
				return
			}
		}
		s.fail(w, http.StatusNotFound, "Not Found")
	case reComments.MatchString(p) && r.Method == http.MethodGet:
		m := reComments.FindStringSubmatch(p)
		list := s.Comments[m[1]+"#"+m[2]]
		s.page(w, r, len(list), func(a, b int) any { return list[a:b] })
	case reComments.MatchString(p) && r.Method == http.MethodPost:
		m := reComments.FindStringSubmatch(p)
		s.nextID++
		c := &Comment{ID: s.nextID, Body: str(body["body"])}
		s.Comments[m[1]+"#"+m[2]] = append(s.Comments[m[1]+"#"+m[2]], c)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(c)
	case reComment.MatchString(p) && r.Method == http.MethodPatch:
		id, _ := strconv.ParseInt(reComment.FindStringSubmatch(p)[2], 10, 64)
		for _, list := range s.Comments {
			for _, c := range list {
				if c.ID == id {
					c.Body = str(body["body"])
					json.NewEncoder(w).Encode(c)
					return
				}
			}
		}
		s.fail(w, http.StatusNotFound, "Not Found")
	case reCheckRuns.MatchString(p) && r.Method == http.MethodPost:
		if s.PersonalToken {
			s.fail(w, http.StatusForbidden, "You must authenticate via a GitHub App.")
			return
		}
		var c CheckRun
		if err := json.Unmarshal(raw, &c); err != nil {
			s.fail(w, http.StatusBadRequest, "Problems parsing JSON")
			return
		}
		c.Repo = reCheckRuns.FindStringSubmatch(p)[1]
		valid := c.Name != "" && c.HeadSHA != "" && c.Output.Title != "" && c.Output.Summary != "" &&
			len(c.Output.Summary) <= 65535 && len(c.Output.Text) <= 65535
		switch {
		case c.Status == "completed":
			valid = valid && slices.Contains([]string{"action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"}, c.Conclusion)
		case c.Status == "" || c.Status == "queued" || c.Status == "in_progress":
			valid = valid && c.Conclusion == ""
		default:
			valid = false
		}
		if !valid {
			s.fail(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		s.CheckRuns = append(s.CheckRuns, c)
		s.nextID++
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": s.nextID, "name": c.Name, "head_sha": c.HeadSHA, "status": c.Status, "conclusion": c.Conclusion})
	case rePulls.MatchString(p) && r.Method == http.MethodGet:
		if s.PullsError != 0 {
			s.fail(w, s.PullsError, "Server Error")
			return
		}
		repo := rePulls.FindStringSubmatch(p)[1]
		state := r.URL.Query().Get("state")
		var out []*PR
		for _, pr := range s.Pulls[repo] {
			if state == "" || state == "all" || (*pr)["state"] == state {
				out = append(out, pr)
			}
		}
		sort.SliceStable(out, func(i, j int) bool { return num((*out[i])["number"]) > num((*out[j])["number"]) })
		s.page(w, r, len(out), func(a, b int) any { return out[a:b] })
	case rePull.MatchString(p) && r.Method == http.MethodGet:
		m := rePull.FindStringSubmatch(p)
		n, _ := strconv.Atoi(m[2])
		for _, pr := range s.Pulls[m[1]] {
			if num((*pr)["number"]) == n {
				json.NewEncoder(w).Encode(pr)
				return
			}
		}
		s.fail(w, http.StatusNotFound, "Not Found")
	default:
		s.fail(w, http.StatusNotFound, "Not Found")
	}
}

// page writes items [a, b) of a list of n for the request's page and
// per_page, with GitHub's Link header.
func (s *Server) page(w http.ResponseWriter, r *http.Request, n int, slice func(a, b int) any) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 || per > s.PageSize {
		per = min(30, s.PageSize)
		if r.URL.Query().Get("per_page") != "" {
			per = s.PageSize
		}
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page < 1 {
		page = 1
	}
	a, b := min(n, (page-1)*per), min(n, page*per)
	if b < n {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(page+1))
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, s.URL, r.URL.Path, q.Encode()))
	}
	json.NewEncoder(w).Encode(slice(a, b))
}

func (s *Server) fail(w http.ResponseWriter, status int, msg string) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (s *Server) validJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(s.AppKey, crypto.SHA256, sum[:], sig) != nil {
		return false
	}
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Exp int64 `json:"exp"`
		Iat int64 `json:"iat"`
	}
	json.Unmarshal(claims, &c)
	now := time.Now().Unix()
	return c.Iat <= now && c.Exp > now && c.Exp-c.Iat <= 600
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}
