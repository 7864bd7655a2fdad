package cluster

import (
	"flag"
	"io"
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
	_ = fs.Set("stderrthreshold", "WARNING")
	// With logtostderr off klog would write files under /tmp; a discarding
	// writer per severity keeps it from creating them.
	for _, sev := range []string{"INFO", "WARNING", "ERROR", "FATAL"} {
		klog.SetOutputBySeverity(sev, io.Discard)
	}
}
