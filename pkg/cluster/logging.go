package cluster

import (
	"bytes"
	"flag"
	"io"
	"os"
	"strconv"

	"k8s.io/klog/v2"
)

// ConfigureLogging sets klog's verbosity. At level 0 informational logs of
// the libraries (leader election, informer cache syncs) are dropped, so a
// healthy cluster is quiet; warnings and errors still reach stderr. Higher
// levels log everything to stderr, like upstream's -v.
func ConfigureLogging(level int) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", strconv.Itoa(level))
	if level > 0 {
		_ = fs.Set("logtostderr", "true")
		return
	}
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	// With logtostderr off klog writes each message to the writer of its
	// severity and of every lower one (and would create files under /tmp
	// without writers). Warnings and errors reach stderr once, through the
	// WARNING writer, minus known noise.
	klog.SetOutputBySeverity("INFO", io.Discard)
	klog.SetOutputBySeverity("WARNING", noiseFilter{os.Stderr})
	klog.SetOutputBySeverity("ERROR", io.Discard)
	klog.SetOutputBySeverity("FATAL", io.Discard)
}

// noiseFilter drops log lines that report normal operation as errors: the
// WebSocket stream library logs "use of closed network connection" every
// time an exec session ends.
type noiseFilter struct{ w io.Writer }

func (f noiseFilter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("use of closed network connection")) {
		return len(p), nil
	}
	return f.w.Write(p)
}
