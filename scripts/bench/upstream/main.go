// Command upstream is the small app the load script puts behind both
// Gatehouse and a bare reverse proxy: it answers every request with a
// short HTML page.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:19001", "address")
	flag.Parse()
	page := []byte("<!doctype html><title>app</title><p>Hello from the app behind the gateway. This page stands in for a small dynamic response.</p>\n")
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(page)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
