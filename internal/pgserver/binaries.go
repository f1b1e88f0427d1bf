package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// MinMajor is the oldest PostgreSQL major version prenv runs.
const MinMajor = 14

// ErrBinaries is wrapped when the PostgreSQL server binaries are missing or too old.
var ErrBinaries = errors.New("postgresql server binaries")

// Binaries locates one installation of PostgreSQL.
type Binaries struct {
	Dir     string // directory holding postgres, initdb, pg_ctl, pg_dump, pg_restore, psql
	Major   int
	Version string // as printed by postgres --version
}

// Path returns the path of the named program.
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)

// FindBinaries finds the server binaries: in dir when given, else the
// directory of postgres on PATH, else the newest of the distributions'
// usual places. It returns an error wrapping ErrBinaries, saying how to
// install them, when they are missing or older than MinMajor.
func FindBinaries(ctx context.Context, dir string) (Binaries, error) {
	var candidates []string
	if dir != "" {
		candidates = []string{dir}
	} else {
		if p, err := exec.LookPath("postgres"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				candidates = append(candidates, filepath.Dir(real))
			}
			candidates = append(candidates, filepath.Dir(p))
		}
		for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin", "/opt/homebrew/bin", "/usr/local/pgsql/bin"} {
			m, _ := filepath.Glob(pattern)
			sort.Sort(sort.Reverse(byVersion(m)))
			candidates = append(candidates, m...)
		}
	}
	for _, d := range candidates {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			continue
		}
		out, err := exec.CommandContext(ctx, filepath.Join(d, "postgres"), "--version").Output()
		if err != nil {
			continue
		}
		m := versionRE.FindStringSubmatch(string(out))
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(m[1])
		b := Binaries{Dir: d, Major: major, Version: strings.TrimSpace(string(out))}
		if major < MinMajor {
			return b, fmt.Errorf("%w: %s in %s is PostgreSQL %d, prenv needs %d or newer: install a newer server (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@16) or set database.localpg.bin_dir",
				ErrBinaries, b.Version, d, major, MinMajor)
		}
		for _, tool := range []string{"initdb", "pg_dump", "pg_restore"} {
			if _, err := os.Stat(filepath.Join(d, tool)); err != nil {
				return b, fmt.Errorf("%w: %s is missing from %s: install the full server package or set database.localpg.bin_dir", ErrBinaries, tool, d)
			}
		}
		return b, nil
	}
	where := "on PATH or in /usr/lib/postgresql/*/bin"
	if dir != "" {
		where = "in " + dir + " (database.localpg.bin_dir)"
	}
	return Binaries{}, fmt.Errorf("%w: no postgres %s: install PostgreSQL %d or newer (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@16) or set database.localpg.bin_dir",
		ErrBinaries, where, MinMajor)
}

type byVersion []string

func (v byVersion) Len() int      { return len(v) }
func (v byVersion) Swap(i, j int) { v[i], v[j] = v[j], v[i] }
func (v byVersion) Less(i, j int) bool {
	return num(v[i]) < num(v[j])
}

var digits = regexp.MustCompile(`\d+`)

func num(s string) int {
	n, _ := strconv.Atoi(digits.FindString(s))
	return n
}
