package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prenv/prenv/internal/rehearsal"
	"github.com/prenv/prenv/internal/store"
)

// AuthUser is the user name of the environments' basic auth.
const AuthUser = "prenv"

// Server is prenv serve's HTTP server.
type Server struct {
	Listen string
	// PublicURL is where people reach prenv serve (public_url), such as
	// https://prenv.example.com: its host is one of prenv's own, and with a
	// real Domain its scheme and port make the environments' URLs.
	PublicURL string
	// Domain is the parent of the environments' host names (serve.domain):
	// environment pr-12 answers at pr-12.<Domain>. Default localhost.
	Domain     string
	Password   string // basic auth of environments and the index
	Token      string // bearer token of the local runtime's API
	Supervisor Apps
	Store      store.Store
	// Webhooks, if set, receives GitHub's deliveries at /webhooks/github.
	Webhooks http.Handler
	// Metrics, if set, answers GET /metrics (Prometheus's text format).
	Metrics http.Handler
	// Ready, if set, says whether serve can do its work (GET
	// /api/v1/ready answers 503 with its error otherwise).
	Ready func(ctx context.Context) error
	// LogFile, if set, names the file with an environment's output (the
	// local runtime's), shown at /envs/{name}/log.
	LogFile func(name string) string
	Log     *slog.Logger

	// The connection timeouts of Run; zero means the Default ones. Long
	// routes (the proxy, the local runtime's API) lift the read deadline
	// once the body is in and bound each write instead of the whole
	// response: see long.
	ReadHeaderTimeout time.Duration // the request line and headers
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration // the whole response; on long routes, each write
	IdleTimeout       time.Duration // a keep-alive connection waiting for its next request
}

// The default timeouts of prenv serve's connections. A webhook delivery (at
// most 25 MB) arrives well within ReadTimeout; GitHub itself gives up after
// 10 s.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultWriteTimeout      = time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
)

// Apps is what the server needs of whatever runs the environments' apps
// (the local runtime's supervisor): where an environment's app listens,
// and the API the runtime calls. The server knows no more of it.
type Apps interface {
	Route(name string) (port int, ok bool)
	Handler() http.Handler
}

// Port is the port part of Listen.
func (s *Server) Port() string {
	_, p, _ := net.SplitHostPort(s.Listen)
	return p
}

func (s *Server) domain() string {
	if s.Domain == "" {
		return "localhost"
	}
	return strings.ToLower(strings.TrimSuffix(s.Domain, "."))
}

// EnvURL is the address of environment name behind the proxy:
// http://<name>.<domain>:<port of Listen> when the domain is localhost (or
// under it) or PublicURL is unset, since then people reach prenv serve
// directly; else PublicURL's scheme and port (none unless it has one), since
// whatever serves PublicURL (a load balancer, an ingress with TLS) is what
// serves the environments' wildcard name too.
func (s *Server) EnvURL(name string) string {
	host := name + "." + s.domain()
	u, err := url.Parse(s.PublicURL)
	if s.PublicURL == "" || err != nil || u.Host == "" || isLocalhost(s.domain()) {
		return "http://" + host + ":" + s.Port()
	}
	if p := u.Port(); p != "" {
		host += ":" + p
	}
	return u.Scheme + "://" + host
}

func isLocalhost(name string) bool {
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}

