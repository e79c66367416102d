package residency

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

// timed is a mechanism whose load and eviction take vLLM's modelled sleep-mode times (a 7B
// fp8 model, 8.1 GiB of weights per GPU, sleep level 1), scaled.
type timed struct {
	scale       float64
	wake, sleep time.Duration
	loads       *atomic.Int64
	engineTime  *atomic.Int64 // nanoseconds spent in the engine's own load and eviction
}

func (m *timed) Load(context.Context) (string, error) {
	m.loads.Add(1)
	d := time.Duration(m.scale * float64(m.wake))
	m.engineTime.Add(int64(d))
	time.Sleep(d)
	return "timed", nil
}

func (m *timed) Evict(context.Context) (string, error) {
	d := time.Duration(m.scale * float64(m.sleep))
	m.engineTime.Add(int64(d))
	time.Sleep(d)
	return StateSleeping, nil
}

// BenchmarkBurst: a burst of 64 requests over 4 models, interleaved, on a GPU that holds one
// at a time; each request runs 50 ms (simulated). Collated: the manager as built. FIFO: the
// same requests served in arrival order, one swap per model change. Reported: swaps (loads),
// p50 and p99 queue wait and the control overhead beyond the engine's own sleep and wake
// times, all in simulated seconds (time scale 0.02).
//
//	go test -run '^$' -bench Burst -benchtime 3x ./internal/residency
func BenchmarkBurst(b *testing.B) {
	const (
		scale  = 0.02
		n, k   = 64, 4
		runFor = 50 * time.Millisecond
	)
	weights := int64(8_705_611_264)
	wake, sleep := perfmodel.WakeTime(1, weights), perfmodel.SleepTime(1, weights)
	for _, mode := range []string{"collated", "fifo"} {
		b.Run(mode, func(b *testing.B) {
			var swaps, waitP50, waitP99, overhead float64
			for range b.N {
				loads, engine := &atomic.Int64{}, &atomic.Int64{}
				m := New(Config{Budget: map[int]int64{0: 16 << 30}})
				for i := range k {
					m.Set(Service{Name: fmt.Sprint("m", i), Model: fmt.Sprint("m", i), GPUs: map[int]int64{0: 14 << 30}, LoadTime: wake,
						Mechanism: &timed{scale: scale, wake: wake, sleep: sleep, loads: loads, engineTime: engine}})
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); m.Run(ctx) }()
				waits := make([]time.Duration, n)
				start := time.Now()
				serve := func(i int) {
					t0 := time.Now()
					release, err := m.Acquire(ctx, fmt.Sprint("m", i%k), nil)
					if err != nil {
						b.Error(err)
						return
					}
					waits[i] = time.Since(t0)
					time.Sleep(time.Duration(scale * float64(runFor)))
					release()
				}
				if mode == "collated" {
					var wg sync.WaitGroup
					for i := range n {
						wg.Add(1)
						go func() { defer wg.Done(); serve(i) }()
					}
					wg.Wait()
				} else {
					for i := range n {
						t0 := time.Now()
						serve(i)
						waits[i] += t0.Sub(start) // waited for every request before it
					}
				}
				total := time.Since(start)
				cancel()
				<-done
				slices.Sort(waits)
				sim := func(d time.Duration) float64 { return d.Seconds() / scale }
				swaps += float64(loads.Load())
				waitP50 += sim(waits[n/2])
				waitP99 += sim(waits[n*99/100])
				// What the burst took beyond the engine's own work and the requests' own run
				// time (run serially per model here, as one request at a time would).
				work := time.Duration(engine.Load())
				if mode == "fifo" {
					work += time.Duration(n) * time.Duration(scale*float64(runFor))
				} else {
					work += time.Duration(k) * time.Duration(scale*float64(runFor)) // each model's requests run together
				}
				overhead += sim(total - work)
			}
			f := float64(b.N)
			b.ReportMetric(swaps/f, "swaps")
			b.ReportMetric(waitP50/f, "p50-wait-s")
			b.ReportMetric(waitP99/f, "p99-wait-s")
			b.ReportMetric(overhead/f, "overhead-s")
		})
	}
}
