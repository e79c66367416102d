package sim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

func readSimState(t *testing.T, url string) simStateJSON {
	t.Helper()
	code, body := get(t, url+"/sim/state")
	if code != 200 {
		t.Fatalf("/sim/state: %d %s", code, body)
	}
	var st simStateJSON
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

type simStateJSON = simState

func timedPost(t *testing.T, url, body string) (int, string, time.Duration) {
	t.Helper()
	t0 := time.Now()
	code, b := post(t, url, body)
	return code, string(b), time.Since(t0)
}

func TestVLLMSleepEndpoints(t *testing.T) {
	// Without VLLM_SERVER_DEV_MODE the endpoints do not exist.
	ts := start(t, Config{EnableSleepMode: true})
	if code, _ := post(t, ts.URL+"/sleep?level=1", ""); code != 404 {
		t.Errorf("/sleep without dev mode: %d, want 404", code)
	}
	if code, _ := get(t, ts.URL+"/is_sleeping"); code != 404 {
		t.Errorf("/is_sleeping without dev mode: %d, want 404", code)
	}

	// Dev mode without --enable-sleep-mode: the engine refuses.
	ts = start(t, Config{DevMode: true})
	code, body := post(t, ts.URL+"/sleep?level=1", "")
	if code != 500 || !strings.Contains(string(body), "Sleep mode is not enabled in the model config") {
		t.Errorf("/sleep without --enable-sleep-mode: %d %s", code, body)
	}

	ts = start(t, Config{DevMode: true, EnableSleepMode: true, TimeScale: 0.001})
	if code, body := get(t, ts.URL+"/is_sleeping"); code != 200 || body != `{"is_sleeping":false}` {
		t.Errorf("/is_sleeping awake: %d %s", code, body)
	}
	awake := readSimState(t, ts.URL)
	if code, body, _ := timedPost(t, ts.URL+"/sleep?level=1", ""); code != 200 || body != "" {
		t.Fatalf("/sleep?level=1: %d %q, want 200 and no body", code, body)
	}
	if code, body := get(t, ts.URL+"/is_sleeping"); code != 200 || body != `{"is_sleeping":true}` {
		t.Errorf("/is_sleeping asleep: %d %s", code, body)
	}
	l1 := readSimState(t, ts.URL)
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
	if l1.GPUMemoryBytes >= awake.GPUMemoryBytes/5 || l1.HostMemoryBytes != plan.WeightBytes || awake.HostMemoryBytes != 0 {
		t.Errorf("memory awake %+v, level 1 %+v: want GPU memory to drop below a fifth and the weights (%d) in host memory", awake, l1, plan.WeightBytes)
	}
	_, metrics := get(t, ts.URL+"/metrics")
	for _, want := range []string{
		`vllm:engine_sleep_state{engine="0",model_name="qwen2.5-7b",sleep_state="awake"} 0.0`,
		`vllm:engine_sleep_state{engine="0",model_name="qwen2.5-7b",sleep_state="weights_offloaded"} 1.0`,
		"citadel_sim_host_memory_bytes{",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics asleep lacks %s", want)
		}
	}
	if code, _ := post(t, ts.URL+"/wake_up?tags=bogus", ""); code != 400 {
		t.Errorf("/wake_up?tags=bogus: %d, want 400", code)
	}
	if code, body := post(t, ts.URL+"/wake_up", ""); code != 200 || len(body) != 0 {
		t.Fatalf("/wake_up: %d %s", code, body)
	}
	if st := readSimState(t, ts.URL); st != awake {
		t.Errorf("after wake %+v, want %+v", st, awake)
	}

	// Level 2 discards the weights: no host memory; a partial wake leaves it sleeping.
	post(t, ts.URL+"/sleep?level=2", "")
	if st := readSimState(t, ts.URL); st.HostMemoryBytes != 0 || st.Level != 2 {
		t.Errorf("level 2: %+v", st)
	}
	post(t, ts.URL+"/wake_up?tags=weights", "")
	if _, body := get(t, ts.URL+"/is_sleeping"); body != `{"is_sleeping":true}` {
		t.Errorf("after waking weights only: %s, want still sleeping", body)
	}
	post(t, ts.URL+"/wake_up?tags=kv_cache", "")
	if st := readSimState(t, ts.URL); st.State != "awake" || !st.WeightsStale {
		t.Errorf("after level-2 wake: %+v, want awake with stale weights until reload_weights", st)
	}
	if code, _ := post(t, ts.URL+"/collective_rpc", `{"method":"reload_weights"}`); code != 200 {
		t.Errorf("reload_weights: %d", code)
	}
	if st := readSimState(t, ts.URL); st.WeightsStale {
		t.Errorf("after reload_weights: %+v", st)
	}
}

