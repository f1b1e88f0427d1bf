package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// noteHandler prints log records for people at a terminal: "note: message
// (key=value ...)", warnings as "warning: ...".
type noteHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
}

func newNoteHandler(w io.Writer, level slog.Level) *noteHandler {
	return &noteHandler{mu: &sync.Mutex{}, w: w, level: level}
}

func (h *noteHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *noteHandler) Handle(_ context.Context, r slog.Record) error {
	prefix := "note"
	switch {
	case r.Level >= slog.LevelError:
		prefix = "error"
	case r.Level >= slog.LevelWarn:
		prefix = "warning"
	case r.Level < slog.LevelInfo:
		prefix = "debug"
	}
	var kv []string
	add := func(a slog.Attr) bool {
		kv = append(kv, a.Key+"="+a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	line := prefix + ": " + r.Message
	if len(kv) > 0 {
		line += " (" + strings.Join(kv, " ") + ")"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintln(h.w, line)
	return err
}

func (h *noteHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &c
}

func (h *noteHandler) WithGroup(string) slog.Handler { return h }
