// Package webhook makes environments follow pull requests from GitHub's
// webhooks: a receiver that verifies and durably queues deliveries within
// milliseconds, a worker that carries them out (per environment in order,
// newer commits superseding older ones, a close never undone by a late
// delivery), and a reconciler for the deliveries GitHub never made.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/store"
)

// Path is where prenv serve receives GitHub's webhooks.
const Path = "/webhooks/github"

// Receiver answers GitHub's deliveries: it verifies their signature, queues
// them durably and returns; a Worker carries them out.
type Receiver struct {
	Secret []byte
	Queue  store.Queue
	// Notify, if set, is called after a delivery is queued.
	Notify func()
	Log    *slog.Logger
}

// handled are the pull_request actions prenv acts on.
var handled = map[string]bool{"opened": true, "reopened": true, "synchronize": true, "closed": true, "labeled": true, "unlabeled": true}

func reply(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (r *Receiver) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// ServeHTTP implements http.Handler.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, "GitHub delivers webhooks with POST")
		return
	}
	if len(r.Secret) == 0 {
		// Never accept unsigned deliveries.
		reply(w, http.StatusServiceUnavailable, "webhooks are off: set github.webhook_secret (or PRENV_GITHUB_WEBHOOK_SECRET) to the webhook's secret")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, github.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		reply(w, http.StatusRequestEntityTooLarge, "a delivery is at most 25 MB")
		return
	}
	if err != nil {
		reply(w, http.StatusBadRequest, "reading the delivery: "+err.Error())
		return
	}
	if err := github.Verify(r.Secret, body, req.Header.Get("X-Hub-Signature-256")); err != nil {
		r.log().Warn("webhook refused", "delivery", req.Header.Get("X-GitHub-Delivery"), "error", err)
		reply(w, http.StatusUnauthorized, err.Error())
		return
	}
	event, id := req.Header.Get("X-GitHub-Event"), req.Header.Get("X-GitHub-Delivery")
	switch event {
	case "ping":
		reply(w, http.StatusOK, "pong")
		return
	case "pull_request":
	default:
		reply(w, http.StatusAccepted, "event "+event+" is not one prenv acts on: ignored")
		return
	}
	if id == "" {
		reply(w, http.StatusBadRequest, "X-GitHub-Delivery is missing")
		return
	}
	e, err := github.ParsePullRequestEvent(body)
	if err != nil {
		reply(w, http.StatusBadRequest, err.Error())
		return
	}
	if !handled[e.Action] {
		reply(w, http.StatusAccepted, "action "+e.Action+" is not one prenv acts on: ignored")
		return
	}
	fresh, err := r.Queue.Enqueue(req.Context(), store.Delivery{ID: id, Event: event, Body: body, Subject: fmt.Sprintf("%s#%d", e.Repository.FullName, e.Number)})
	if err != nil {
		r.log().Error("webhook not queued", "delivery", id, "error", err)
		reply(w, http.StatusServiceUnavailable, "the delivery could not be queued; GitHub can redeliver it")
		return
	}
	if !fresh {
		reply(w, http.StatusOK, "delivery "+id+" was already received: carried out once")
		return
	}
	if r.Notify != nil {
		r.Notify()
	}
	reply(w, http.StatusAccepted, "queued")
}
