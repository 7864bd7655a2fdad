package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"k8s.io/klog/v2"
)

// CRI log line fields: "<RFC3339Nano> <stream> <tag> <message>".
const (
	tagFull    = "F"
	tagPartial = "P"
)

// logEntry is one parsed line of a CRI log file.
type logEntry struct {
	ts     time.Time
	stream string // "stdout" or "stderr"
	// partial is set for a "P" line: msg continues in the next entry and
	// has no newline of its own.
	partial bool
	// msg is the content; a full entry's ends in "\n".
	msg []byte
}

// parseCRILogLine parses one line of a CRI log file, with or without its
// trailing newline.
func parseCRILogLine(line []byte) (logEntry, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	var e logEntry
	ts, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return e, fmt.Errorf("log line %q: no timestamp delimiter", truncate(line))
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return e, fmt.Errorf("log line %q: timestamp: %w", truncate(line), err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte(" "))
	if !ok || (string(stream) != "stdout" && string(stream) != "stderr") {
		return e, fmt.Errorf("log line %q: bad stream type", truncate(line))
	}
	tag, msg, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		// An empty message may lose its delimiter: "<ts> stdout F".
		tag, msg = rest, nil
	}
	switch string(tag) {
	case tagFull:
		e.msg = append(append(make([]byte, 0, len(msg)+1), msg...), '\n')
	case tagPartial:
		e.partial = true
		e.msg = append([]byte(nil), msg...)
	default:
		return e, fmt.Errorf("log line %q: unknown tag %q", truncate(line), tag)
	}
	e.ts, e.stream = t, string(stream)
	return e, nil
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// logOptions are containerLogs' query parameters.
type logOptions struct {
	follow, previous, timestamps bool
	// tail is the number of last lines to show; -1 means all.
	tail int64
	// since drops entries older than it; zero keeps all.
	since time.Time
	// limitBytes stops the output after that many bytes; -1 means no
	// limit.
	limitBytes int64
}

// parseLogOptions reads the query as upstream's kubelet does (PodLogOptions
// names), relative to now for sinceSeconds.
func parseLogOptions(q url.Values, now time.Time) (logOptions, error) {
	o := logOptions{tail: -1, limitBytes: -1}
	o.follow = boolParam(q, "follow")
	o.previous = boolParam(q, "previous")
	o.timestamps = boolParam(q, "timestamps")
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return o, fmt.Errorf("tailLines %q: must be a non-negative integer", v)
		}
		o.tail = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("limitBytes %q: must be a positive integer", v)
		}
		o.limitBytes = n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("sinceSeconds %q: must be a positive integer", v)
		}
		o.since = now.Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		if !o.since.IsZero() {
			return o, errors.New("at most one of sinceTime or sinceSeconds may be specified")
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, fmt.Errorf("sinceTime %q: %w", v, err)
		}
		o.since = t
	}
	return o, nil
}

func boolParam(q url.Values, key string) bool {
	v, ok := q[key]
	if !ok {
		return false
	}
	if len(v) == 0 || v[0] == "" {
		return true // a bare "?follow" as upstream's kubelet accepts
	}
	b, err := strconv.ParseBool(v[0])
	return err == nil && b
}

// errLimitReached ends a read once limitBytes were written.
var errLimitReached = errors.New("log byte limit reached")

// logWriter writes entries as the client asked: filtered by since,
// prefixed with their timestamp at the start of each line, cut at the
// byte limit.
type logWriter struct {
	w          io.Writer
	timestamps bool
	since      time.Time
	remaining  int64 // -1 for no limit
	// midLine is set after a partial entry: the next entry continues
	// its line and gets no timestamp.
	midLine bool
}

func (lw *logWriter) write(e logEntry) error {
	if !lw.since.IsZero() && e.ts.Before(lw.since) {
		return nil
	}
	out := e.msg
	if lw.timestamps && !lw.midLine {
		prefix := e.ts.UTC().Format(time.RFC3339Nano) + " "
		out = append([]byte(prefix), out...)
	}
	lw.midLine = e.partial
	if lw.remaining >= 0 && int64(len(out)) >= lw.remaining {
		_, err := lw.w.Write(out[:lw.remaining])
		lw.remaining = 0
		if err != nil {
			return err
		}
		return errLimitReached
	}
	if lw.remaining >= 0 {
		lw.remaining -= int64(len(out))
	}
	_, err := lw.w.Write(out)
	return err
}

