// Command web is the test web server Skiff ships as the image
// "docker.io/library/nginx:1.25", so the seed walkthrough's commands
// (kubectl create deployment web --image=nginx:1.25) run without a registry.
// It serves nginx's welcome page on :80 (or $PORT) and logs each request to
// stdout in nginx's combined format, like the real image.
//
// Invoked as "echo-server" (the image "skiff.local/echo:1.0") it is an HTTP
// echo server instead: on :8080 (or $PORT) it answers every request with
// a JSON description of it (the serving pod's hostname, the client's
// address, method, path, query, headers and body), which is what tests of
// Services and proxies need to see who answered and what arrived.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// echo is the answer of the echo server.
type echo struct {
	Hostname   string              `json:"hostname"`
	RemoteAddr string              `json:"remoteAddr"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"`
	Headers    map[string][]string `json:"headers"`
	Body       string              `json:"body,omitempty"`
}

// echoHandler answers with the request, as JSON; bodies are cut at 1 MiB.
func echoHandler(host string, logger *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(echo{Hostname: host, RemoteAddr: r.RemoteAddr, Method: r.Method, Path: r.URL.Path,
			Query: r.URL.RawQuery, Headers: r.Header, Body: string(body)})
		logger.Printf("%s %s %s from %s", r.Method, r.URL.RequestURI(), r.Proto, r.RemoteAddr)
	})
}

const welcome = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. (Served by Skiff's test image on %s.)</p>
</body>
</html>
`

func main() {
	echoMode := filepath.Base(os.Args[0]) == "echo-server"
	port := os.Getenv("PORT")
	switch {
	case port != "":
	case echoMode:
		port = "8080"
	default:
		port = "80"
	}
	host, _ := os.Hostname()
	logger := log.New(os.Stdout, "", 0)
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "nginx/1.25.5")
		w.Header().Set("Content-Type", "text/html")
		body := fmt.Sprintf(welcome, host)
		_, _ = fmt.Fprint(w, body)
		logger.Printf(`%s - - [%s] "%s %s %s" 200 %d "-" "%s"`, r.RemoteAddr, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
			r.Method, r.URL.RequestURI(), r.Proto, len(body), r.UserAgent())
	})
	if echoMode {
		handler = echoHandler(host, logger)
	}
	server := &http.Server{Addr: ":" + port, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "listening on :%s\n", port)
	if err := server.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
