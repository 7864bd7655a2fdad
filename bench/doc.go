// Package bench holds Skiff's Go benchmarks: API request latency measured
// through the real HTTP stack and client-go against an in-process API
// server (see api_bench_test.go). Run them with
//
//	go test -run '^$' -bench . -benchtime 2s ./bench/
//
// Each benchmark reports, besides ns/op, latency percentiles as custom
// metrics (p50-ms, p99-ms). The command `skiff bench` measures a running
// cluster instead.
package bench
