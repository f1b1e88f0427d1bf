package env

import (
	"testing"
	"time"
)

func TestStatusOf_TheLaterRecordWinsAndOnlyPrintableTextIsRead(t *testing.T) {
	k := Key{Repo: "acme/shop", PR: 4}
	at := time.Date(2026, 1, 2, 7, 0, 0, 0, time.UTC)
	res := func(kind string, s Status, extra map[string]string) Resource {
		l := StatusLabels(s)
		l[LabelOwner] = "prenv"
		for n, v := range extra {
			l[n] = v
		}
		return Resource{Provider: "p", Kind: kind, ID: "pr-4", Key: k, Labels: l}
	}
	older := res("namespace", Status{State: StateReady, Commit: "c1", URL: "https://a", UpdatedAt: at, ExpiresAt: at.Add(time.Hour)},
		map[string]string{LabelCreatedAt: at.Add(-time.Hour).Format(time.RFC3339)})
	newer := res("cluster", Status{State: StateFailed, Commit: "c2", UpdatedAt: at.Add(time.Millisecond), ExpiresAt: at.Add(2 * time.Hour)},
		map[string]string{LabelCreatedAt: at.Format(time.RFC3339)})
	newer.Address = "db.example:5432"
	foreign := res("cluster", Status{State: StateReady, Commit: "x"}, map[string]string{LabelOwner: "team-b"})
	got := StatusOf("prenv", []Resource{older, newer, foreign})[k]
	if got.State != StateFailed || got.Commit != "c2" || got.URL != "https://a" || !got.ExpiresAt.Equal(at.Add(2*time.Hour)) ||
		!got.CreatedAt.Equal(at.Add(-time.Hour)) || got.Database != "db.example:5432" || len(got.Resources) != 2 {
		t.Fatalf("StatusOf = %+v", got)
	}
	hostile := res("namespace", Status{State: StateReady, Commit: "c3\x1b]0;pwned\x07", URL: "https://x\n\x1b[2J", UpdatedAt: at.Add(time.Hour)}, nil)
	got = StatusOf("prenv", []Resource{hostile})[k]
	if got.Commit != "" || got.URL != "" || got.State != StateReady {
		t.Fatalf("control characters read from a namespace: %q %q", got.Commit, got.URL)
	}
	// A record dated in the future does not outrank the real ones, nor
	// does a state prenv never writes.
	future := res("namespace", Status{State: StateDeleted, Commit: "c9", UpdatedAt: time.Now().Add(24 * time.Hour)}, nil)
	unknown := res("namespace", Status{State: "pwned", Commit: "c8", UpdatedAt: at.Add(time.Hour)}, nil)
	if got := StatusOf("prenv", []Resource{newer, future, unknown})[k]; got.State != StateFailed || got.Commit != "c2" {
		t.Fatalf("a future or unknown record was read: %s at %s", got.State, got.Commit)
	}
	// Resources without a status (made by a run that has not finished)
	// say the environment exists.
	bare := Resource{Provider: "p", Kind: "cluster", ID: "x", Key: k, Labels: map[string]string{LabelOwner: "prenv"}}
	if got := StatusOf("prenv", []Resource{bare})[k]; got.State != StateInterrupted || got.Key != k {
		t.Fatalf("a resource without a status: %+v", got)
	}
}
