package criruntime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// cgroupManager creates and removes pod cgroups with the cgroupfs driver,
// in every mounted hierarchy (runc creates a container's cgroup in each of
// them below the pod's, but removes only its own leaf).
type cgroupManager struct {
	// mounts are the hierarchies' mount points; immutable.
	mounts []cgroupMount
}

type cgroupMount struct {
	path string
	v2   bool
	// controllers of a v1 hierarchy ("cpu", "memory", ...).
	controllers map[string]bool
}

func newCgroupManager(root string) (*cgroupManager, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("criruntime: reading mounts: %w", err)
	}
	defer f.Close()
	m := &cgroupManager{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: id parent major:minor root mountpoint opts... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		mp := fields[4]
		if mp != root && !strings.HasPrefix(mp, root+"/") || seen[mp] {
			continue
		}
		switch tail[0] {
		case "cgroup2":
			seen[mp] = true
			m.mounts = append(m.mounts, cgroupMount{path: mp, v2: true})
		case "cgroup":
			seen[mp] = true
			cm := cgroupMount{path: mp, controllers: map[string]bool{}}
			for _, o := range strings.Split(tail[2], ",") {
				cm.controllers[o] = true
			}
			m.mounts = append(m.mounts, cm)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("criruntime: reading mounts: %w", err)
	}
	if len(m.mounts) == 0 {
		return nil, fmt.Errorf("criruntime: no cgroup hierarchy mounted under %s", root)
	}
	sort.Slice(m.mounts, func(i, j int) bool { return m.mounts[i].path < m.mounts[j].path })
	return m, nil
}

// podLimits are what a pod cgroup is limited to; zero values mean no
// limit.
type podLimits struct {
	cpuShares   uint64
	cpuQuota    int64 // µs per cpuPeriod
	cpuPeriod   uint64
	memoryLimit int64 // bytes
}

// create makes the cgroup at path (cgroupfs notation, "/kubepods/pod<uid>")
// in every hierarchy and applies limits. It is idempotent.
func (m *cgroupManager) create(path string, l podLimits) error {
	for _, mnt := range m.mounts {
		dir := filepath.Join(mnt.path, path)
		if mnt.v2 {
			if err := enableV2Controllers(mnt.path, path); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("criruntime: creating cgroup %s: %w", dir, err)
		}
		var writes [][2]string
		switch {
		case mnt.v2:
			if l.cpuShares > 0 {
				writes = append(writes, [2]string{"cpu.weight", strconv.FormatUint(sharesToWeight(l.cpuShares), 10)})
			}
			if l.cpuQuota > 0 {
				writes = append(writes, [2]string{"cpu.max", fmt.Sprintf("%d %d", l.cpuQuota, l.cpuPeriod)})
			}
			if l.memoryLimit > 0 {
				writes = append(writes, [2]string{"memory.max", strconv.FormatInt(l.memoryLimit, 10)})
			}
		case mnt.controllers["cpu"]:
			if l.cpuShares > 0 {
				writes = append(writes, [2]string{"cpu.shares", strconv.FormatUint(l.cpuShares, 10)})
			}
			if l.cpuQuota > 0 {
				writes = append(writes, [2]string{"cpu.cfs_period_us", strconv.FormatUint(l.cpuPeriod, 10)},
					[2]string{"cpu.cfs_quota_us", strconv.FormatInt(l.cpuQuota, 10)})
			}
		case mnt.controllers["memory"]:
			if l.memoryLimit > 0 {
				writes = append(writes, [2]string{"memory.limit_in_bytes", strconv.FormatInt(l.memoryLimit, 10)})
			}
		}
		for _, w := range writes {
			f := filepath.Join(dir, w[0])
			if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
				continue // controller not enabled here
			}
			if err := os.WriteFile(f, []byte(w[1]), 0o644); err != nil {
				return fmt.Errorf("criruntime: writing %s to %s: %w", w[1], f, err)
			}
		}
	}
	return nil
}

// enableV2Controllers enables cpu, memory and pids for the children of
// every ancestor of path, as cgroup v2 requires before limits can be set.
func enableV2Controllers(mount, path string) error {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	dir := mount
	for _, p := range parts[:len(parts)-1] {
		if err := writeSubtreeControl(dir); err != nil {
			return err
		}
		dir = filepath.Join(dir, p)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("criruntime: creating cgroup %s: %w", dir, err)
		}
	}
	return writeSubtreeControl(dir)
}

func writeSubtreeControl(dir string) error {
	avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("criruntime: reading controllers of %s: %w", dir, err)
	}
	var enable []string
	for _, c := range strings.Fields(string(avail)) {
		if c == "cpu" || c == "memory" || c == "pids" {
			enable = append(enable, "+"+c)
		}
	}
	if len(enable) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0o644); err != nil {
		return fmt.Errorf("criruntime: enabling controllers in %s: %w", dir, err)
	}
	return nil
}

// sharesToWeight converts cgroup v1 cpu.shares to v2 cpu.weight like runc.
func sharesToWeight(shares uint64) uint64 {
	return 1 + ((shares-2)*9999)/262142
}

// remove deletes the cgroup at path and any empty cgroups below it (leaves
// runc left behind) in every hierarchy. A cgroup that does not exist is
// fine; one that still holds processes is an error.
func (m *cgroupManager) remove(path string) error {
	var errs []error
	for _, mnt := range m.mounts {
		if err := removeTree(filepath.Join(mnt.path, path)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeTree rmdirs dir's sub-cgroups depth-first, then dir.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("criruntime: reading cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("criruntime: removing cgroup %s: %w", dir, err)
	}
	return nil
}
