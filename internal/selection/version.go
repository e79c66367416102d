package selection

import (
	"fmt"
	"strconv"
	"strings"
)

// version is OME's modelver.Version: [v]major[.minor[.patch]] with optional
// -pre, +build and .dev parts, which make it "unofficial".
type version struct {
	nums       [3]uint64
	parts      int
	prefix     string
	pre, build string
	dev        string
}

func parseVersion(s string) (version, error) {
	var v version
	parts := strings.SplitN(s, ".", 3)
	v.parts = len(parts)
	if strings.HasPrefix(parts[0], "v") {
		v.prefix, parts[0] = "v", parts[0][1:]
	}
	if len(parts) == 3 {
		p := parts[2]
		if i := strings.IndexByte(p, '+'); i >= 0 {
			p, v.build = p[:i], p[i+1:]
		}
		if i := strings.IndexByte(p, '-'); i >= 0 {
			p, v.pre = p[:i], p[i+1:]
		}
		if i := strings.IndexByte(p, '.'); i >= 0 {
			p, v.dev = p[:i], p[i+1:]
		}
		parts[2] = p
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || p == "" || strings.Trim(p, "0123456789") != "" || len(p) > 1 && p[0] == '0' {
			return version{}, fmt.Errorf("invalid version %q", s)
		}
		v.nums[i] = n
	}
	return v, nil
}

func (v version) unofficial() bool { return v.pre != "" || v.build != "" || v.dev != "" }

// compare orders by number; unofficial parts only tell versions apart.
func (v version) compare(o version) int {
	for i := range v.nums {
		if v.nums[i] != o.nums[i] {
			if v.nums[i] > o.nums[i] {
				return 1
			}
			return -1
		}
	}
	return strings.Compare(v.pre+"+"+v.build+"."+v.dev, o.pre+"+"+o.build+"."+o.dev)
}
