// Command web is the test web server Skiff ships as the image
// "docker.io/library/nginx:1.25", so the seed walkthrough's commands
// (kubectl create deployment web --image=nginx:1.25) run without a registry.
// It serves nginx's welcome page on :80 (or $PORT) and logs each request to
// stdout in nginx's combined format, like the real image.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"time"
)

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
	port := os.Getenv("PORT")
	if port == "" {
		port = "80"
	}
	host, _ := os.Hostname()
	logger := log.New(os.Stdout, "", 0)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "nginx/1.25.5")
		w.Header().Set("Content-Type", "text/html")
		body := fmt.Sprintf(welcome, host)
		_, _ = fmt.Fprint(w, body)
		logger.Printf(`%s - - [%s] "%s %s %s" 200 %d "-" "%s"`, r.RemoteAddr, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
			r.Method, r.URL.RequestURI(), r.Proto, len(body), r.UserAgent())
	})
	server := &http.Server{Addr: ":" + port, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "listening on :%s\n", port)
	if err := server.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
