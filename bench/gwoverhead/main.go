// Command gwoverhead measures what a proxy adds to a request, for bench/gateway-overhead.sh:
// the same chat request sent direct to an engine and through each proxy, interleaved request
// by request (the order rotates each round, so drift and warm caches hit every path alike),
// then an open-loop rate sweep to find the highest rate each path sustains at p99 ≤ a bound.
//
//	gwoverhead -path direct=URL -path nginx=URL -path gateway=URL [-n 20000] [-rates 500,1000,…]
//
// The first -path is the baseline that the others' added latency is measured against; the
// added p50 of each path after the second is also given as a multiple of the second's.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type path struct {
	name, url string
	client    *http.Client
}

type pathsFlag []path

func (p *pathsFlag) String() string { return fmt.Sprint(*p) }
func (p *pathsFlag) Set(v string) error {
	name, url, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("-path %q: want NAME=URL", v)
	}
	*p = append(*p, path{name: name, url: url})
	return nil
}

const body = `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`

func main() {
	var paths pathsFlag
	flag.Var(&paths, "path", "NAME=URL of a chat completions endpoint; the first is the baseline (repeatable)")
	n := flag.Int("n", 20000, "sequential requests per path")
	warm := flag.Int("warm", 2000, "untimed requests per path first")
	ratesFlag := flag.String("rates", "250,500,1000,1500,2000,3000,4000,6000", "open-loop rates (requests/s) for the sweep; empty: none")
	dur := flag.Duration("dur", 3*time.Second, "duration of each path at each rate")
	bound := flag.Duration("p99", time.Millisecond, "the p99 a rate must keep to count as sustained")
	flag.Parse()
	if len(paths) < 2 {
		fmt.Fprintln(os.Stderr, "gwoverhead: give at least two -path NAME=URL (the baseline first)")
		os.Exit(2)
	}
	for i := range paths {
		paths[i].client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}}
	}
	for _, p := range paths {
		for range *warm {
			if _, err := one(p); err != nil {
				fmt.Fprintf(os.Stderr, "gwoverhead: %s (%s): %v\n", p.name, p.url, err)
				os.Exit(1)
			}
		}
	}

	// Sequential, interleaved request by request.
	lat := make([][]time.Duration, len(paths))
	for i := range *n {
		for j := range paths {
			k := (i + j) % len(paths)
			d, err := one(paths[k])
			if err != nil {
				fmt.Fprintf(os.Stderr, "gwoverhead: %s: %v\n", paths[k].name, err)
				os.Exit(1)
			}
			lat[k] = append(lat[k], d)
		}
	}
	fmt.Printf("Sequential, %d requests per path, interleaved request by request:\n", *n)
	fmt.Printf("%-10s %9s %9s %9s %12s %12s\n", "path", "p50 ms", "p90 ms", "p99 ms", "added p50", "added p99")
	base50, base99 := q(lat[0], 0.5), q(lat[0], 0.99)
	added := map[string]time.Duration{}
	for k, p := range paths {
		p50, p99 := q(lat[k], 0.5), q(lat[k], 0.99)
		added[p.name] = p50 - base50
		fmt.Printf("%-10s %9.3f %9.3f %9.3f %12.3f %12.3f\n", p.name, ms(p50), ms(q(lat[k], 0.9)), ms(p99), ms(p50-base50), ms(p99-base99))
	}
	for _, p := range paths[min(2, len(paths)):] {
		if added[paths[1].name] > 0 {
			fmt.Printf("added p50 %s / %s: %.2f×\n", p.name, paths[1].name, float64(added[p.name])/float64(added[paths[1].name]))
		}
	}

	if *ratesFlag == "" {
		return
	}
	var rates []int
	for _, f := range strings.Split(*ratesFlag, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			fmt.Fprintf(os.Stderr, "gwoverhead: -rates %q: want positive integers\n", *ratesFlag)
			os.Exit(2)
		}
		rates = append(rates, r)
	}
	fmt.Printf("\nOpen loop, %s per path per rate after %s untimed (paths alternate at each rate); p99 in ms, * = rate not achieved or errors:\n", *dur, *dur/5)
	fmt.Printf("%-8s", "rate")
	for _, p := range paths {
		fmt.Printf(" %10s", p.name)
	}
	fmt.Println()
	best := make([]int, len(paths))
	var notes []string
	for ri, rate := range rates {
		fmt.Printf("%-8d", rate)
		res := make([]string, len(paths))
		for j := range paths {
			k := (ri + j) % len(paths)
			_, _, _, _ = openLoop(paths[k], rate, *dur/5) // untimed: the connections this rate needs
			l, achieved, errs, first := openLoop(paths[k], rate, *dur)
			if errs > 0 {
				notes = append(notes, fmt.Sprintf("%s at %d/s: %d errors, the first: %v", paths[k].name, rate, errs, first))
			}
			p99 := q(l, 0.99)
			mark := ""
			if achieved < 0.95*float64(rate) || errs > 0 {
				mark = "*"
			} else if p99 <= *bound {
				best[k] = rate
			}
			res[k] = fmt.Sprintf("%.3f%s", ms(p99), mark)
		}
		for _, s := range res {
			fmt.Printf(" %10s", s)
		}
		fmt.Println()
		if !slices.ContainsFunc(res, func(s string) bool { return !strings.HasSuffix(s, "*") }) {
			break // every path is past what it can carry
		}
	}
	for _, n := range notes {
		fmt.Println(n)
	}
	fmt.Printf("highest rate sustained at p99 ≤ %s:", *bound)
	for k, p := range paths {
		fmt.Printf(" %s %d/s;", p.name, best[k])
	}
	fmt.Println()
}

func one(p path) (time.Duration, error) {
	t0 := time.Now()
	resp, err := p.client.Post(p.url, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return time.Since(t0), nil
}

// openLoop sends requests at rate for dur on schedule (not waiting for answers) and returns
// the latencies, the rate achieved and the errors.
func openLoop(p path, rate int, dur time.Duration) ([]time.Duration, float64, int, error) {
	total := int(float64(rate) * dur.Seconds())
	lat := make([]time.Duration, total)
	var mu sync.Mutex
	errs := 0
	var first error
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := one(p)
			if err != nil {
				mu.Lock()
				errs++
				if first == nil {
					first = err
				}
				mu.Unlock()
				d = time.Minute
			}
			lat[i] = d
		}()
	}
	sent := time.Since(start)
	wg.Wait()
	return lat, float64(total) / sent.Seconds(), errs, first
}

func q(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