// Handler returns the server's handler. A request's Host says whom it is
// for: prenv's own hosts (see own) get the API, the index and the webhooks;
// pr-N.<domain> gets environment pr-N behind basic auth; any other host is
// answered 421 Misdirected Request and reaches neither.
func (s *Server) Handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Prenv", "1")
		fmt.Fprintln(w, "ok")
	})
	// Readiness: the store answers (a replica that cannot reach it takes
	// no webhook deliveries); liveness is /api/v1/health.
	api.HandleFunc("GET /api/v1/ready", func(w http.ResponseWriter, r *http.Request) {
		if s.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := s.Ready(ctx); err != nil {
				// The store's error names its host and user: it goes to
				// the log, not to whoever asks.
				if s.Log != nil {
					s.Log.Warn("not ready: the store does not answer", "error", err)
				}
				http.Error(w, "not ready: the store does not answer", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	// A deploy waits for the app's health check: a long route.
	api.Handle("/api/v1/local/", s.bearer(s.long(s.Supervisor.Handler())))
	api.Handle("GET /api/v1/envs", s.basic("", http.HandlerFunc(s.listEnvs)))
	if s.Metrics != nil {
		// Counts and durations, no names: Prometheus scrapes without a login.
		api.Handle("GET /metrics", s.Metrics)
	}
	if s.Webhooks != nil {
		api.Handle("/webhooks/github", s.Webhooks) // signed by GitHub: no basic auth
	}
	api.Handle("GET /{$}", s.basic("", http.HandlerFunc(s.index)))
	api.Handle("GET /envs/{name}/log", s.basic("", http.HandlerFunc(s.envLog)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Robots-Tag", "noindex, nofollow")
		host := hostname(r.Host)
		if s.own(host) {
			api.ServeHTTP(w, r)
			return
		}
		if name := s.envName(host); name != "" {
			s.basic(name, s.long(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.proxy(w, r, name) }))).ServeHTTP(w, r)
			return
		}
		http.Error(w, fmt.Sprintf("prenv serves no site at %q: environments answer at pr-N.%s (serve.domain), prenv itself at its listen address and public_url", host, s.domain()),
			http.StatusMisdirectedRequest)
	})
}

// hostname is the lower-case host of a Host header, without port, brackets
// or trailing dot.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// own reports whether host is one of prenv serve's own: localhost, a
// loopback address, the host of Listen (any address when Listen's host is
// unspecified, as with :8080 or 0.0.0.0:8080), PublicURL's host, or none at
// all (HTTP/1.0). The port is not compared: a port-forward or a proxy in
// front changes it, and it is not what tells prenv's hosts from an
// environment's.
func (s *Server) own(host string) bool {
	listen, _, _ := net.SplitHostPort(s.Listen)
	listen = hostname(listen)
	switch {
	case host == "", host == "localhost", host == listen:
		return true
	case s.PublicURL != "":
		if u, err := url.Parse(s.PublicURL); err == nil && u.Hostname() != "" && hostname(u.Hostname()) == host {
			return true
		}
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	lip := net.ParseIP(listen)
	return ip.IsLoopback() || listen == "" || lip != nil && lip.IsUnspecified()
}

// envName returns the environment a host names, "" if none: exactly one
// DNS label of an environment's name (pr-12, or pr-12-<repo>-<hash> for
// another repository, as env.Key.Name makes them) followed by ".<domain>".
func (s *Server) envName(host string) string {
	label, ok := strings.CutSuffix(host, "."+s.domain())
	if !ok || len(label) > 63 || !strings.HasPrefix(label, "pr-") || strings.HasSuffix(label, "-") {
		return ""
	}
	for _, c := range label {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return ""
		}
	}
	return label
}

func (s *Server) bearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.Token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
			http.Error(w, "missing or wrong API token (PRENV_HOME/serve.token)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) basic(realm string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		okUser := subtle.ConstantTimeCompare([]byte(user), []byte(AuthUser)) == 1
		okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(s.Password)) == 1
		if !ok || !okUser || !okPass || s.Password == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="prenv `+realm+`", charset="UTF-8"`)
			http.Error(w, "authentication required: user prenv, password from 'prenv status'", http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization") // the app never sees prenv's password
		next.ServeHTTP(w, r)
	})
}

func (s *Server) proxy(w http.ResponseWriter, r *http.Request, name string) {
	port, ok := s.Supervisor.Route(name)
	if !ok {
		http.Error(w, fmt.Sprintf("no environment %s is running here: see 'prenv ls' and 'prenv status'", name), http.StatusNotFound)
		return
	}
	target := &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, fmt.Sprintf("environment %s does not answer (%v): see 'prenv logs'", name, err), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

type envView struct {
	PR     int    `json:"pr"`
	Repo   string `json:"repository"`
	Name   string `json:"name"`
	State  string `json:"state"`
	URL    string `json:"url"`
	Commit string `json:"commit"`
	Age    string `json:"age"`
}

func (s *Server) envs(ctx context.Context) ([]envView, error) {
	if s.Store == nil {
		return nil, errors.New("no store")
	}
	list, err := s.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []envView{}
	for _, e := range list {
		if e.State == "deleted" {
			continue
		}
		out = append(out, envView{PR: e.Key.PR, Repo: e.Key.Repo, Name: e.Name, State: string(e.State), URL: e.URL, Commit: e.Commit,
			Age: time.Since(e.CreatedAt).Round(time.Second).String()})
	}
	return out, nil
}

func (s *Server) listEnvs(w http.ResponseWriter, r *http.Request) {
	list, err := s.envs(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>prenv</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}td,th{padding:.3rem .8rem;text-align:left;border-bottom:1px solid #ddd}</style></head>
<body><h1>prenv</h1><table><tr><th>PR</th><th>State</th><th>Commit</th><th>Age</th><th>URL</th></tr>
{{range .}}<tr><td>{{.Repo}}#{{.PR}}</td><td>{{.State}}</td><td>{{.Commit}}</td><td>{{.Age}}</td><td>{{if .URL}}<a href="{{.URL}}">{{.URL}}</a>{{else}}database only{{end}}</td></tr>
{{else}}<tr><td colspan="5">No environments. Run <code>prenv up --pr N</code>.</td></tr>{{end}}</table></body></html>`))

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	list, err := s.envs(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = indexPage.Execute(w, list)
}

