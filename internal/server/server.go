package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prenv/prenv/internal/runtime/local"
	"github.com/prenv/prenv/internal/store"
)

// AuthUser is the user name of the environments' basic auth.
const AuthUser = "prenv"

// Server is prenv serve's HTTP server.
type Server struct {
	Listen     string
	Password   string // basic auth of environments and the index
	Token      string // bearer token of the local runtime's API
	Supervisor *local.Supervisor
	Store      store.Store
	// Webhooks, if set, receives GitHub's deliveries at /webhooks/github.
	Webhooks http.Handler
	// LogFile, if set, names the file with an environment's output (the
	// local runtime's), shown at /envs/{name}/log.
	LogFile func(name string) string
	Log     *slog.Logger
}

// Port is the port part of Listen.
func (s *Server) Port() string {
	_, p, _ := net.SplitHostPort(s.Listen)
	return p
}

// EnvURL is the address of environment name behind the proxy.
func (s *Server) EnvURL(name string) string {
	return "http://" + name + ".localhost:" + s.Port()
}

// Handler returns the server's handler.
func (s *Server) Handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Prenv", "1")
		fmt.Fprintln(w, "ok")
	})
	api.Handle("/api/v1/local/", s.bearer(s.Supervisor.Handler()))
	api.Handle("GET /api/v1/envs", s.basic("", http.HandlerFunc(s.listEnvs)))
	if s.Webhooks != nil {
		api.Handle("/webhooks/github", s.Webhooks) // signed by GitHub: no basic auth
	}
	api.Handle("GET /{$}", s.basic("", http.HandlerFunc(s.index)))
	api.Handle("GET /envs/{name}/log", s.basic("", http.HandlerFunc(s.envLog)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Robots-Tag", "noindex, nofollow")
		if name := envName(r.Host); name != "" {
			s.basic(name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.proxy(w, r, name) })).ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// envName returns the environment named by a host such as
// pr-12.localhost:8080, or "" for the server itself.
func envName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if net.ParseIP(host) != nil || host == "localhost" || !strings.Contains(host, ".") {
		return ""
	}
	label, _, _ := strings.Cut(host, ".")
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
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
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
