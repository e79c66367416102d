package config

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode feeds arbitrary bytes to Decode. It must never panic, and
// every object it accepts must validate clean and survive what apply does
// with it: encode to JSON, send, decode again on the server (DecodeItem),
// with the same result.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			f.Add(b)
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	// testdata/fuzz/FuzzDecode holds inputs behind past bugs (a panic, a
	// failed round trip, bad values accepted).
	for _, s := range []string{
		// Kubernetes exports carry status and server-set metadata.
		"apiVersion: ome.io/v1beta1\nkind: InferenceService\nmetadata: {name: a, uid: x, creationTimestamp: \"2026-01-02T15:04:05Z\", managedFields: [{}]}\nspec: {model: {name: m}}\nstatus: {address: {url: http://a}}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {token: <redacted>}\nstringData: {token: x}\n",
		"apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Secret, metadata: {name: a}}, 3, {kind: Nope}]\n",
		"apiVersion: ome.io/v1beta1\nkind: ClusterServingRuntime\nmetadata: {name: a}\nspec:\n  engine: &e {name: vllm}\n  supportedModelFormats: [{modelFormat: {name: gguf}}]\n  engineConfig: {affinity: {x: *e}, runner: {command: [a], resources: {requests: {cpu: 1e3}}}}\n",
		"a: &a {b: *a}\n",
		"<<: {kind: Secret}\n",
		"--- !!binary aGVsbG8=\n",
		"{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"a\"},\"stringData\":{\"k\":\"\\u2028<&>\\u0000\"}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		items, errs := Decode(bytes.NewReader(data), "fuzz.yaml")
		_ = errs.Error()
		for _, it := range items {
			if fe := it.Object.Validate().Errors(); len(fe) > 0 {
				t.Fatalf("%s was accepted but does not validate: %v", it.Key(), fe)
			}
			b, err := json.Marshal(it.Object)
			if err != nil {
				t.Fatalf("%s: encoding: %v", it.Key(), err)
			}
			again, errs := Decode(bytes.NewReader(b), "fuzz.json")
			if errs.Err() != nil || len(again) != 1 {
				t.Fatalf("%s does not decode from its own JSON (%d items):\n%s\n%v", it.Key(), len(again), b, errs)
			}
			// What the server does with an apply item.
			if sent, errs := DecodeItem(b, it.Source); errs.Err() != nil || sent == nil || sent.Key() != it.Key() {
				t.Fatalf("%s: DecodeItem of its own JSON: %v\n%s", it.Key(), errs, b)
			}
			if again[0].Key() != it.Key() {
				t.Fatalf("key changed: %s → %s", it.Key(), again[0].Key())
			}
			b2, err := json.Marshal(again[0].Object)
			if err != nil {
				t.Fatalf("%s: encoding again: %v", it.Key(), err)
			}
			if diff := cmp.Diff(string(b), string(b2)); diff != "" {
				t.Fatalf("%s changed in a JSON round trip (-first +second):\n%s", it.Key(), diff)
			}
		}
	})
}
