package memlimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Where the cgroup files are, relative to the root of the file system
// CgroupLimit reads.
const (
	procCgroup = "proc/self/cgroup"
	v2Root     = "sys/fs/cgroup"
	v2File     = "memory.max"
	v1Root     = "sys/fs/cgroup/memory"
	v1File     = "memory.limit_in_bytes"
)

// v1Unlimited: cgroup v1 writes "no limit" as the largest page-aligned
// int64 (9223372036854771712); anything this large is no limit.
const v1Unlimited = 1 << 62

// CgroupLimit returns the memory limit of the cgroup the process runs in,
// read from fsys (the root file system in production, fixtures in tests):
// the smallest memory.max (cgroup v2) or memory.limit_in_bytes (v1) on the
// path from the process's cgroup, named in /proc/self/cgroup, up to the
// hierarchy's root. A path that does not exist where the hierarchy is
// mounted (a cgroup namespace shows the process's own cgroup as the root)
// is walked up to the root all the same. ok is false when no limit is set.
func CgroupLimit(fsys fs.FS) (limit int64, ok bool, err error) {
	v2Path, v1Path := "/", "/"
	if data, err := fs.ReadFile(fsys, procCgroup); err == nil {
		v2Path, v1Path = parseProcCgroup(data)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, false, fmt.Errorf("read /%s: %w", procCgroup, err)
	}
	var errs []error
	for _, h := range []struct {
		root, rel, file string
	}{{v2Root, v2Path, v2File}, {v1Root, v1Path, v1File}} {
		if h.rel == "" {
			continue
		}
		l, found, err := smallestOnPath(fsys, h.root, h.rel, h.file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if found && (!ok || l < limit) {
			limit, ok = l, true
		}
	}
	return limit, ok, errors.Join(errs...)
}

// parseProcCgroup returns the process's cgroup v2 path (the "0::" line) and
// its cgroup v1 memory controller path, "" for a hierarchy not listed.
func parseProcCgroup(data []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if id == "0" && controllers == "" {
			v2 = p
			continue
		}
		for c := range strings.SplitSeq(controllers, ",") {
			if c == "memory" {
				v1 = p
			}
		}
	}
	return v2, v1
}

// smallestOnPath reads file in root/rel and each of its parents up to root,
// returning the smallest limit found.
func smallestOnPath(fsys fs.FS, root, rel, file string) (limit int64, ok bool, err error) {
	dir := path.Join(root, path.Clean("/"+rel))
	for {
		name := path.Join(dir, file)
		data, err := fs.ReadFile(fsys, name)
		switch {
		case err == nil:
			l, set, err := parseLimit(data)
			if err != nil {
				return 0, false, fmt.Errorf("read /%s: %w", name, err)
			}
			if set && (!ok || l < limit) {
				limit, ok = l, true
			}
		case !errors.Is(err, fs.ErrNotExist):
			return 0, false, fmt.Errorf("read /%s: %w", name, err)
		}
		if dir == root {
			return limit, ok, nil
		}
		dir = path.Dir(dir)
	}
}

// parseLimit reads a memory.max or memory.limit_in_bytes value: "max" or a
// number of bytes.
func parseLimit(data []byte) (limit int64, set bool, err error) {
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("not a memory limit: %q", s)
	}
	if n >= v1Unlimited {
		return 0, false, nil
	}
	return n, true, nil
}