// A request to a sleeping vLLM waits: the paused scheduler queues it until /wake_up.
func TestVLLMRequestWhileAsleep(t *testing.T) {
	ts := start(t, Config{DevMode: true, EnableSleepMode: true, TimeScale: 0})
	post(t, ts.URL+"/sleep?level=1", "")
	type result struct {
		code int
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		code, _ := post(t, ts.URL+"/v1/completions", `{"model":"qwen2.5-7b","prompt":"hello","max_tokens":4}`)
		done <- result{code, time.Now()}
	}()
	select {
	case r := <-done:
		t.Fatalf("request answered %d while asleep", r.code)
	case <-time.After(200 * time.Millisecond):
	}
	if got := scrape(t, ts.URL, `vllm:num_requests_waiting{engine="0",model_name="qwen2.5-7b"}`); got != "1.0" {
		t.Errorf("vllm:num_requests_waiting while held: %s, want 1.0", got)
	}
	if code, _ := get(t, ts.URL+"/health"); code != 200 {
		t.Errorf("/health while asleep: %d, want 200", code)
	}
	woke := time.Now()
	post(t, ts.URL+"/wake_up", "")
	select {
	case r := <-done:
		if r.code != 200 || r.at.Before(woke) {
			t.Errorf("request after wake: %d at %v (woke %v)", r.code, r.at, woke)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request still held 5 s after /wake_up")
	}
}

// Wake time grows with the model's size and the sleep level and scales with the time scale.
func TestWakeTiming(t *testing.T) {
	if a, b := perfmodel.WakeTime(1, 1_200_000_000), perfmodel.WakeTime(1, 8_300_000_000); a < 200*time.Millisecond || a > 320*time.Millisecond || b < 700*time.Millisecond || b > 950*time.Millisecond {
		t.Errorf("level-1 wake 1.2 GB %v, 8.3 GB %v; published 0.26 s and 0.82 s", a, b)
	}
	if a, b := perfmodel.WakeTime(2, 1_200_000_000), perfmodel.WakeTime(2, 8_300_000_000); a < 700*time.Millisecond || a > time.Second || b < 2300*time.Millisecond || b > 2900*time.Millisecond {
		t.Errorf("level-2 wake 1.2 GB %v, 8.3 GB %v; published 0.85 s and 2.58 s", a, b)
	}
	const scale = 0.01
	wake := func(level int) time.Duration {
		ts := start(t, Config{DevMode: true, EnableSleepMode: true, TimeScale: scale})
		post(t, ts.URL+"/sleep?level="+string(rune('0'+level)), "")
		_, _, d := timedPost(t, ts.URL+"/wake_up", "")
		if level == 2 {
			_, _, r := timedPost(t, ts.URL+"/collective_rpc", `{"method":"reload_weights"}`)
			d += r
		}
		return d
	}
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
	for level := 1; level <= 2; level++ {
		want := time.Duration(scale * float64(perfmodel.WakeTime(level, plan.WeightBytes)))
		if got := wake(level); got < want || got > want+time.Second {
			t.Errorf("level %d wake took %v, want %v (+ at most 1 s)", level, got, want)
		}
	}
}

func TestSGLangMemoryRelease(t *testing.T) {
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
	ts := start(t, Config{Engine: EngineSGLang, Plan: plan, EnableMemorySaver: true, TimeScale: 0.001})
	if code, body := post(t, ts.URL+"/release_memory_occupation", ""); code != 422 || !strings.Contains(string(body), "Field required") {
		t.Errorf("release without a body: %d %s, want FastAPI's 422", code, body)
	}
	if code, body := post(t, ts.URL+"/release_memory_occupation", `{"tags":["bogus"]}`); code != 400 || !strings.Contains(string(body), `"error":{"message"`) {
		t.Errorf("release with a bad tag: %d %s", code, body)
	}
	awake := readSimState(t, ts.URL)
	if code, body := post(t, ts.URL+"/release_memory_occupation", `{}`); code != 200 || string(body) != "null" {
		t.Fatalf("release: %d %s, want 200 null", code, body)
	}
	if st := readSimState(t, ts.URL); st.GPUMemoryBytes >= awake.GPUMemoryBytes/5 || st.State != "sleeping" {
		t.Errorf("released %+v, awake %+v", st, awake)
	}
	if code, body := post(t, ts.URL+"/resume_memory_occupation", `{"tags":null}`); code != 200 || string(body) != "null" {
		t.Fatalf("resume: %d %s", code, body)
	}
	if st := readSimState(t, ts.URL); st != awake {
		t.Errorf("resumed %+v, want %+v", st, awake)
	}
	if code, _ := post(t, ts.URL+"/v1/completions", `{"prompt":"hi","max_tokens":2}`); code != 200 {
		t.Errorf("completion after resume: %d", code)
	}

	// Without --enable-memory-saver the release succeeds and frees nothing.
	ts = start(t, Config{Engine: EngineSGLang, Plan: plan, TimeScale: 0.001})
	before := readSimState(t, ts.URL)
	post(t, ts.URL+"/release_memory_occupation", `{}`)
	if st := readSimState(t, ts.URL); st.GPUMemoryBytes != before.GPUMemoryBytes {
		t.Errorf("without the memory saver %+v, before %+v", st, before)
	}
}

// mode=abort ends a running request; mode=wait lets it finish first; a bad mode changes nothing.
func TestVLLMSleepModes(t *testing.T) {
	for _, mode := range []string{"abort", "wait"} {
		t.Run(mode, func(t *testing.T) {
			ts := start(t, Config{DevMode: true, EnableSleepMode: true, TimeScale: 1})
			done := make(chan int, 1)
			go func() {
				code, _ := post(t, ts.URL+"/v1/completions", `{"model":"qwen2.5-7b","prompt":"hello","max_tokens":40,"ignore_eos":true}`)
				done <- code
			}()
			deadline := time.Now().Add(5 * time.Second)
			for scrape(t, ts.URL, `vllm:num_requests_running{engine="0",model_name="qwen2.5-7b"}`) != "1.0" {
				if time.Now().After(deadline) {
					t.Fatal("the request never ran")
				}
				time.Sleep(2 * time.Millisecond)
			}
			if code, _ := post(t, ts.URL+"/sleep?level=1&mode="+mode, ""); code != 200 {
				t.Fatalf("/sleep mode=%s: %d", mode, code)
			}
			select {
			case code := <-done:
				if want := map[string]int{"abort": 503, "wait": 200}[mode]; code != want {
					t.Errorf("running request under mode=%s: %d, want %d", mode, code, want)
				}
			default:
				t.Errorf("mode=%s: /sleep answered before the running request ended", mode)
				<-done
			}
		})
	}

	ts := start(t, Config{DevMode: true, EnableSleepMode: true, TimeScale: 0})
	if code, _ := post(t, ts.URL+"/sleep?level=1&mode=bogus", ""); code != 400 {
		t.Errorf("mode=bogus: %d, want 400", code)
	}
	if code, _ := post(t, ts.URL+"/v1/completions", `{"model":"qwen2.5-7b","prompt":"hi","max_tokens":2}`); code != 200 {
		t.Errorf("completion after a refused /sleep: %d", code)
	}
	// Level 0 pauses scheduling only: is_sleeping is true, memory unchanged.
	before := readSimState(t, ts.URL)
	post(t, ts.URL+"/sleep?level=0", "")
	if _, body := get(t, ts.URL+"/is_sleeping"); body != `{"is_sleeping":true}` {
		t.Errorf("level 0: %s", body)
	}
	if st := readSimState(t, ts.URL); st.GPUMemoryBytes != before.GPUMemoryBytes {
		t.Errorf("level 0 changed memory: %+v, before %+v", st, before)
	}
	post(t, ts.URL+"/wake_up", "")
	if _, body := get(t, ts.URL+"/is_sleeping"); body != `{"is_sleeping":false}` {
		t.Errorf("after waking from level 0: %s", body)
	}
}

// Ollama's chat front loads with no messages and unloads with keep_alive 0, as /api/generate does;
// a keep_alive duration sets /api/ps' expires_at.
func TestOllamaChatLoadUnload(t *testing.T) {
	ts := startOllama(t, OllamaConfig{})
	chat := func(body string) ollamaFinal {
		t.Helper()
		code, b := post(t, ts.URL+"/api/chat", body)
		if code != 200 {
			t.Fatalf("%s: %d %s", body, code, b)
		}
		return decodeJSON[ollamaFinal](t, b)
	}
	ps := func() []ollamaModel {
		t.Helper()
		_, b := get(t, ts.URL+"/api/ps")
		return decodeJSON[struct{ Models []ollamaModel }](t, []byte(b)).Models
	}
	if f := chat(`{"model":"qwen2.5:7b","messages":[],"keep_alive":"90s","stream":false}`); f.DoneReason != "load" {
		t.Errorf("chat with no messages: %+v, want done_reason load", f)
	}
	if m := ps(); len(m) != 1 || m[0].ExpiresAt == nil || !m[0].ExpiresAt.Equal(time.Unix(1700000000, 0).Add(90*time.Second)) || m[0].SizeVRAM == nil || *m[0].SizeVRAM == 0 {
		t.Errorf("/api/ps after a 90s load: %+v", m)
	}
	if f := chat(`{"model":"qwen2.5:7b","messages":[],"keep_alive":0,"stream":false}`); f.DoneReason != "unload" {
		t.Errorf("chat with no messages and keep_alive 0: %+v, want done_reason unload", f)
	}
	if m := ps(); len(m) != 0 {
		t.Errorf("/api/ps after unload: %+v", m)
	}
}
