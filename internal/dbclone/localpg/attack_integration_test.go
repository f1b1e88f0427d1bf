package localpg

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/testenv"
)

// asNobody runs a program as the local user nobody and returns its output.
func asNobody(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("the attack needs the user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSWORD=", "PGCONNECT_TIMEOUT=5"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The attack of issue 9: with a PRENV_HOME too deep for a socket path,
// clones used a predictable directory in /tmp; a local user who made it
// first reached the socket, where "local all all trust" made them the
// superuser, and COPY ... TO PROGRAM ran their command as postgres.
func TestClone_NoLocalUserBecomesTheSuperuser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the attack is made as the user nobody, which needs root to switch to; CI runs as root")
	}
	bin, _ := testenv.Postgres(t)
	// A temp directory of the test's own, like /tmp: anyone may create in it.
	tmp, err := os.MkdirTemp("/tmp", "a9-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o777|os.ModeSticky)
	t.Setenv("TMPDIR", tmp)

	home := filepath.Join(testenv.Home(t), strings.Repeat("deep-directory-", 5))
	os.MkdirAll(home, 0o755)
	testenv.Golden(t, home, testenv.PeopleSQL)
	c := newCloner(t, home, "prenv")
	k := env.Key{PR: 1}
	sock := pgserver.SocketDir(filepath.Join(c.dir(k.Name()), "run"))
	if !strings.HasPrefix(sock, tmp) {
		t.Fatalf("socket directory %s is not the fallback in the temp directory: the test does not test the attack", sock)
	}
	// The attacker makes the directory prenv would use, open to everyone
	// (the golden build, made first, left its base: the attacker comes first).
	if base := filepath.Dir(sock); base != tmp {
		os.RemoveAll(base)
	}
	if out, err := asNobody(t, "/bin/sh", "-c", "umask 0; mkdir -p "+sock); err != nil {
		t.Fatalf("as nobody, make %s: %v %s", sock, err, out)
	}
	ctx := context.Background()
	_, err = c.Clone(ctx, dbclonetest.Request(k))
	if err == nil || !strings.Contains(err.Error(), "not made by prenv") {
		t.Fatalf("clone with a socket directory made by another user: err = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(sock, ".s.PGSQL."+strconv.Itoa(c.FirstPort))); err == nil {
		t.Fatal("a server put its socket in the attacker's directory")
	}

	// Without the attacker's directory, the clone works and nobody is still
	// not the superuser: not over the socket, not over TCP.
	if base := filepath.Dir(sock); base != tmp {
		os.RemoveAll(base)
	} else {
		os.RemoveAll(sock)
	}
	db, err := c.Clone(ctx, dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	pwned := filepath.Join(tmp, "pwned")
	attack := "COPY (SELECT 1) TO PROGRAM 'touch " + pwned + "'"
	for _, host := range []string{sock, "127.0.0.1"} {
		out, err := asNobody(t, bin.Path("psql"), "-h", host, "-p", strconv.Itoa(db.Port), "-U", "postgres", "-d", "postgres", "-w", "-c", attack)
		if err == nil {
			t.Errorf("as nobody, psql -h %s -U postgres ran COPY TO PROGRAM:\n%s", host, out)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("the attacker's program ran as postgres")
	}
	for _, dir := range []string{filepath.Join(c.dir(k.Name()), "data"), filepath.Join(home, "golden", "1", "data")} {
		hba, err := os.ReadFile(filepath.Join(dir, "pg_hba.conf"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(hba), "\n") {
			if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && f[len(f)-1] == "trust" {
				t.Errorf("%s/pg_hba.conf trusts: %q", dir, line)
			}
		}
	}
	// prenv itself still reaches the superuser (peer, mapped from its user).
	if err := c.server(bin, *c.user, Manifest{Name: k.Name(), Port: db.Port}).Exec(ctx, "postgres", "SELECT 1"); err != nil {
		t.Fatalf("prenv as the superuser over the socket: %v", err)
	}
}
