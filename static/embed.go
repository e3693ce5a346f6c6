// Package static holds the stylesheet, the icon and the htmx files, embedded in the
// binary. The htmx files are copied into dist/ from npm's node_modules by
// `make assets`; they are not part of the repository.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sync"
)

//go:embed app.css noscript.css favicon.svg all:dist
var files embed.FS

// FS returns the embedded files, rooted at this folder.
func FS() fs.FS { return files }

// Scripts lists the htmx files every page loads, in load order.
var Scripts = []string{"dist/htmx.min.js", "dist/hx-sse.min.js", "dist/hx-upsert.min.js"}

var (
	hashOnce sync.Once
	hashes   map[string]string
)

// Version returns a short content hash of the named file, or "" when the
// file is not embedded. It changes whenever the file does, so URLs carrying
// it can be cached for ever.
func Version(name string) string {
	hashOnce.Do(func() {
		hashes = make(map[string]string)
		_ = fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := files.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			hashes[path] = hex.EncodeToString(sum[:6])
			return nil
		})
	})
	return hashes[name]
}

// URL returns the path a page uses for the named file, with its version.
func URL(name string) string {
	return "/static/" + name + "?v=" + Version(name)
}

// Missing returns the Scripts that are not embedded (the binary was built
// without `make assets`).
func Missing() []string {
	var out []string
	for _, s := range Scripts {
		if Version(s) == "" {
			out = append(out, s)
		}
	}
	return out
}
