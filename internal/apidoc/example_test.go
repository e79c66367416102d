package apidoc_test

import (
	"fmt"
	"strings"

	"citadel.dev/citadel/internal/apidoc"
)

// Walk gives each field of a kind with its path: what a reference page or a CRD schema's
// descriptions need.
func ExamplePackage_Walk() {
	p, err := apidoc.LoadAPI()
	if err != nil {
		panic(err)
	}
	_ = p.Walk("APIKey", func(path string, f *apidoc.Field) bool {
		if !strings.HasPrefix(path, "spec.") {
			return path == "spec" // only spec's fields
		}
		req := ""
		if f.Required {
			req = " (required)"
		}
		fmt.Printf("%s: %s%s\n", path, f.YAML, req)
		return true
	})
	// Output:
	// spec.hash: string (required)
	// spec.prefix: string
	// spec.models: []string
	// spec.requestsPerMinute: integer
	// spec.tokensPerMinute: integer
	// spec.maxConcurrent: integer
	// spec.expiresAt: string (RFC 3339 time)
	// spec.disabled: boolean
}