// tailOffset returns the offset of the first of the last n lines of the
// first size bytes of r (a final newline ends the last line rather than
// starting an empty one).
func tailOffset(r io.ReaderAt, size, n int64) (int64, error) {
	if n <= 0 {
		return size, nil
	}
	end := size
	last := make([]byte, 1)
	if end > 0 {
		if _, err := r.ReadAt(last, end-1); err != nil {
			return 0, fmt.Errorf("reading the log's end: %w", err)
		}
		if last[0] == '\n' {
			end--
		}
	}
	buf := make([]byte, 32<<10)
	var found int64
	for end > 0 {
		start := max(0, end-int64(len(buf)))
		chunk := buf[:end-start]
		if _, err := r.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("reading the log: %w", err)
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] == '\n' {
				found++
				if found == n {
					return start + int64(i) + 1, nil
				}
			}
		}
		end = start
	}
	return 0, nil
}

// logFollower is what following needs besides the file: whether more can
// come, and when to look again.
type logFollower struct {
	running func(ctx context.Context) bool
	poll    time.Duration
	flush   func()
}

// copyLog writes the CRI log at path to lw as opts say. With f set it
// follows the file, checking every f.poll for new lines until the
// container stops running (then it drains the file and returns) or ctx
// ends. Malformed lines are skipped like upstream.
func copyLog(ctx context.Context, path string, opts logOptions, lw *logWriter, f *logFollower) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening log %s: %w", path, err)
	}
	defer file.Close()
	if opts.tail >= 0 {
		st, err := file.Stat()
		if err != nil {
			return fmt.Errorf("stat log %s: %w", path, err)
		}
		off, err := tailOffset(file, st.Size(), opts.tail)
		if err != nil {
			return fmt.Errorf("log %s: %w", path, err)
		}
		if _, err := file.Seek(off, io.SeekStart); err != nil {
			return fmt.Errorf("seeking log %s: %w", path, err)
		}
	}
	r := bufio.NewReaderSize(file, 64<<10)
	var pending []byte // an incomplete last line, waiting for its newline
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		line, err := r.ReadBytes('\n')
		if err == nil {
			if len(pending) > 0 {
				line = append(pending, line...)
				pending = nil
			}
			e, perr := parseCRILogLine(line)
			if perr != nil {
				klog.V(2).InfoS("skipping malformed CRI log line", "path", path, "err", perr)
				continue
			}
			if werr := lw.write(e); werr != nil {
				if errors.Is(werr, errLimitReached) {
					return nil
				}
				return werr
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading log %s: %w", path, err)
		}
		pending = append(pending, line...)
		if f == nil {
			return nil
		}
		f.flush()
		// Ask before waiting so that lines written just before the exit
		// are drained by the next read.
		alive := f.running(ctx)
		if !alive {
			return drain(r, pending, lw)
		}
		if timer == nil {
			timer = time.NewTimer(f.poll)
		} else {
			timer.Reset(f.poll)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// drain writes what is left in r after the container stopped.
func drain(r *bufio.Reader, pending []byte, lw *logWriter) error {
	rest, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading log: %w", err)
	}
	for _, line := range bytes.SplitAfter(append(pending, rest...), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		e, perr := parseCRILogLine(line)
		if perr != nil {
			continue
		}
		if werr := lw.write(e); werr != nil {
			if errors.Is(werr, errLimitReached) {
				return nil
			}
			return werr
		}
	}
	return nil
}

// serveContainerLogs serves GET /containerLogs/{namespace}/{pod}/{container}.
func (s *Server) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	ref := ContainerRef{Namespace: r.PathValue("namespace"), Pod: r.PathValue("pod"), Container: r.PathValue("container")}
	opts, err := parseLogOptions(r.URL.Query(), s.cfg.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	lf, err := s.cfg.Runtime.LogPath(ctx, ref, opts.previous)
	if err != nil {
		writeRuntimeError(w, fmt.Errorf("container %s: %w", ref, err))
		return
	}
	if _, err := os.Stat(lf.Path); err != nil {
		writeRuntimeError(w, fmt.Errorf("log of container %s: %w", ref, errors.Join(ErrNotFound, err)))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	lw := &logWriter{w: w, timestamps: opts.timestamps, since: opts.since, remaining: opts.limitBytes}
	var f *logFollower
	if opts.follow {
		f = &logFollower{
			poll:  s.cfg.FollowPollInterval,
			flush: func() { _ = rc.Flush() },
			running: func(ctx context.Context) bool {
				ok, err := s.cfg.Runtime.ContainerRunning(ctx, lf.ContainerID)
				return err == nil && ok
			},
		}
	}
	if err := copyLog(ctx, lf.Path, opts, lw, f); err != nil && ctx.Err() == nil {
		klog.V(2).InfoS("serving container log", "container", ref.String(), "err", err)
	}
}
