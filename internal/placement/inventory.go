package placement

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"citadel.dev/citadel/internal/perfmodel"
)

// GPU is one device of the inventory.
type GPU struct {
	Index       int    // nvidia-smi's index (PCI bus order)
	UUID        string // GPU-…; stable across reboots, unlike the index
	Name        string // as the driver reports it, e.g. "NVIDIA GeForce RTX 4070 Ti SUPER"
	MemoryTotal int64  // bytes
	MemoryUsed  int64  // bytes used by processes outside this plan (desktop, other users' jobs); not by the engines being planned

	Profile string // the perf GPU profile, e.g. "rtx-4070-ti-super"; "" when not recognised

	// MIG is nvidia-smi's mig.mode.current: "Enabled", "Disabled", or "" when the GPU has no
	// MIG (GeForce cards report [N/A]).
	MIG string
	// Note says what the driver did not report and what the planner assumed instead, e.g.
	// "memory.used is [N/A]: counted as 0".
	Note string
	// Unusable is why the planner places nothing on this GPU ("" when it may): MIG mode on, or
	// no memory size. The GPU is still listed, with the reason.
	Unusable string
}

// Query is the nvidia-smi command whose output ParseNvidiaSMI reads.
const Query = "nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,mig.mode.current --format=csv,noheader,nounits"

// notReported reports whether an nvidia-smi value means "no value": [N/A], N/A, [Not
// Supported], [Unknown Error], [Insufficient Permissions] and the like.
func notReported(v string) bool {
	return v == "N/A" || strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]")
}

const mib = 1 << 20

// ParseNvidiaSMI reads the output of Query: one line per GPU, memory in MiB (the five-field
// form without mig.mode.current is accepted too). Every malformed line is reported, named by
// its line number and field. A value the driver does not report ([N/A], [Not Supported]) does
// not abort the parse:
//
//   - memory.total not reported (unified memory: DGX Spark/GB10, Jetson): the GPU is listed
//     with Unusable set, since placement needs a memory size;
//   - memory.used not reported: counted as 0, with a Note;
//   - mig.mode.current Enabled: the GPU is listed with Unusable set, since Citadel places whole
//     GPUs and CUDA then sees MIG instances, not the GPU; not reported means no MIG.
//
// The GPUs come back sorted by index.
func ParseNvidiaSMI(out []byte) ([]GPU, error) {
	var (
		gpus []GPU
		errs []error
	)
	seenIndex := map[int]int{} // index → line
	seenUUID := map[string]int{}
	for i, line := range strings.Split(string(out), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		fields := strings.Split(line, ",")
		if len(fields) != 5 && len(fields) != 6 {
			errs = append(errs, fmt.Errorf("line %d: want 6 comma-separated fields (index, uuid, name, memory.total, memory.used, mig.mode.current), got %d in %q",
				n, len(fields), truncate(line, 80)))
			continue
		}
		for j := range fields {
			fields[j] = strings.TrimSpace(fields[j])
		}
		var bad []error
		var notes []string
		g := GPU{UUID: fields[1], Name: fields[2]}
		idx, err := strconv.Atoi(fields[0])
		if err != nil || idx < 0 {
			bad = append(bad, fmt.Errorf("line %d: index %q: want a non-negative integer", n, fields[0]))
		}
		g.Index = idx
		if g.UUID == "" || strings.HasPrefix(g.UUID, "[") {
			bad = append(bad, fmt.Errorf("line %d: uuid %q: want the GPU's UUID", n, g.UUID))
		}
		if g.Name == "" || notReported(g.Name) {
			bad = append(bad, fmt.Errorf("line %d: name %q: want the GPU's name", n, g.Name))
		}
		var total, used int64
		switch v := fields[3]; {
		case notReported(v):
			notes = append(notes, "memory.total is "+v)
			g.Unusable = fmt.Sprintf("the driver reports no dedicated memory (memory.total %s: unified memory, as on DGX Spark/GB10): "+
				"placement needs a memory size; pass --gpus with a GPU profile of the memory the engines may use (e.g. --gpus a100-80g plans it as one 80 GiB GPU)", v)
		default:
			total, err = strconv.ParseInt(v, 10, 64)
			if err != nil || total <= 0 || total > 1<<30 {
				bad = append(bad, fmt.Errorf("line %d: memory.total %q: want MiB", n, v))
			}
		}
		switch v := fields[4]; {
		case notReported(v):
			if g.Unusable == "" {
				notes = append(notes, "memory.used is "+v+": counted as 0")
			}
		default:
			used, err = strconv.ParseInt(v, 10, 64)
			if err != nil || used < 0 || used > 1<<30 {
				bad = append(bad, fmt.Errorf("line %d: memory.used %q: want MiB", n, v))
			} else if total > 0 && used > total {
				bad = append(bad, fmt.Errorf("line %d: memory.used %d MiB is more than memory.total %d MiB", n, used, total))
			}
		}
		if len(fields) == 6 {
			switch v := fields[5]; {
			case notReported(v):
			case strings.EqualFold(v, "Enabled"):
				g.MIG = "Enabled"
				if g.Unusable == "" {
					g.Unusable = fmt.Sprintf("MIG mode is on: Citadel places whole GPUs; disable MIG (sudo nvidia-smi -i %d -mig 0, then reset the GPU) "+
						"or leave this GPU out by passing --gpus with profiles of the others", idx)
				}
			case strings.EqualFold(v, "Disabled"):
				g.MIG = "Disabled"
			default:
				bad = append(bad, fmt.Errorf("line %d: mig.mode.current %q: want Enabled, Disabled or [N/A]", n, v))
			}
		}
		if len(bad) > 0 {
			errs = append(errs, bad...)
			continue
		}
		if prev, ok := seenIndex[idx]; ok {
			errs = append(errs, fmt.Errorf("line %d: index %d repeats line %d", n, idx, prev))
			continue
		}
		if prev, ok := seenUUID[g.UUID]; ok {
			errs = append(errs, fmt.Errorf("line %d: uuid %s repeats line %d", n, g.UUID, prev))
			continue
		}
		seenIndex[idx], seenUUID[g.UUID] = n, n
		g.MemoryTotal, g.MemoryUsed = total*mib, used*mib
		g.Profile = ProfileFor(g.Name)
		g.Note = strings.Join(notes, "; ")
		gpus = append(gpus, g)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(gpus) == 0 {
		return nil, errors.New("no GPUs listed (is the NVIDIA driver loaded? run " + Query + ")")
	}
	slices.SortFunc(gpus, func(a, b GPU) int { return a.Index - b.Index })
	return gpus, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// smiNames maps the names nvidia-smi prints (lower-cased, "NVIDIA" and "GeForce" dropped, words
// joined by dashes) to perf's GPU profiles. Variants with different memory or bandwidth (H100
// PCIe and NVL, RTX 4090 D) are deliberately absent: they get a generic profile.
var smiNames = map[string]string{
	"rtx-4070-ti-super": "rtx-4070-ti-super",
	"rtx-4090":          "rtx-4090",
	"l4":                "l4",
	"a100-pcie-40gb":    "a100-40g",
	"a100-sxm4-40gb":    "a100-40g",
	"a100-sxm4-80gb":    "a100-80g",
	"a100-80gb-pcie":    "a100-80g",
	"h100-80gb-hbm3":    "h100-sxm",
	"h100-sxm5-80gb":    "h100-sxm",
	"h200":              "h200",
}

// ProfileFor returns the perf GPU profile for a device name, as nvidia-smi prints it ("NVIDIA
// GeForce RTX 4090") or as perf names it ("rtx-4090"), or "" when there is none.
func ProfileFor(name string) string {
	if g, err := perfmodel.LookupGPU(name); err == nil {
		return g.Name
	}
	var words []string
	for _, w := range strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == ' ' || r == '-' || r == '_' }) {
		if w != "nvidia" && w != "geforce" {
			words = append(words, w)
		}
	}
	return smiNames[strings.Join(words, "-")]
}

