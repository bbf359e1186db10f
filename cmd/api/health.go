package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// healthCommand implements `api health`: it asks the running API on this
// host for /api/health and exits 0 when the answer is 200. Container health
// checks call it so that images need no curl.
func healthCommand(httpAddr string) int {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "api health: HTTP_ADDR:", err)
		return 2
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/api/health", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "api health:", err)
		return 1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	fmt.Println(string(body))
	if res.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
