// Command leakapp is a hostile preview app for prenv's tests: it reports
// who it runs as, its environment, and what it can read of files and
// directories it should not.
package main

import (
	"encoding/json"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"uid": os.Getuid(), "gid": os.Getgid(), "env": os.Environ()})
	})
	// /read?path=P: the content of file P, or the names in directory P.
	http.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		out := map[string]any{"path": p}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				out["error"] = err.Error()
			} else {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				out["content"] = names
			}
		} else if data, err := os.ReadFile(p); err != nil {
			out["error"] = err.Error()
		} else {
			out["content"] = string(data)
		}
		json.NewEncoder(w).Encode(out)
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
