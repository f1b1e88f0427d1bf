package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/prenv/prenv/internal/config"
)

// pinOwner writes cfg's owner id into its prenv.yaml when the file does
// not say it (the default, prenv, applies then): every runner and every
// machine then read the same one from the file, and changing it becomes a
// visible edit. The value is the one in effect, so nothing made under it
// becomes foreign. It says what it did; a file it cannot read is left.
func (a *app) pinOwner(cfg config.Config) error {
	if cfg.Source == "" || cfg.Source == "defaults" {
		fmt.Fprintf(a.opts.Stdout, "no prenv.yaml: every runner uses the default owner id %q; write owner: %s in prenv.yaml to keep it when the default changes\n", cfg.Owner, cfg.Owner)
		return nil
	}
	data, err := os.ReadFile(cfg.Source)
	if err != nil {
		return err
	}
	manual := fmt.Sprintf("write owner: %q in %s yourself, so that every runner reads the same one", cfg.Owner, cfg.Source)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		fmt.Fprintf(a.opts.Stdout, "%s is not a plain mapping prenv can edit: %s\n", cfg.Source, manual)
		return nil
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "owner" {
			return nil
		}
	}
	line := fmt.Sprintf("owner: %q  # this installation's owner id, on every resource it makes; the same on every runner. Changing it leaves what exists to be removed by hand.\n", cfg.Owner)
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
	fmt.Fprintf(a.opts.Stdout, "wrote owner: %q in %s: every runner reads the same owner id (another installation in the same cluster or AWS account needs an owner id of its own)\n", cfg.Owner, cfg.Source)
	return nil
}