// FakeInventory builds an idle inventory from perf GPU profiles: a comma-separated list of
// profile names, each optionally preceded by a count and "x" ("2xrtx-4070-ti-super",
// "rtx-4090,a100-80g"). Indexes count from 0 in the order given.
func FakeInventory(spec string) ([]GPU, error) {
	var gpus []GPU
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		count, name := 1, item
		if i := strings.IndexAny(item, "xX"); i > 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(item[:i])); err == nil {
				count, name = n, strings.TrimSpace(item[i+1:])
			}
		}
		if name == "" {
			return nil, fmt.Errorf("GPU inventory %q: empty entry; want e.g. 2xrtx-4070-ti-super or rtx-4090,a100-80g (GPUs: %s)",
				spec, strings.Join(perfmodel.GPUNames(), ", "))
		}
		if count < 1 || count > 64 {
			return nil, fmt.Errorf("GPU inventory %q: %q: want 1 to 64 GPUs", spec, item)
		}
		p, err := perfmodel.LookupGPU(name)
		if err != nil {
			return nil, fmt.Errorf("GPU inventory %q: %w", spec, err)
		}
		for range count {
			i := len(gpus)
			gpus = append(gpus, GPU{Index: i, UUID: fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i), Name: p.Name,
				MemoryTotal: p.MemoryBytes, Profile: p.Name})
		}
	}
	return gpus, nil
}

// perfGPU is the profile the memory plan uses: the recognised perf profile, else a generic one.
// Either way the memory is the inventory's, which is what the driver will hand out.
func (g GPU) perfGPU() perfmodel.GPU {
	p, err := perfmodel.LookupGPU(g.Profile)
	if err != nil {
		p = perfmodel.GPU{Name: g.Name}
	}
	p.MemoryBytes = g.MemoryTotal
	return p
}

// kind names the GPU in messages: its profile, else the driver's name.
func (g GPU) kind() string {
	if g.Profile != "" {
		return g.Profile
	}
	return g.Name
}
