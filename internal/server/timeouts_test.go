package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/webhook"
)

// Short timeouts, so that the tests see them act; slack is what the
// server may take beyond one before the connection is seen closed.
const (
	headerTimeout = 300 * time.Millisecond
	readTimeout   = 500 * time.Millisecond
	writeTimeout  = 500 * time.Millisecond
	idleTimeout   = 300 * time.Millisecond
	slack         = time.Second
)

func timed(t *testing.T, s *Server) string {
	s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout = headerTimeout, readTimeout, writeTimeout, idleTimeout
	if s.Webhooks == nil {
		s.Webhooks = &webhook.Receiver{Secret: []byte("s3cret")}
	}
	return run(t, s)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle writes head, then one byte of more every 50 ms, until the
// server stops taking them or the test ends.
func trickle(t *testing.T, c net.Conn, head, more string) {
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte{more[i%len(more)]}); err != nil {
				return
			}
		}
	}()
}

// closedWithin reads c (through r, if buffered) until the server closes it
// and returns what it sent; it fails the test if c is still open after d.
func closedWithin(t *testing.T, c net.Conn, r io.Reader, d time.Duration) string {
	t.Helper()
	if r == nil {
		r = c
	}
	c.SetReadDeadline(time.Now().Add(d))
	data, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open after %v; the server sent %q", d, data)
	}
	return string(data)
}

func TestServe_ASlowlorisHeaderIsCutOff(t *testing.T) {
	addr := timed(t, &Server{})
	c := dial(t, addr)
	trickle(t, c, "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", "abcdefgh")
	if got := closedWithin(t, c, nil, headerTimeout+slack); strings.Contains(got, " 200 ") {
		t.Fatalf("answered a request whose header never ended: %q", got)
	}
}

func TestServe_ATrickledBodyIsCutOff(t *testing.T) {
	backend := app(t, "pr-1")
	addr := timed(t, &Server{Supervisor: routes{ports: map[string]int{"pr-1": backend}}})
	for name, head := range map[string]string{
		// Anyone may post to the webhook: the body comes before its signature is checked.
		"webhook": "POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: ping\r\nContent-Length: 1000\r\n\r\n",
		// With the login, on the long route of the proxy: the body is still bounded.
		"proxy": "POST / HTTP/1.1\r\nHost: pr-1.localhost\r\nAuthorization: Basic cHJlbnY6cHc=\r\nContent-Length: 1000\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			trickle(t, c, head, "{}")
			if got := closedWithin(t, c, nil, readTimeout+slack); strings.HasPrefix(got, "HTTP/1.1 2") {
				t.Fatalf("took a body of 1000 bytes trickled at 20 a second: %q", got)
			}
		})
	}
}

func TestServe_AnIdleKeepAliveConnectionIsClosed(t *testing.T) {
	addr := timed(t, &Server{})
	c := dial(t, addr)
	r := bufio.NewReader(c)
	for i := 0; i < 2; i++ { // it stays open while in use
		if _, err := io.WriteString(c, "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil || resp.StatusCode != 200 || resp.Close {
			t.Fatalf("request %d on a keep-alive connection: %v %v", i, resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if rest := closedWithin(t, c, r, idleTimeout+slack); rest != "" {
		t.Fatalf("unexpected bytes on an idle connection: %q", rest)
	}
}

// A long route outlives every timeout: an app that thinks before its first
// byte, then streams for longer than the read and write timeouts together.
func TestServe_TheProxyCarriesResponsesLongerThanTheTimeouts(t *testing.T) {
	const chunks = 12
	period := (readTimeout + writeTimeout) / 8 // 12 chunks: 1.5 times the two timeouts
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		think := time.NewTimer(readTimeout + writeTimeout)
		select {
		case <-think.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: got %q\n\n", body)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 0; i < chunks; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			http.NewResponseController(w).Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer slow.Close()
	port, _ := strconv.Atoi(slow.URL[strings.LastIndex(slow.URL, ":")+1:])
	addr := timed(t, &Server{Supervisor: routes{ports: map[string]int{"pr-1": port}}})
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			start := time.Now()
			code, _, body := send(t, method, addr, "pr-1.localhost", "/events", []byte("hi"), auth("prenv", "pw"))
			if code != 200 || !strings.Contains(body, fmt.Sprintf("data: %d\n", chunks-1)) {
				t.Fatalf("after %v: %d %q", time.Since(start), code, body)
			}
			if method == "POST" && !strings.Contains(body, `got "hi"`) {
				t.Fatalf("the app did not get the body: %q", body)
			}
			if took := time.Since(start); took < 2*(readTimeout+writeTimeout) {
				t.Fatalf("took %v: the test did not outlast the timeouts", took)
			}
		})
	}
}

// The local runtime's deploy waits for the app's health check, longer than
// the timeouts.
func TestServe_TheLocalRuntimesAPIMayTakeLongerThanTheTimeouts(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var spec struct{ Name string }
		body, _ := io.ReadAll(r.Body)
		spec.Name = string(body)
		wait := time.NewTimer(2 * (readTimeout + writeTimeout))
		select {
		case <-wait.C:
		case <-r.Context().Done():
			http.Error(w, "cancelled", 499)
			return
		}
		fmt.Fprintf(w, "deployed %s", spec.Name)
	})
	addr := timed(t, &Server{Token: "tok", Supervisor: routes{api: api}})
	code, _, body := send(t, "POST", addr, "127.0.0.1", "/api/v1/local/deploy", []byte("pr-1"), func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") })
	if code != 200 || body != "deployed pr-1" {
		t.Fatalf("deploy: %d %q", code, body)
	}
}

// An upgraded connection (a WebSocket) through the proxy lives past the
// timeouts: net/http clears a hijacked connection's deadlines.
func TestServe_AnUpgradedConnectionThroughTheProxyOutlivesTheTimeouts(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "upgrade to echo", http.StatusUpgradeRequired)
			return
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		io.Copy(c, rw)
	}))
	defer echo.Close()
	port, _ := strconv.Atoi(echo.URL[strings.LastIndex(echo.URL, ":")+1:])
	addr := timed(t, &Server{Supervisor: routes{ports: map[string]int{"pr-1": port}}})
	c := dial(t, addr)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: pr-1.localhost\r\nAuthorization: Basic cHJlbnY6cHc=\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Quiet for longer than every timeout, as a WebSocket often is.
	quiet := time.NewTimer(headerTimeout + readTimeout + writeTimeout + idleTimeout)
	<-quiet.C
	if _, err := io.WriteString(c, "still there?\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil || line != "still there?\n" {
		t.Fatalf("after a quiet spell: %q %v", line, err)
	}
}
