package handlers

import (
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/hxchat/hxchat/static"
)

// handleStatic serves the embedded assets. A URL carrying the file's current
// version (as the pages make them) is cached for a year; others revalidate.
func handleStatic() http.HandlerFunc {
	files := http.FileServerFS(static.FS())
	return func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if name == "" || strings.HasSuffix(name, "/") || strings.HasPrefix(path.Base(name), ".") {
			renderError(w, r, http.StatusNotFound, "Not found", "There is no file at this address.")
			return
		}
		if v := r.URL.Query().Get("v"); v != "" && v == static.Version(name) {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		// Whole files only: the assets are small, a range of a compressed
		// answer would describe bytes it does not carry, and thousands of
		// one-byte ranges would multiply a small request into megabytes.
		r2.Header.Del("Range")
		r2.Header.Del("If-Range")
		files.ServeHTTP(w, r2)
	}
}

// handleFavicon answers clients that ask for /favicon.ico without reading
// the page's icon link.
func handleFavicon() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(static.FS(), "favicon.svg")
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		_, _ = w.Write(b)
	}
}
