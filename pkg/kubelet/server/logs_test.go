package server

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCRILogLine(t *testing.T) {
	ts := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	for _, tc := range []struct {
		line    string
		want    logEntry
		wantErr bool
	}{
		{line: "2016-10-06T00:17:09.669794202Z stdout F hello world\n", want: logEntry{ts: ts, stream: "stdout", msg: []byte("hello world\n")}},
		{line: "2016-10-06T00:17:09.669794202Z stderr P part", want: logEntry{ts: ts, stream: "stderr", partial: true, msg: []byte("part")}},
		{line: "2016-10-06T00:17:09.669794202Z stdout F ", want: logEntry{ts: ts, stream: "stdout", msg: []byte("\n")}},
		{line: "2016-10-06T00:17:09.669794202Z stdout F", want: logEntry{ts: ts, stream: "stdout", msg: []byte("\n")}},
		{line: "2016-10-06T00:17:09.669794202Z stdout F  two  spaces ", want: logEntry{ts: ts, stream: "stdout", msg: []byte(" two  spaces \n")}},
		{line: "garbage", wantErr: true},
		{line: "2016-10-06 stdout F x", wantErr: true},
		{line: "2016-10-06T00:17:09.669794202Z stdin F x", wantErr: true},
		{line: "2016-10-06T00:17:09.669794202Z stdout X x", wantErr: true},
	} {
		got, err := parseCRILogLine([]byte(tc.line))
		if (err != nil) != tc.wantErr {
			t.Errorf("parseCRILogLine(%q) error %v, want error %v", tc.line, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if !got.ts.Equal(tc.want.ts) || got.stream != tc.want.stream || got.partial != tc.want.partial || !bytes.Equal(got.msg, tc.want.msg) {
			t.Errorf("parseCRILogLine(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

func TestTailOffset(t *testing.T) {
	for _, tc := range []struct {
		content string
		n       int64
		want    string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc\n", 0, ""},
		{"a\nb\nc", 1, "c"},
		{"", 5, ""},
		{strings.Repeat("x", 70000) + "\n" + strings.Repeat("y", 40000) + "\n", 1, strings.Repeat("y", 40000) + "\n"},
	} {
		r := strings.NewReader(tc.content)
		off, err := tailOffset(r, int64(len(tc.content)), tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.content[off:]; got != tc.want {
			t.Errorf("tail %d of %.20q = %.20q, want %.20q", tc.n, tc.content, got, tc.want)
		}
	}
}

const sampleLog = `2024-01-01T00:00:01.000000001Z stdout F one
2024-01-01T00:00:02Z stderr F two
not a cri line
2024-01-01T00:00:03Z stdout P thr
2024-01-01T00:00:03.5Z stdout F ee
2024-01-01T00:00:04Z stdout F four
`

func writeLog(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCopyLog(t *testing.T) {
	path := writeLog(t, sampleLog)
	for _, tc := range []struct {
		name  string
		query string
		want  string
	}{
		{"everything, malformed lines skipped, partial lines joined", "", "one\ntwo\nthree\nfour\n"},
		{"timestamps at the start of each line only", "timestamps=true", "2024-01-01T00:00:01.000000001Z one\n2024-01-01T00:00:02Z two\n2024-01-01T00:00:03Z three\n2024-01-01T00:00:04Z four\n"},
		{"tailLines counts file lines", "tailLines=2", "ee\nfour\n"},
		{"tailLines=0 shows nothing", "tailLines=0", ""},
		{"sinceSeconds relative to now", "sinceSeconds=2", "three\nfour\n"},
		{"sinceTime", "sinceTime=2024-01-01T00:00:02Z", "two\nthree\nfour\n"},
		{"limitBytes cuts mid-line", "limitBytes=6", "one\ntw"},
		{"limitBytes with timestamps", "limitBytes=33&timestamps=1", "2024-01-01T00:00:01.000000001Z on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := parseLogOptions(q, time.Date(2024, 1, 1, 0, 0, 5, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			lw := &logWriter{w: &out, timestamps: opts.timestamps, since: opts.since, remaining: opts.limitBytes}
			if err := copyLog(context.Background(), path, opts, lw, nil); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLogOptionsRejects(t *testing.T) {
	for _, q := range []string{"tailLines=-1", "tailLines=x", "limitBytes=0", "sinceSeconds=0", "sinceSeconds=1&sinceTime=2024-01-01T00:00:00Z", "sinceTime=yesterday"} {
		v, _ := url.ParseQuery(q)
		if _, err := parseLogOptions(v, time.Now()); err == nil {
			t.Errorf("parseLogOptions(%s) accepted", q)
		}
	}
	v, _ := url.ParseQuery("follow&previous=true&timestamps=0")
	o, err := parseLogOptions(v, time.Now())
	if err != nil || !o.follow || !o.previous || o.timestamps {
		t.Errorf("parseLogOptions(follow&previous=true&timestamps=0) = %+v, %v", o, err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while copyLog writes.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// TestCopyLogFollow appends to a log while it is followed, including a line
// written in two pieces, and checks the follower stops (after draining)
// once the container is no longer running.
func TestCopyLogFollow(t *testing.T) {
	path := writeLog(t, "2024-01-01T00:00:01Z stdout F first\n")
	var running atomic.Bool
	running.Store(true)
	out := newSyncBuffer()
	lw := &logWriter{w: out, remaining: -1}
	f := &logFollower{poll: 5 * time.Millisecond, flush: func() {}, running: func(context.Context) bool { return running.Load() }}
	done := make(chan error, 1)
	go func() {
		done <- copyLog(context.Background(), path, logOptions{follow: true, tail: -1, limitBytes: -1}, lw, f)
	}()

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for out.String() != want {
			if time.Now().After(deadline) {
				t.Fatalf("followed output %q, want %q", out.String(), want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitFor("first\n")
	file, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	write := func(s string) {
		if _, err := file.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("2024-01-01T00:00:02Z stdout F sec")
	time.Sleep(30 * time.Millisecond) // the follower sees half a line
	write("ond\n")
	waitFor("first\nsecond\n")
	write("2024-01-01T00:00:03Z stderr F last\n")
	running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop after the container stopped")
	}
	if got, want := out.String(), "first\nsecond\nlast\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}

	// A cancelled context ends a follow of a running container.
	running.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- copyLog(ctx, path, logOptions{follow: true, tail: 0, limitBytes: -1}, &logWriter{w: newSyncBuffer(), remaining: -1}, f)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop when its context ended")
	}
}
