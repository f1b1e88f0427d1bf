package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/prenv/prenv/internal/config"
)

var ownerID = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// initOwner is the owner id prenv init github pins in prenv.yaml: --owner
// when given, the one prenv.yaml or PRENV_OWNER names, else (the default
// prenv, which every installation shares and with which the nightly sweep
// deletes nothing on a shared account) one made from the repository's name.
// A --owner that contradicts prenv.yaml's is refused: it would make every
// environment that exists foreign.
func (a *app) initOwner(cfg config.Config, flag, dir string) (string, error) {
	named := cfg.Owner != config.Default().Owner || ownerInFile(cfg.Source)
	switch {
	case flag != "" && !ownerID.MatchString(flag):
		return "", usageError{fmt.Errorf("--owner %q: want lower-case letters, digits, '-', '.' or '_', at most 63, such as acme-shop (it is a Kubernetes label value and an AWS tag)", flag)}
	case flag != "" && named && flag != cfg.Owner:
		return "", usageError{fmt.Errorf("--owner %s: prenv.yaml (or PRENV_OWNER) already names owner %q, and what exists carries it: bring the environments down and change owner in prenv.yaml yourself; nothing was written", flag, cfg.Owner)}
	case flag != "":
		return flag, nil
	case named:
		return cfg.Owner, nil
	}
	name := cfg.Repository
	if name == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		name = filepath.Base(abs)
	}
	id := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(id) > 63 {
		id = strings.Trim(id[:63], "-")
	}
	if !ownerID.MatchString(id) {
		return "", usageError{fmt.Errorf("owner: prenv.yaml names none, and none can be made from %q: give --owner, such as --owner acme-shop", name)}
	}
	return id, nil
}

// ownerInFile says whether the prenv.yaml at path names an owner.
func ownerInFile(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return false
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "owner" {
			return true
		}
	}
	return false
}

// pinOwner writes owner into cfg's prenv.yaml when the file does not name
// one: every runner and every machine then read the same one from the
// file, and changing it becomes a visible edit. It says what it did, and
// what becomes of environments made under another owner id; a file it
// cannot edit is left, with what to write.
func (a *app) pinOwner(cfg config.Config, owner string) error {
	if cfg.Source == "" || cfg.Source == "defaults" {
		fmt.Fprintf(a.opts.Stdout, "no prenv.yaml: write owner: %s in one, so that every runner reads the same owner id\n", owner)
		return nil
	}
	if ownerInFile(cfg.Source) {
		if owner == config.Default().Owner {
			fmt.Fprintf(a.opts.Stdout, "%s names owner %q, the default every installation shares: the nightly sweep deletes nothing until it names this installation's own\n", cfg.Source, owner)
		}
		return nil
	}
	data, err := os.ReadFile(cfg.Source)
	if err != nil {
		return err
	}
	manual := fmt.Sprintf("write owner: %q in %s yourself, so that every runner reads the same one", owner, cfg.Source)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		fmt.Fprintf(a.opts.Stdout, "%s is not a plain mapping prenv can edit: %s\n", cfg.Source, manual)
		return nil
	}
	line := fmt.Sprintf("owner: %q  # this installation's owner id, on every resource it makes; the same on every runner. Changing it leaves what exists to be removed by hand.\n", owner)
	// After the version line when there is one, else first (after a
	// byte order mark).
	bom := []byte("\ufeff")
	var head []byte
	if bytes.HasPrefix(data, bom) {
		head, data = bom, data[len(bom):]
	}
	var out []byte
	if i := bytes.Index(data, []byte("version:")); i == 0 || i > 0 && data[i-1] == '\n' {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			out = append(append(append([]byte{}, data...), '\n'), line...)
		} else {
			out = append(append(append([]byte{}, data[:i+end+1]...), line...), data[i+end+1:]...)
		}
	} else {
		out = append([]byte(line), data...)
	}
	out = append(head, out...)
	// The file is replaced whole: a kill mid-write leaves the old one.
	path, err := filepath.EvalSymlinks(cfg.Source)
	if err != nil {
		return fmt.Errorf("%v: %s", err, manual)
	}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%v: %s", err, manual)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".prenv.yaml-*")
	if err != nil {
		return fmt.Errorf("%v: %s", err, manual)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(out)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), info.Mode().Perm())
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		return fmt.Errorf("%v: %s", werr, manual)
	}
	fmt.Fprintf(a.opts.Stdout, "wrote owner: %q in %s: every runner reads the same owner id; use it in the IAM role's prenv.dev/owner conditions (docs/aurora.md)\n", owner, cfg.Source)
	if owner != cfg.Owner {
		fmt.Fprintf(a.opts.Stdout, "environments made before under the owner id %q keep it and are foreign now: bring them down first with PRENV_OWNER=%s prenv down pr-N\n", cfg.Owner, cfg.Owner)
	}
	return nil
}
