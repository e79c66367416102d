package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRingBounds(t *testing.T) {
	t.Parallel()
	r := newRing(ringLines, ringBytes)
	for i := range 5000 {
		r.add(fmt.Sprintf("line %d", i))
	}
	all := r.last(0)
	if len(all) != ringLines || all[0] != "line 3000" || all[len(all)-1] != "line 4999" {
		t.Errorf("after 5000 lines the ring holds %d lines, %q … %q; want the last %d", len(all), all[0], all[len(all)-1], ringLines)
	}
	if diff := cmp.Diff([]string{"line 4998", "line 4999"}, r.last(2)); diff != "" {
		t.Errorf("last(2) (-want +got):\n%s", diff)
	}

	seq := r.next()
	r.add("a")
	r.add("b")
	if diff := cmp.Diff([]string{"a", "b"}, r.since(seq, 20)); diff != "" {
		t.Errorf("since (-want +got):\n%s", diff)
	}
	if got := r.since(r.next(), 20); len(got) != 0 {
		t.Errorf("since(next) = %q, want nothing", got)
	}

	big := strings.Repeat("x", 10000)
	for range 300 {
		r.add(big)
	}
	held := 0
	for _, l := range r.last(0) {
		held += len(l)
	}
	if held > ringBytes || held < ringBytes-len(big) {
		t.Errorf("the ring holds %d bytes, want at most %d and close to it", held, ringBytes)
	}
}

func TestReadLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string
	}{
		{"lines", "a\nb\r\nc", []string{"a", "b", "c"}},
		{"empty lines", "\n\nx\n", []string{"", "", "x"}},
		{"longest line", strings.Repeat("x", 16) + "\n", []string{strings.Repeat("x", 16)}},
		{"long line cut", strings.Repeat("x", 100) + "\nshort\n", []string{strings.Repeat("x", 16) + truncatedMark, "short"}},
		{"long last line", strings.Repeat("y", 40), []string{strings.Repeat("y", 16) + truncatedMark}},
		{"invalid UTF-8", "a\xffb\n", []string{"a\uFFFDb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			if err := readLines(strings.NewReader(tt.in), 16, func(s string) { got = append(got, s) }); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzReadLines(f *testing.F) {
	f.Add("a\nb\r\n" + strings.Repeat("z", 40) + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		readLines(strings.NewReader(in), 16, func(s string) {
			if len(s) > 16+len(truncatedMark)+3*16 || strings.Contains(s, "\n") {
				t.Fatalf("line %q: too long, or has a newline", s)
			}
		})
	})
}

func TestRotatingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "e.log")
	w, err := openRotating(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := w.writeLine(fmt.Sprintf("line %02d ..........", i)); err != nil { // 20 bytes with the newline
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, name := range []string{"e.log.2", "e.log.1", "e.log"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), name))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 100 {
			t.Errorf("%s has %d bytes, more than 100", name, len(b))
		}
		got = append(got, strings.Fields(string(b))...)
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("e.log.3 exists (%v), want 2 old files kept", err)
	}
	var want []string
	for i := 35; i < 50; i++ {
		want = append(want, fmt.Sprintf("%02d", i), "..........")
	}
	if diff := cmp.Diff(want, dropWord(got, "line")); diff != "" {
		t.Errorf("the three files hold (-want +got):\n%s", diff)
	}
}

func dropWord(words []string, w string) []string {
	var out []string
	for _, x := range words {
		if x != w {
			out = append(out, x)
		}
	}
	return out
}

func TestOutput(t *testing.T) {
	t.Parallel()
	logDir := t.TempDir()
	spec := shSpec(t, `seq -f "line %g" 1 5000; head -c 100000 /dev/zero | tr '\0' x; echo; echo after; exec sleep 1000`)
	spec.LogDir, spec.LogMaxBytes, spec.LogFiles = logDir, 20<<10, 2
	in, _ := start(t, spec)

	eventually(t, "all output", func() bool { l := in.Logs(1); return len(l) == 1 && l[0] == "after" }, func() any { return in.Logs(3) })
	logs := in.Logs(0)
	if len(logs) != ringLines {
		t.Errorf("Logs(0) has %d lines, want the ring's %d", len(logs), ringLines)
	}
	cut := strings.Repeat("x", maxLineBytes) + truncatedMark
	if diff := cmp.Diff([]string{"line 4999", "line 5000", cut, "after"}, in.Logs(4)); diff != "" {
		t.Errorf("Logs(4) (-want +got):\n%s", diff)
	}

	base := filepath.Join(logDir, fileName(spec.Name)+".log")
	for _, name := range []string{base, base + ".1", base + ".2"} {
		st, err := os.Stat(name)
		if err != nil {
			t.Errorf("log file: %v", err)
		} else if st.Size() > spec.LogMaxBytes {
			t.Errorf("%s has %d bytes, more than %d", name, st.Size(), spec.LogMaxBytes)
		}
	}
	if _, err := os.Stat(base + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists (%v), want 2 old files", base, err)
	}
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nafter\n") {
		t.Errorf("the current log file does not end with the last output: …%q", b[max(len(b)-200, 0):])
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	in, _ := start(t, shSpec(t, `i=0; while [ $i -lt 100000 ]; do echo "tick $i"; i=$((i+1)); sleep 0.01; done`))

	ctx, cancel := context.WithCancel(t.Context())
	ch := in.Follow(ctx)
	select {
	case l := <-ch:
		if !strings.HasPrefix(l, "tick ") {
			t.Errorf("Follow sent %q, want a tick", l)
		}
	case <-time.After(timeout):
		t.Fatal("Follow sent nothing")
	}
	cancel()
	drained(t, ch)

	ch = in.Follow(t.Context())
	if err := in.Stop(bounded(t)); err != nil {
		t.Fatal(err)
	}
	drained(t, ch)
}

// drained reads ch until it is closed.
func drained(t *testing.T, ch <-chan string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the Follow channel was not closed")
		}
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	in := "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	got, err := parseProcStat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := (procStat{State: 'S', PGID: 4240, StartTime: 987654}); got != want {
		t.Errorf("parseProcStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 notanumber 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) succeeded", bad)
		}
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 1 2 0 0 20 0 1 0 5 1000 10 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseProcStat(b) // must not panic
	})
}