// envLog shows an environment's state, its last run with the output of a
// failed step, and the end of its log: where a deployment's log_url leads.
func (s *Server) envLog(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	list, err := s.Store.List(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, e := range list {
		if e.Name != name {
			continue
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff") // the page holds what the pull request's code printed
		fmt.Fprintf(w, "%s (%s): %s\n", e.Name, e.Key, e.State)
		if e.Commit != "" {
			fmt.Fprintf(w, "serving: %s\n", e.Commit)
		}
		if e.Error != "" {
			fmt.Fprintf(w, "error: %s\n", e.Error)
		}
		if run, err := s.Store.LastRun(r.Context(), e.Key); err == nil {
			fmt.Fprintf(w, "\nlast run: %s of %s, %s, started %s\n", run.Kind, run.Commit, run.State, run.StartedAt.UTC().Format(time.RFC3339))
			for _, st := range run.Steps {
				fmt.Fprintf(w, "  %-16s %6.2fs\n", st.Name, st.Seconds)
			}
			if run.Error != "" {
				fmt.Fprintf(w, "  error: %s\n", run.Error)
			}
			if run.Output != "" {
				fmt.Fprintf(w, "\n%s\n", strings.TrimRight(run.Output, "\n"))
			}
		}
		if m, err := s.Store.LastMigration(r.Context(), e.Key); err == nil {
			var rep rehearsal.Report
			if err := json.Unmarshal(m.Migration, &rep); err == nil {
				fmt.Fprintf(w, "\n--- the migration rehearsal of %s ---\n%s", m.Commit, rep.Text())
			}
		}
		if s.LogFile != nil {
			if data, err := os.ReadFile(s.LogFile(name)); err == nil {
				lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
				if len(lines) > 200 {
					lines = lines[len(lines)-200:]
				}
				fmt.Fprintf(w, "\n--- the last %d lines of its log ---\n%s\n", len(lines), strings.Join(lines, "\n"))
			}
		}
		return
	}
	http.Error(w, "no environment "+name+": see 'prenv ls'", http.StatusNotFound)
}

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.Handler(),
		ReadHeaderTimeout: or(s.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       or(s.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      or(s.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       or(s.IdleTimeout, DefaultIdleTimeout),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// long lets an authenticated route take as long as its work does: the
// local runtime's deploy waits for an app's health check, and the proxy
// carries whatever an app streams (server-sent events, long polls, large
// downloads). Only authenticated requests get here, so what an anonymous
// client can hold open stays bounded by every timeout.
//
// The body must still arrive within ReadTimeout. Once it has, the read
// deadline is lifted: net/http cancels a request's context when its read
// deadline passes while the handler runs, which would cut a long response
// short. Each write, rather than the whole response, must finish within
// WriteTimeout, so a client that stops reading is still cut off.
func (s *Server) long(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// The deadlines cannot be set on every ResponseWriter (a recorder in
		// a test): then there are none to lift or extend.
		lift := func() { _ = rc.SetReadDeadline(time.Time{}) }
		if r.Body == nil || r.Body == http.NoBody {
			lift()
		} else {
			r.Body = &liftAtEOF{ReadCloser: r.Body, lift: lift}
		}
		dw := &writeDeadline{ResponseWriter: w, rc: rc, d: or(s.WriteTimeout, DefaultWriteTimeout)}
		dw.extend()
		next.ServeHTTP(dw, r)
		dw.extend() // the server writes the end of the response after the handler returns
	})
}

// liftAtEOF calls lift once the body has been read to its end.
type liftAtEOF struct {
	io.ReadCloser
	lift func()
	done bool
}

func (b *liftAtEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		b.lift()
	}
	return n, err
}

// writeDeadline gives each write and flush its own WriteTimeout.
type writeDeadline struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *writeDeadline) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

func (w *writeDeadline) Write(p []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(p)
}

// FlushError is what http.ResponseController (and so the reverse proxy) calls to flush.
func (w *writeDeadline) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection (the proxy
// hijacks it for WebSocket upgrades; net/http then clears its deadlines).
func (w *writeDeadline) Unwrap() http.ResponseWriter { return w.ResponseWriter }
